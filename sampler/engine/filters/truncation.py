"""Truncation by rank and by logit: top-k, top-p (nucleus), min-p, top-n-σ.

Each filter is a pure function ``(Candidates, RowParams) -> Candidates`` that sets dropped
tokens to ``-inf``. Rows whose parameter is neutral are left exactly as they were. Tokens with
equal logits are always kept or dropped together, and at least ``min_keep`` tokens survive.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from sampler.engine.candidates import (
    Candidates,
    cut_head,
    keep_at_least,
    log_normalizer,
    sorted_head,
)

if TYPE_CHECKING:
    from sampler.engine.rows import RowParams

__all__ = ["min_p", "top_k", "top_n_sigma", "top_p"]

# Nucleus search starts from this many candidates and widens eightfold while the mass is short.
_FIRST_HEAD = 256


def _row_pick(values: np.ndarray, columns: np.ndarray) -> np.ndarray:
    return values[np.arange(values.shape[0]), columns]


def top_k(candidates: Candidates, rows: RowParams) -> Candidates:
    """Keep the ``top_k`` largest logits of a row and every token tied with the k-th.

    Ties as in transformers' ``TopKLogitsWarper`` (``scores < kth value`` are removed).
    A partition finds the head; when all rows use top-k the batch is compacted to it.
    """
    k = np.where(rows.on("top_k"), np.maximum(rows["top_k"], rows.min_keep), 0)
    width = candidates.logits.shape[1]
    active = (k > 0) & (k < width)
    if not active.any():
        return candidates
    # One wider than the largest k: a head whose last logit is below the k-th shows that no
    # token outside it ties with the k-th.
    head = sorted_head(candidates, min(width, int(k[active].max()) + 1))
    kth = _row_pick(head.logits, np.clip(k - 1, 0, head.logits.shape[1] - 1))
    return cut_head(candidates, head, np.where(active, kth, -np.inf))


def top_p(candidates: Candidates, rows: RowParams) -> Candidates:
    """Keep the shortest prefix (by logit) whose probability reaches ``top_p``.

    A token is kept when the mass of the tokens ranked above it is below ``top_p``: the
    token that crosses ``top_p`` is kept, as in transformers' ``TopPLogitsWarper`` (which
    drops tokens whose ascending cumulative mass is ``<= 1 - top_p``) and in llama.cpp.
    Only a head found by partition is sorted, never the whole vocabulary, unless the
    distribution is so flat that the nucleus is the whole vocabulary.

    The masses are float64, and a mass within ``8 ε`` of ``top_p`` (ε the logits' machine
    epsilon: 9.5e-7 for float32) counts as reaching it: logits are rounded log-probabilities,
    so a nucleus that ends exactly at ``p`` (0.5 + 0.3 at p = 0.8, transformers' own test)
    must not hinge on whether the rounded masses sum to 0.79999998 or 0.80000001.
    """
    p = rows["top_p"]
    active = rows.on("top_p")
    if not active.any():
        return candidates
    width = candidates.logits.shape[1]
    log_z = log_normalizer(candidates.logits)
    size = min(width, _FIRST_HEAD)
    while True:
        head = sorted_head(candidates, size)
        probs = np.exp(head.logits.astype(np.float64) - log_z[:, None])
        mass_above = np.cumsum(probs, axis=1, dtype=np.float64) - probs
        # Done when every row's nucleus ends before the head's last column (see cut_head).
        if size == width or ((mass_above[:, -1] >= p) | ~active).all():
            break
        size = min(width, size * 8)
    reached = p - 8 * np.finfo(candidates.logits.dtype).eps
    kept = np.maximum((mass_above < reached[:, None]).sum(axis=1), rows.min_keep)
    last = _row_pick(head.logits, np.minimum(kept, size) - 1)
    return cut_head(candidates, head, np.where(active, last, -np.inf))


def min_p(candidates: Candidates, rows: RowParams) -> Candidates:
    """Keep tokens whose probability is at least ``min_p`` times the top probability.

    ``p_i >= min_p * p_max`` is ``x_i >= x_max + log(min_p)``: no exponential is needed.
    This is transformers' ``MinPLogitsWarper``, vLLM's and llama.cpp's rule.
    """
    p = rows["min_p"]
    active = rows.on("min_p")
    if not active.any():
        return candidates
    logits = candidates.logits
    floor = logits.max(axis=1) + np.log(np.where(active, p, 1.0))
    if (rows.min_keep[active] > 1).any():
        needed = int(rows.min_keep[active].max())
        head = sorted_head(candidates, min(needed, logits.shape[1]))
        kth = _row_pick(head.logits, np.minimum(rows.min_keep, head.logits.shape[1]) - 1)
        floor = np.minimum(floor, kth)
    return keep_at_least(candidates, np.where(active, floor, -np.inf))


def top_n_sigma(candidates: Candidates, rows: RowParams) -> Candidates:
    """Keep logits ``>= max - n * σ``, σ the population standard deviation of finite logits.

    llama.cpp's ``top_n_sigma`` (Tang et al. 2024). Dividing logits by a temperature scales
    max and σ alike, so the kept set does not depend on where temperature stands.
    """
    n = rows["top_n_sigma"]
    active = rows.on("top_n_sigma")
    if not active.any():
        return candidates
    logits = candidates.logits.astype(np.float64)
    finite = np.isfinite(logits)
    count = finite.sum(axis=1)
    mean = np.where(finite, logits, 0.0).sum(axis=1) / count
    spread = np.where(finite, logits - mean[:, None], 0.0)
    sigma = np.sqrt((spread**2).sum(axis=1) / count)
    floor = logits.max(axis=1) - n * sigma
    return keep_at_least(candidates, np.where(active & (count > 1), floor, -np.inf))
