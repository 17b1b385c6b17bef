"""Truncation by rank and by logit: top-k, top-p (nucleus), min-p, top-a, tail-free, top-n-σ.

Each filter is a pure function ``(Candidates, RowParams) -> Candidates`` that sets dropped
tokens to ``-inf``. Rows whose parameter is neutral are left exactly as they were. Tokens with
equal logits are kept or dropped together, and at least ``min_keep`` tokens survive, except in
rows whose preset ranks ties (``rows.ranked()``, the llama.cpp preset): there a cut keeps the
exact count llama.cpp keeps, tokens ranked by logit and then by lowest id (:func:`keep_ranked`),
and the thresholds are compared in float32 as llama.cpp compares them.
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

__all__ = [
    "float32_probs",
    "keep_above",
    "keep_ranked",
    "min_p",
    "tfs",
    "top_a",
    "top_k",
    "top_n_sigma",
    "top_p",
    "top_ranked",
]

# Nucleus search starts from this many candidates and widens eightfold while the mass is short.
_FIRST_HEAD = 256


def _row_pick(values: np.ndarray, columns: np.ndarray) -> np.ndarray:
    return values[np.arange(values.shape[0]), columns]


def top_ranked(candidates: Candidates, count: np.ndarray) -> np.ndarray:
    """``[B, N]`` bool: each row's ``count`` first candidates, ranked by logit descending and,
    among equal logits, by lowest token id (llama.cpp's sort leaves their order unspecified)."""
    logits = candidates.logits
    count = np.minimum(count, logits.shape[1])
    if not count.any():
        return np.zeros(logits.shape, dtype=bool)
    head = sorted_head(candidates, int(count.max()))
    last = np.maximum(count, 1) - 1
    kth, kth_id = _row_pick(head.logits, last)[:, None], _row_pick(head.ids, last)[:, None]
    ranked = (logits > kth) | ((logits == kth) & (candidates.token_ids() <= kth_id))
    return ranked & (count > 0)[:, None]


def keep_ranked(candidates: Candidates, rows_cut: np.ndarray, count: np.ndarray) -> Candidates:
    """In ``rows_cut``, keep exactly the ``count`` first candidates (:func:`top_ranked`)."""
    kept = top_ranked(candidates, np.where(rows_cut, count, 0)) | ~rows_cut[:, None]
    return candidates.with_logits(np.where(kept, candidates.logits, -np.inf))


def float32_probs(logits: np.ndarray) -> np.ndarray:
    """The softmax of each row in float32, as llama.cpp's ``llama_sampler_softmax_impl``:
    ``expf(x - max)`` over the sum (numpy sums pairwise where llama.cpp sums in array order,
    so the two may differ in the last bit of the sum; exact for the rows the tests craft).
    ``x - max`` is taken in float64 and rounded once to float32: the same number for float32
    logits, and no ``inf - inf`` for logits beyond float32's range (which llama.cpp never has).
    """
    wide = logits.astype(np.float64)
    shifted = (wide - wide.max(axis=1, keepdims=True)).astype(np.float32)
    weights = np.exp(shifted)
    return weights / weights.sum(axis=1, keepdims=True, dtype=np.float32)


def top_k(candidates: Candidates, rows: RowParams) -> Candidates:
    """Keep the ``top_k`` largest logits of a row and every token tied with the k-th.

    Ties as in transformers' ``TopKLogitsWarper`` (``scores < kth value`` are removed).
    A partition finds the head; when all rows use top-k the batch is compacted to it.
    Rows that rank ties keep exactly ``top_k`` tokens and ignore ``min_keep``, as llama.cpp's
    ``llama_sampler_top_k_impl`` (``k = min(k, size)``, a partial sort, no ``min_keep``).
    """
    ranked = rows.on("top_k") & rows.ranked()
    if ranked.any():
        size = np.minimum(rows["top_k"], candidates.llama_array_size())
        widest = int(size[ranked].max())
        if ranked.all() and widest < candidates.logits.shape[1]:  # compact to the head
            head = sorted_head(candidates, widest)
            inside = np.arange(widest)[None, :] < size[:, None]
            head = head.with_logits(np.where(inside, head.logits, -np.inf))
            return head.sized(ranked, size)
        candidates = keep_ranked(candidates, ranked, size).sized(ranked, size)
    k = np.where(rows.on("top_k") & ~ranked, np.maximum(rows["top_k"], rows.min_keep), 0)
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
    # the head must hold the min_keep tokens that are kept whatever the mass (and one more)
    size = min(width, max(_FIRST_HEAD, int(rows.min_keep[active].max()) + 1))
    while True:
        head = sorted_head(candidates, size)
        probs = np.exp(head.logits.astype(np.float64) - log_z[:, None])
        mass_above = np.cumsum(probs, axis=1, dtype=np.float64) - probs
        # Done when every row's nucleus ends before the head's last column (see cut_head).
        if size == width or ((mass_above[:, -1] >= p) | ~active).all():
            break
        size = min(width, size * 8)
    ranked = active & rows.ranked()
    reached = p - 8 * np.finfo(candidates.logits.dtype).eps
    kept = np.maximum((mass_above < reached[:, None]).sum(axis=1), rows.min_keep)
    last = _row_pick(head.logits, np.minimum(kept, size) - 1)
    together = active & ~ranked
    result = cut_head(candidates, head, np.where(together, last, -np.inf))
    if ranked.any():
        count = np.minimum(_nucleus_count_float32(candidates, rows), candidates.llama_array_size())
        result = keep_ranked(result, ranked, count).sized(ranked, count)
    return result


def _nucleus_count_float32(candidates: Candidates, rows: RowParams) -> np.ndarray:
    """llama.cpp's top-p count: the first ``i + 1`` where the float32 running sum of the sorted
    probabilities is ``>= p`` and ``i + 1 >= min_keep``; every candidate if the sum never
    reaches ``p`` (float32 rounding can leave it short of a ``p`` just below 1). The caller caps
    it at llama.cpp's array size."""
    descending = -np.sort(-float32_probs(candidates.logits), axis=1)
    running = np.cumsum(descending, axis=1, dtype=np.float32)
    reached = running >= rows["top_p"].astype(np.float32)[:, None]
    first = np.where(reached.any(axis=1), reached.argmax(axis=1) + 1, running.shape[1])
    return np.maximum(first, rows.min_keep)


def min_p(candidates: Candidates, rows: RowParams) -> Candidates:
    """Keep tokens whose probability is at least ``min_p`` times the top probability.

    ``p_i >= min_p * p_max`` is ``x_i >= x_max + log(min_p)``: no exponential is needed.
    This is transformers' ``MinPLogitsWarper``, vLLM's and llama.cpp's rule. Rows that rank
    ties compare in float32 against ``max + logf(min_p)`` and, when fewer than ``min_keep``
    tokens pass, keep exactly ``min_keep`` (llama.cpp's sorted fallback).
    """
    active = rows.on("min_p")
    if not active.any():
        return candidates
    ranked = active & rows.ranked()
    together = active & ~ranked
    floor = candidates.logits.max(axis=1) + np.log(np.where(active, rows["min_p"], 1.0))
    result = keep_above(candidates, rows, together, floor)
    # llama.cpp takes min_p as a float: one that rounds to 0 switches min-p off
    ranked &= rows["min_p"].astype(np.float32) > 0
    if ranked.any():
        passing = (candidates.logits >= _float32_floor(candidates.logits, rows["min_p"])).sum(1)
        size = np.minimum(np.maximum(passing, rows.min_keep), candidates.llama_array_size())
        result = keep_ranked(result, ranked, size).sized(ranked, size)
    return result


def top_a(candidates: Candidates, rows: RowParams) -> Candidates:
    """Keep tokens with ``p_i >= top_a * p_max**2``: a min-p whose bar rises with confidence.

    text-generation-webui's ``TopALogitsWarper`` (modules/sampler_hijack.py at commit
    dceb23c7). In logits, ``x_i >= log(top_a) + 2 x_max - log Z``. Ties are kept together.
    """
    active = rows.on("top_a")
    if not active.any():
        return candidates
    logits = candidates.logits
    log_z = log_normalizer(logits)
    bar = np.log(np.where(active, rows["top_a"], 1.0))
    peak = logits.max(axis=1).astype(np.float64)
    floor = bar + 2 * peak - log_z
    # 2·max beyond float64 (max near 1e308): the same floor as max + log p_max, which fits
    floor = np.where(np.isfinite(floor), floor, bar + peak + (peak - log_z))
    return keep_above(candidates, rows, active, floor)


def _float32_floor(logits: np.ndarray, min_p: np.ndarray) -> np.ndarray:
    """``[B, 1]``: llama.cpp's ``max + logf(min_p)``, summed in float32; rows whose max is
    beyond float32's range (no llama.cpp row is) take the float64 sum instead."""
    peak = logits.max(axis=1).astype(np.float64)
    with np.errstate(divide="ignore"):  # min_p 0 (a row where min-p is off): log 0 = -inf
        log_p = np.log(min_p.astype(np.float32))
    fits = np.abs(peak) <= np.finfo(np.float32).max
    floor32 = np.where(fits, peak, 0).astype(np.float32) + log_p
    return np.where(fits, floor32, peak + log_p)[:, None]


def keep_above(
    candidates: Candidates, rows: RowParams, active: np.ndarray, floor: np.ndarray
) -> Candidates:
    """Keep logits ``>= floor`` in active rows, and always the ``min_keep`` most likely."""
    logits = candidates.logits
    if (rows.min_keep[active] > 1).any():
        needed = int(rows.min_keep[active].max())
        head = sorted_head(candidates, min(needed, logits.shape[1]))
        kth = _row_pick(head.logits, np.minimum(rows.min_keep, head.logits.shape[1]) - 1)
        floor = np.minimum(floor, kth)
    return keep_at_least(candidates, np.where(active, floor, -np.inf))


def tfs(candidates: Candidates, rows: RowParams) -> Candidates:
    """Tail-free sampling (Phillips 2019), as text-generation-webui's ``TailFreeLogitsWarper``.

    Sort the probabilities of the whole vocabulary descending; ``d2 = |p[i] - 2 p[i+1] +
    p[i+2]|`` normalised to sum 1; keep the top token and token ``j >= 1`` while the running
    sum of ``d2`` up to ``j - 1`` is ``<= tfs``; the last token of the vocabulary is always
    dropped (webui's "centre the distribution around the cutoff", modules/sampler_hijack.py at
    commit dceb23c7). Tokens already dropped count as probability 0, as in webui's dense
    scores. Two choices of ours: a tie at the cut keeps all the tied tokens, and a row whose
    ``d2`` sums to 0 (no curvature, e.g. uniform) is left whole where webui's NaN would drop
    only its last token.
    """
    active = rows.on("tfs")
    if not active.any():
        return candidates
    logits = candidates.logits
    width = logits.shape[1]
    head = sorted_head(candidates, width)  # tfs needs every probability, sorted
    probs = np.exp(head.logits.astype(np.float64) - log_normalizer(logits)[:, None])
    # dropped tokens outside a compacted batch are zeros at the end of webui's sorted row
    padding = min(2, candidates.vocab_size - width)
    padded = np.concatenate([probs, np.zeros((len(probs), padding))], axis=1)
    d2 = np.abs(np.diff(padded, n=2, axis=1))
    total = d2.sum(axis=1)
    cdf = np.cumsum(d2, axis=1) / np.where(total > 0, total, 1.0)[:, None]
    # position j >= 1 is kept while cdf[j - 1] <= tfs; the vocabulary's last token never is
    kept = 1 + (cdf[:, : width - 1] <= rows["tfs"][:, None]).sum(axis=1)
    if width == candidates.vocab_size:
        kept = np.minimum(kept, width - 1)
    kept = np.maximum(np.where(total > 0, kept, width), np.minimum(rows.min_keep, width))
    last = _row_pick(head.logits, np.maximum(kept, 1) - 1)
    return keep_at_least(candidates, np.where(active, last, -np.inf))


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
    # Rows of logits beyond ±1e150 are scaled by a power of two (exact) so that the squares
    # cannot overflow; other rows are computed exactly as before, bit for bit.
    magnitude = np.where(finite, np.abs(logits), 0.0).max(axis=1)
    scale = np.where(magnitude > 1e150, np.exp2(np.frexp(magnitude)[1] - 1.0), 1.0)
    scaled = np.where(finite, logits / scale[:, None], 0.0)
    mean = scaled.sum(axis=1) / count
    spread = np.where(finite, scaled - mean[:, None], 0.0)
    sigma = np.sqrt((spread**2).sum(axis=1) / count) * scale
    with np.errstate(over="ignore"):  # n·σ beyond float64 is inf: every token is kept
        floor = logits.max(axis=1) - n * sigma
    return keep_at_least(candidates, np.where(active & (count > 1), floor, -np.inf))
