"""The exact law of a step's draw, over the whole vocabulary: :func:`distribution`.

A row's chain gives one law; two things make the draw's law a mixture of such laws, each
computed by running the chain again: XTC's coin (the chain with the coin fired and held,
weighted by ``xtc_probability``) and llama.cpp's grammar resampling (the chain without the
mask and with it, :mod:`sampler.engine.resample`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from numpy.typing import ArrayLike

from sampler.engine.chain import GroupResult, run_groups
from sampler.engine.filters.dry import TokenTexts
from sampler.engine.inputs import History, as_batch, as_history, as_params, as_state
from sampler.engine.params import SamplingParams
from sampler.engine.resample import resampled_rows
from sampler.engine.rows import RowParams

__all__ = ["distribution", "final_groups", "mixed", "xtc_chance"]


def distribution(
    logits: ArrayLike,
    params: SamplingParams | Sequence[SamplingParams],
    history: History = None,
    state: Mapping[str, ArrayLike] | None = None,
    vocabulary: TokenTexts | None = None,
) -> np.ndarray:
    """The exact distribution a draw uses, over the whole vocabulary.

    Parameters
    ----------
    logits
        ``[V]`` or ``[B, V]``.
    params
        One :class:`SamplingParams` for every row, or one per row.
    history
        Per row, the token ids the penalties look at (prompt and generated tokens).
    state
        Per row, what stateful stages carry (``{"mirostat_mu": [B]}``, adaptive-p's
        ``"adaptive_p_sum"`` and ``"adaptive_p_weight"``, e.g. a :attr:`Sampler.state`);
        default: each row's initial state (μ = 2τ; adaptive-p's average at its target). With
        ``"xtc_coin"`` (one number in [0, 1] per row), the distribution given that coin;
        without it, the mixture over XTC's coin, which is what a draw follows. A row that
        resamples as llama.cpp does (``grammar_mode``, :mod:`sampler.engine.resample`)
        needs its matcher, ``"grammar_matcher"``; its law is the mixture
        ``q·[legal] + (Σ_illegal q)·r`` (each pass with its own XTC coin, or both with the
        given one).
    vocabulary
        The model's token texts, for DRY's sequence breakers
        (``sampler.sources.base.token_texts(source)``).

    Returns
    -------
    numpy.ndarray
        Probabilities of the same shape as ``logits``. Greedy rows are one-hot on the first
        maximum; hardmax rows split the mass evenly between tied maxima.

    Examples
    --------
    >>> distribution([3.0, 1.0, 0.2], SamplingParams(top_k=2)).round(4).tolist()
    [0.8808, 0.1192, 0.0]
    """
    given = {} if state is None else dict(state)
    law = _coin_law(logits, params, history, given, vocabulary)
    listed = as_params(params, 1 if law.ndim == 1 else law.shape[0])
    if not any(p.resamples for p in listed):
        return law
    out = np.atleast_2d(law)  # a view: the resampling rows are written into ``law``

    def log_law(rows_params: list[SamplingParams]) -> np.ndarray:
        with np.errstate(divide="ignore"):  # log 0 = -inf where a chain dropped a token
            return np.log(np.atleast_2d(_coin_law(logits, rows_params, history, given, vocabulary)))

    with np.errstate(divide="ignore"):
        second = np.log(out.astype(np.float64))
    rows, mixed_law = resampled_rows(log_law, listed, given, second)
    out[rows] = np.exp(mixed_law)
    return law


def _coin_law(
    logits: ArrayLike,
    params: SamplingParams | Sequence[SamplingParams],
    history: History,
    given: dict,
    vocabulary: TokenTexts | None,
) -> np.ndarray:
    """Each row's law with the mask where its order puts it; with XTC, over its coin."""
    if "xtc_coin" in given:
        return _dense(*final_groups(logits, params, history, given, vocabulary))
    # The law of a draw with XTC is a mixture: its coin fires with probability xtc_probability.
    # A coin of 0 fires on every XTC row, a coin of 1 only where the probability is 1.
    raw, single, fired = final_groups(
        logits, params, history, {**given, "xtc_coin": 0}, vocabulary
    )
    out = _dense(raw, single, fired)
    chance = xtc_chance(as_params(params, raw.shape[0]))
    if chance.any():
        held = _dense(*final_groups(logits, params, history, {**given, "xtc_coin": 1}, vocabulary))
        out = mixed(chance, out, held)
    return out


def mixed(weight: np.ndarray, first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Per row, ``weight·first + (1 − weight)·second`` (laws over the last axis), in
    ``first``'s dtype."""
    return (weight * first.T + (1 - weight) * second.T).T.astype(first.dtype)


def _dense(raw: np.ndarray, single: bool, groups: list[GroupResult]) -> np.ndarray:
    out = np.empty_like(raw)
    for group in groups:
        out[group.members] = group.final.to_dense()
    return out[0] if single else out


def xtc_chance(params: list[SamplingParams]) -> np.ndarray:
    """Per row, the chance XTC fires at a step (0 where it is off)."""
    from sampler.engine.filters.xtc import xtc_rows

    rows = RowParams.from_params(params)
    return np.where(xtc_rows(rows), rows["xtc_probability"], 0.0)


def final_groups(
    logits: ArrayLike,
    params: SamplingParams | Sequence[SamplingParams],
    history: History = None,
    state: Mapping[str, ArrayLike] | None = None,
    vocabulary: TokenTexts | None = None,
) -> tuple[np.ndarray, bool, list[GroupResult]]:
    """Validate, run every row's chain; ``(raw [B, V], single row given, groups)``."""
    raw, single, _ = as_batch(logits)
    all_params = as_params(params, raw.shape[0])
    rows = RowParams.from_params(all_params).with_vocabulary(vocabulary)
    rows = rows.with_history(as_history(history, raw.shape[0], raw.shape[1])).with_state(
        as_state(state, rows)
    )
    return raw, single, list(run_groups(raw, all_params, rows))


