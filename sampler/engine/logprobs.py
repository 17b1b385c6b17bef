"""Log-probabilities of a step, as inference servers report them: raw and processed.

* **raw**: ``log_softmax`` of the source's logits, in float64, at τ = 1, before any stage
  (no logit bias, penalties, temperature or filter): the model's own distribution, what
  vLLM's ``logprobs_mode="raw_logprobs"`` and llama.cpp's ``n_probs`` (``post_sampling_probs``
  false) report.
* **processed**: the log of the law the token was drawn from, after the whole chain (what
  vLLM's ``processed_logprobs`` and llama.cpp's ``post_sampling_probs: true`` report): the
  ``log_softmax`` of the chain's final logits, ``-inf`` for a token the chain cut. A greedy row
  is one-hot on its first maximum (0 for it, ``-inf`` elsewhere), a hardmax row uniform over
  its tied maxima. XTC's coin is drawn inside the step, so a row with XTC gets the law of the
  draw, the mixture over the coin (:func:`~sampler.engine.sampling.distribution`'s).

Examples
--------
>>> from sampler.engine.params import SamplingParams
>>> raw, processed = step_log_probs(np.array([[3.0, 1.0, 0.2]]), [SamplingParams(top_k=2)])
>>> np.exp(processed).round(4).tolist()
[[0.8808, 0.1192, 0.0]]
>>> top_tokens(processed[0], raw[0], 3).tolist()
[0, 1, 2]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from numpy.typing import ArrayLike

from sampler.engine.filters.dry import TokenTexts
from sampler.engine.inputs import History, as_params
from sampler.engine.params import SamplingParams
from sampler.engine.resample import resampled_rows
from sampler.engine.sampling import final_groups, xtc_chance

__all__ = ["log_softmax", "step_log_probs", "top_tokens"]


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise ``log_softmax`` in float64; ``-inf`` logits stay ``-inf``."""
    values = np.asarray(logits, dtype=np.float64)
    peak = values.max(axis=-1, keepdims=True)
    shifted = values - peak
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def step_log_probs(
    logits: ArrayLike,
    params: Sequence[SamplingParams],
    history: History = None,
    state: Mapping[str, ArrayLike] | None = None,
    vocabulary: TokenTexts | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """``(raw, processed)`` log-probabilities ``[B, V]`` float64 of one step.

    ``history``, ``state`` and ``vocabulary`` are what the step's sampler saw (as
    :func:`~sampler.engine.sampling.distribution` takes them).
    """
    raw_logits = np.atleast_2d(np.asarray(logits))
    given = {} if state is None else dict(state)

    def coin_law(rows_params: list[SamplingParams]) -> np.ndarray:
        return _coin_log_law(raw_logits, rows_params, history, given, vocabulary)

    processed = coin_law(as_params(list(params), raw_logits.shape[0]))
    # a row resampling its grammar as llama.cpp does: llama.cpp's mixture (engine.resample)
    rows, resampled = resampled_rows(coin_law, params, given, processed)
    processed[rows] = resampled
    return log_softmax(raw_logits), processed


def _coin_log_law(
    raw_logits: np.ndarray,
    params: Sequence[SamplingParams],
    history: History,
    given: Mapping[str, ArrayLike],
    vocabulary: TokenTexts | None,
) -> np.ndarray:
    """Each row's log-law with its mask where its order puts it; with XTC, over its coin."""
    processed = _final_log_probs(raw_logits, params, history, given | {"xtc_coin": 0}, vocabulary)
    chance = xtc_chance(as_params(list(params), raw_logits.shape[0]))
    if chance.any():
        held = _final_log_probs(raw_logits, params, history, given | {"xtc_coin": 1}, vocabulary)
        with np.errstate(divide="ignore"):  # log(0) where XTC is off: that part weighs nothing
            fired, kept = np.log(chance)[:, None], np.log1p(-chance)[:, None]
        processed = np.logaddexp(fired + processed, kept + held)
    return processed


def _final_log_probs(
    logits: np.ndarray,
    params: Sequence[SamplingParams],
    history: History,
    state: Mapping[str, ArrayLike],
    vocabulary: TokenTexts | None,
) -> np.ndarray:
    raw, _, groups = final_groups(logits, list(params), history, state, vocabulary)
    out = np.empty(raw.shape, dtype=np.float64)
    for group in groups:
        out[group.members] = log_softmax(group.final.to_dense_logits())
    return out


def top_tokens(primary: np.ndarray, secondary: np.ndarray, count: int) -> np.ndarray:
    """The ``count`` tokens ranked first by ``primary``, ties by ``secondary``, then lower id.

    Both are log-probabilities of one row (``-inf`` allowed). Only the candidates at or
    above the ``count``-th value are sorted, so a row of 49,152 tokens costs a partition, not a
    sort.
    """
    count = min(count, primary.size)
    if count <= 0:
        return np.empty(0, dtype=np.int64)
    chosen = _leading(primary, np.arange(primary.size), count)
    if chosen.size > count:  # ties on primary at the boundary: secondary, then id decides
        sure = chosen[primary[chosen] > primary[chosen].min()]
        tied = chosen[primary[chosen] == primary[chosen].min()]
        more = _leading(secondary[tied], tied, count - sure.size)
        if more.size > count - sure.size:
            edge = secondary[more].min()
            above = more[secondary[more] > edge]
            at_edge = np.sort(more[secondary[more] == edge])[: count - sure.size - above.size]
            more = np.concatenate([above, at_edge])
        chosen = np.concatenate([sure, more])
    order = np.lexsort((chosen, -secondary[chosen], -primary[chosen]))
    return chosen[order]


def _leading(values: np.ndarray, ids: np.ndarray, count: int) -> np.ndarray:
    """``ids`` whose value is at least the ``count``-th largest (ties included)."""
    if count >= values.size:
        return ids
    kth = np.partition(values, values.size - count)[values.size - count]
    return ids[values >= kth]
