"""The stages' pure functions, ``(Candidates, RowParams) -> Candidates``, grouped by what they do.

``shaping`` reshapes logits (bias, penalties, temperature), ``truncation`` drops tokens by rank
or logit (top-k, top-p, min-p, top-n-σ), ``information`` by information content (typical,
epsilon, eta). The stage table (:mod:`sampler.engine.stages`) names each one.
"""
