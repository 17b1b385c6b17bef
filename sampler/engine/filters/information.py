"""Truncation by information content: locally typical, epsilon, eta and top-H sampling.

Pure functions ``(Candidates, RowParams) -> Candidates``, each matching the transformers warper
of the same name (``TypicalLogitsWarper``, ``EpsilonLogitsWarper``, ``EtaLogitsWarper``,
``TopHLogitsWarper``), with the ``min_keep`` most likely tokens always kept.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from sampler.engine.candidates import Candidates, cut_head, keep_at_least, sorted_head
from sampler.engine.filters.truncation import float32_probs
from sampler.entropy import normalize

if TYPE_CHECKING:
    from sampler.engine.rows import RowParams

__all__ = ["TOP_H_HEAD", "epsilon", "eta", "top_h", "typical_p"]

# transformers' TopHLogitsWarper looks at the 100 most likely tokens only (its ``top_n``).
TOP_H_HEAD = 100


def _protected_floor(candidates: Candidates, rows: RowParams, active: np.ndarray) -> np.ndarray:
    """Per row, the logit of the ``min_keep``-th most likely token (kept whatever happens)."""
    logits = candidates.logits
    if (rows.min_keep[active] <= 1).all():
        return logits.max(axis=1)
    needed = min(int(rows.min_keep[active].max()), logits.shape[1])
    head = sorted_head(candidates, needed)
    columns = np.minimum(rows.min_keep, needed) - 1
    return head.logits[np.arange(len(columns)), columns]


def _probability_floor(
    candidates: Candidates,
    rows: RowParams,
    active: np.ndarray,
    log_floor: np.ndarray,
    log_z: np.ndarray,
) -> Candidates:
    """Drop tokens with ``log p < log_floor`` unless they are among the ``min_keep`` best."""
    floor = np.minimum(log_z + log_floor, _protected_floor(candidates, rows, active))
    return keep_at_least(candidates, np.where(active, floor, -np.inf))


def epsilon(candidates: Candidates, rows: RowParams) -> Candidates:
    """Epsilon sampling (Hewitt et al. 2022): drop tokens with probability below ``epsilon``."""
    eps = rows["epsilon"]
    active = rows.on("epsilon")
    if not active.any():
        return candidates
    log_z = normalize(candidates.logits).log_z
    log_floor = np.log(np.where(active, eps, 1.0))
    return _probability_floor(candidates, rows, active, log_floor, log_z)


def eta(candidates: Candidates, rows: RowParams) -> Candidates:
    """Eta sampling (Hewitt et al. 2022): the floor is ``min(eta, sqrt(eta) * exp(-H))``."""
    value = rows["eta"]
    active = rows.on("eta")
    if not active.any():
        return candidates
    normalized = normalize(candidates.logits)
    log_z, entropy = normalized.log_z, normalized.entropy
    safe = np.where(active, value, 1.0)
    log_floor = np.log(np.minimum(safe, np.sqrt(safe) * np.exp(-entropy)))
    return _probability_floor(candidates, rows, active, log_floor, log_z)


def typical_p(candidates: Candidates, rows: RowParams) -> Candidates:
    """Locally typical sampling (Meister et al. 2023) with mass ``typical_p``.

    Tokens are ranked by ``|-log p_i - H|``; the shortest run of that ranking whose mass
    reaches ``typical_p`` is kept (the crossing token included, ties in the score kept).
    Rows whose preset ranks ties keep llama.cpp's count instead (:func:`_typical_count`).
    """
    mass = rows["typical_p"]
    active = rows.on("typical_p")
    if not active.any():
        return candidates
    logits = candidates.logits
    normalized = normalize(logits)
    log_z, entropy = normalized.log_z, normalized.entropy
    log_probs = logits - log_z[:, None]
    score = np.abs(-log_probs - entropy[:, None].astype(logits.dtype))
    order = np.argsort(score, axis=1, kind="stable")
    ranked_score = np.take_along_axis(score, order, axis=1)
    cumulative = np.cumsum(
        np.exp(np.take_along_axis(log_probs, order, axis=1)), axis=1, dtype=np.float64
    )
    last = np.minimum((cumulative < mass[:, None]).sum(axis=1), logits.shape[1] - 1)
    last = np.maximum(last, np.minimum(rows.min_keep, logits.shape[1]) - 1)
    limit = ranked_score[np.arange(len(last)), last]
    keep = (score <= limit[:, None]) | ~active[:, None]
    result = candidates.with_logits(np.where(keep, logits, -np.inf).astype(logits.dtype))
    # llama.cpp's rule holds where its array has no -inf entry (see _typical_count)
    size = candidates.llama_array_size()
    ranked = active & rows.ranked() & (np.isfinite(logits).sum(axis=1) == size)
    if ranked.any():
        keep = _typical_count(candidates, mass, rows.min_keep)
        kept = np.where(keep, logits, -np.inf).astype(logits.dtype)
        result = result.with_logits(np.where(ranked[:, None], kept, result.logits))
        result = result.sized(ranked, keep.sum(axis=1))
    return result


def _typical_count(candidates: Candidates, mass: np.ndarray, min_keep: np.ndarray) -> np.ndarray:
    """``[B, N]`` bool: what llama.cpp's ``llama_sampler_typical_apply`` keeps, in float32.

    ``H = Σ -p logf p``; candidates sorted by ``|-logf p - H|`` (ties by lowest token id, where
    llama.cpp's ``std::sort`` leaves their order unspecified); the first ``i + 1`` where the
    float32 running mass is strictly above ``typical_p`` and ``i + 1 >= min_keep``, or all.
    For rows whose llama.cpp array holds no ``-inf`` entry: with one, llama.cpp's ``0 · logf 0``
    makes ``H`` NaN and its cut falls in an unspecified order, so such rows keep this module's
    rule (a probability that underflows float32 to 0 does the same in llama.cpp).
    """
    logits = candidates.logits
    finite = np.isfinite(logits)
    probs = float32_probs(logits)
    with np.errstate(divide="ignore", invalid="ignore"):  # entries dropped earlier: p = 0
        log_probs = np.log(probs)
        entropy = -np.where(probs > 0, probs * log_probs, 0).sum(axis=1, dtype=np.float32)
        score = np.where(finite, np.abs(-log_probs - entropy[:, None]), np.inf)
    order = np.lexsort((candidates.token_ids(), score), axis=1)
    running = np.cumsum(np.take_along_axis(probs, order, axis=1), axis=1, dtype=np.float32)
    above = running > mass.astype(np.float32)[:, None]
    count = np.where(above.any(axis=1), above.argmax(axis=1) + 1, finite.sum(axis=1))
    count = np.minimum(np.maximum(count, min_keep), finite.sum(axis=1))
    position = np.empty_like(order)
    np.put_along_axis(position, order, np.arange(order.shape[1])[None, :], axis=1)
    return position < count[:, None]


def top_h(candidates: Candidates, rows: RowParams) -> Candidates:
    """Top-H (Potraghloo et al. 2025), as transformers' ``TopHLogitsWarper``.

    Over the ``TOP_H_HEAD`` most likely tokens, renormalised to ``q``: keep the most likely
    tokens, in order, while their cumulative entropy ``Σ -q log q`` stays ``<= top_h · H(q)``
    (the first token always). Tokens tied with the last one kept are kept with it (the peer's
    sort keeps an arbitrary subset of them), and at least ``min_keep`` tokens stay.
    """
    active = rows.on("top_h")
    if not active.any():
        return candidates
    width = candidates.logits.shape[1]
    # one wider than the head: cut_head then sees whether a tie reaches past it
    head = sorted_head(candidates, min(width, TOP_H_HEAD + 1))
    logits = head.logits[:, :TOP_H_HEAD].astype(np.float64)
    normalized = normalize(logits)
    log_q = logits - normalized.log_z[:, None]
    with np.errstate(invalid="ignore"):  # -inf × 0 on masked tokens: their term is 0
        terms = np.where(np.isfinite(log_q), -np.exp(log_q) * log_q, 0.0)
    cumulative = np.cumsum(terms, axis=1)
    bound = rows["top_h"] * normalized.entropy
    kept = np.maximum((cumulative <= bound[:, None]).sum(axis=1), 1)
    kept = np.maximum(kept, np.minimum(rows.min_keep, logits.shape[1]))
    last = head.logits[np.arange(len(kept)), kept - 1]
    return cut_head(candidates, head, np.where(active, last, -np.inf))
