"""What generates text: a logit source through the engine (the loop, greedy against sampled).

Scoring a given text (teacher forcing, divergence) lives in :mod:`sampler.analysis`."""
