"""Mirostat (Basu et al. 2021), v1 and v2, as llama.cpp implements them.

Mirostat keeps a per-row target surprise ``μ`` (state carried across steps by the
:class:`~sampler.engine.sampling.Sampler`, starting at ``2 τ``) and cuts the distribution so
that the surprise of the drawn token tracks ``τ``; after each draw ``μ ← μ - η (s - τ)``, ``s =
-log2 q(token)`` under the cut and renormalised distribution. The stage here is the cut for a
given ``μ`` (``rows.state["mirostat_mu"]``); the update is the sampler's.

Source: llama.cpp ``src/llama-sampler.cpp`` (``llama_sampler_mirostat_apply``,
``llama_sampler_mirostat_v2_apply``; read at ggml-org/llama.cpp 6f7f63ee, the same code as the
commit 0c1e570 that llama-cpp-python 0.3.36 bundles) and ``common/sampling.cpp`` (00efb3e1):
with mirostat on, the chain is logit bias, temperature, mirostat. In rows whose preset ranks
ties (the llama.cpp preset) the cut is llama.cpp's exactly: v1 keeps exactly ``k`` tokens (ties
at the k-th ranked by lowest id, where llama.cpp's unstable sort keeps an unspecified subset),
v2 compares ``-log2 p > μ`` in float32, and ``min_tokens_to_keep`` does not apply (llama.cpp's
mirostat has none). In the other presets tokens tied with the last one kept are kept together
and ``min_tokens_to_keep`` holds.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

from sampler.engine.candidates import Candidates, log_normalizer, sorted_head
from sampler.engine.filters.truncation import float32_probs, keep_above, keep_ranked, top_k

if TYPE_CHECKING:
    from sampler.engine.rows import RowParams

__all__ = ["MIROSTAT_M", "mirostat", "mirostat_v1_k"]

# llama.cpp's common sampling hard-codes m = 100 tokens for v1's estimate of the Zipf exponent.
MIROSTAT_M = 100
_LN2 = math.log(2)
_INT_MAX = 2**31 - 1


def mirostat(candidates: Candidates, rows: RowParams) -> Candidates:
    """Cut each row as mirostat v1 or v2 does at the row's current ``μ``.

    v2 keeps the tokens whose surprise ``-log2 p`` is at most ``μ`` (at least the most likely
    one). v1 keeps the top ``k`` tokens, ``k`` from ``μ`` and the Zipf exponent ``ŝ``
    estimated over the top 100 (:func:`mirostat_v1_k`).
    """
    version = np.where(rows.on("mirostat"), rows["mirostat"], 0)
    if not version.any():
        return candidates
    mu = rows.state.get("mirostat_mu")
    if mu is None:  # a row's first step (a trace of the chain has no sampler)
        mu = 2.0 * rows["mirostat_tau"]
    logits = candidates.logits
    # v2: log p >= -μ ln 2, i.e. x >= log Z - μ ln 2; keep_above keeps min_keep tokens.
    floor = log_normalizer(logits) - mu * _LN2
    floor = np.minimum(floor, logits.max(axis=1))  # the most likely token always stays
    v2 = version == 2
    ranked = v2 & rows.ranked()
    together = v2 & ~ranked
    before = candidates
    candidates = keep_above(candidates, rows, together, np.where(together, floor, -np.inf))
    if ranked.any():  # llama.cpp: the prefix with -log2f(p) <= μ, at least one token
        with np.errstate(divide="ignore"):  # p = 0 (a token already at -inf): surprise inf
            surprise = -np.log2(float32_probs(before.logits[ranked]))
        within = (surprise <= mu[ranked, None].astype(np.float32)).sum(axis=1)
        count = np.ones(len(version), dtype=np.int64)
        count[ranked] = np.maximum(within, 1)
        candidates = keep_ranked(candidates, ranked, count)
    v1 = version == 1
    if not v1.any():
        return candidates
    k = np.zeros(len(version), dtype=np.int64)
    k[v1] = mirostat_v1_k(candidates.take_rows(np.flatnonzero(v1)), mu[v1])
    as_top_k = replace(
        rows,
        values={**rows.values, "top_k": k},
        active={**rows.active, "top_k": v1},
    )
    return top_k(candidates, as_top_k)


def mirostat_v1_k(candidates: Candidates, mu: np.ndarray) -> np.ndarray:
    """Per row, how many tokens mirostat v1 keeps at ``μ`` (llama.cpp's formula, float32).

    Over the ``n = min(m, N) - 1`` pairs of adjacent top probabilities (``N`` counts every
    token of the vocabulary, as llama.cpp's candidate array does): ``t_i = ln((i+2)/(i+1))``,
    ``b_i = ln(p_i / p_{i+1})``, ``ŝ = Σ t b / Σ t²``, ``ε = ŝ - 1``, and
    ``k = (ε 2^μ / (1 - V^-ε))^(1/ŝ)`` with ``V`` the vocabulary size; ``max(int(k), 1)``
    tokens are kept. Where the estimate is not a finite number (a flat head, ``ŝ < 1``, or a
    top token whose float32 probability is 0), ``int(k)`` is INT_MIN in llama.cpp, so one
    token is kept: greedy.
    """
    size = min(MIROSTAT_M, candidates.vocab_size)
    pairs = size - 1
    if pairs < 1:
        return np.ones(len(mu), dtype=np.int64)
    head = sorted_head(candidates, min(size, candidates.logits.shape[1]))
    log_p = head.logits.astype(np.float64) - log_normalizer(candidates.logits)[:, None]
    probs = np.exp(log_p).astype(np.float32)
    if probs.shape[1] < size:  # tokens dropped before this stage have probability 0
        missing = np.zeros((len(probs), size - probs.shape[1]), dtype=np.float32)
        probs = np.concatenate([probs, missing], axis=1)
    index = np.arange(pairs, dtype=np.float32)
    t = np.log((index + 2) / (index + 1))
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        b = np.log(probs[:, :-1] / probs[:, 1:])
        s_hat = (t * b).sum(axis=1, dtype=np.float32) / (t * t).sum(dtype=np.float32)
        epsilon = s_hat - np.float32(1)
        base = epsilon * np.power(np.float32(2), mu.astype(np.float32))
        base = base / (np.float32(1) - np.power(np.float32(candidates.vocab_size), -epsilon))
        k = np.power(base, np.float32(1) / s_hat)
    usable = np.isfinite(k) & (k < _INT_MAX)
    return np.where(usable, np.maximum(np.floor(np.where(usable, k, 1)), 1), 1).astype(np.int64)
