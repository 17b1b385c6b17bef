"""Checking what users pass to the engine: logits, per-row params, history."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from numpy.typing import ArrayLike

from sampler.engine.params import SamplingParams
from sampler.engine.rows import RowParams
from sampler.errors import InvalidInputError
from sampler.softmax import validated_logits

__all__ = ["History", "as_batch", "as_history", "as_params", "as_state"]

History = Sequence[ArrayLike] | None


def as_batch(logits: ArrayLike) -> tuple[np.ndarray, bool, np.ndarray]:
    """``[B, V]`` validated logits, whether a single row was given, and the row maxima."""
    x = np.asarray(logits)
    if x.ndim not in (1, 2):
        raise InvalidInputError(f"logits have shape {x.shape}: give [vocab] or [batch, vocab]")
    single = x.ndim == 1
    raw, peak = validated_logits(x[None, :] if single else x)
    return raw, single, peak


def as_params(params: SamplingParams | Sequence[SamplingParams], rows: int) -> list[SamplingParams]:
    if isinstance(params, SamplingParams):
        return [params] * rows
    params = list(params)
    if len(params) != rows:
        raise InvalidInputError(
            f"{len(params)} SamplingParams for a batch of {rows} rows: give one per row, "
            "or a single one for all"
        )
    for item in params:
        if not isinstance(item, SamplingParams):
            raise InvalidInputError(f"{item!r} is not a SamplingParams")
    return params


def as_history(history: History, rows: int, vocab: int) -> tuple[np.ndarray, ...] | None:
    if history is None:
        return None
    if len(history) != rows:
        raise InvalidInputError(
            f"history has {len(history)} rows for a batch of {rows}: give one token list per row"
        )
    checked = []
    for row, tokens in enumerate(history):
        ids = np.asarray(tokens)
        if ids.size == 0:
            checked.append(np.zeros(0, dtype=np.int64))
            continue
        if ids.ndim != 1 or not np.issubdtype(ids.dtype, np.integer):
            raise InvalidInputError(f"history[{row}] must be a flat list of integer token ids")
        if ids.min() < 0 or ids.max() >= vocab:
            bad = int(ids[(ids < 0) | (ids >= vocab)][0])
            raise InvalidInputError(
                f"history[{row}] holds token {bad}, outside the vocabulary 0..{vocab - 1}"
            )
        checked.append(ids.astype(np.int64, copy=False))
    return tuple(checked)


def as_state(state: Mapping[str, ArrayLike] | None, rows: RowParams) -> dict[str, np.ndarray]:
    """Per-row stage state, checked: known keys, one number per row (a single number is
    every row's); ``mirostat_mu`` finite on mirostat rows, ``xtc_coin`` in [0, 1] on XTC rows,
    adaptive-p's ``adaptive_p_sum`` and ``adaptive_p_weight`` finite and >= 0 on its rows.
    """
    from sampler.engine.state import initial_state

    checked = initial_state(rows)
    rules = {
        "mirostat_mu": (rows.on("mirostat"), np.isfinite, "a finite number"),
        "xtc_coin": (rows.on("xtc_probability"), lambda v: (v >= 0) & (v <= 1), "in [0, 1]"),
        "adaptive_p_sum": (rows.on("adaptive_p"), _finite_not_negative, "a finite number >= 0"),
        "adaptive_p_weight": (
            rows.on("adaptive_p"), _finite_not_negative, "a finite number >= 0"
        ),
    }
    for name, value in (state or {}).items():
        if name == "grammar_matcher":  # the sampler's matchers (objects), passed as they are
            if len(value) != len(rows):
                raise InvalidInputError(
                    f"state['grammar_matcher'] has {len(value)} entries for {len(rows)} rows"
                )
            checked[name] = value
            continue
        if name not in rules:
            raise InvalidInputError(
                f"state key {name!r} is unknown: use {', '.join(rules)}, grammar_matcher"
            )
        values = np.asarray(value, dtype=np.float64).reshape(-1)
        if values.size == 1:
            values = np.full(len(rows), values[0])
        if values.shape != (len(rows),):
            raise InvalidInputError(
                f"state[{name!r}] has {values.size} values for a batch of {len(rows)} rows"
            )
        on, valid, rule = rules[name]
        if not valid(values[on]).all():
            raise InvalidInputError(f"state[{name!r}] must be {rule} on the rows that use it")
        checked[name] = np.where(on, values, np.nan)
    return checked


def _finite_not_negative(values: np.ndarray) -> np.ndarray:
    return np.isfinite(values) & (values >= 0)
