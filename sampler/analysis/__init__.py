"""What scores a given text: teacher-forced entropy (``analyze``) and the divergence between
two samplers' next-token laws along it (``divergence``). Nothing here generates text."""
