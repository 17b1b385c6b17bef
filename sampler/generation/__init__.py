"""A logit source through the engine: generation loop, greedy vs sampled, teacher forcing."""
