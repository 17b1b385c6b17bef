"""`RowParams`: a batch's `SamplingParams` as arrays, one entry per row (vLLM's layout).

The arrays are built from the stage table, so a new stage's settings reach its filter as
``rows["name"]`` with no code here, and ``rows.on("name")`` says per row whether a setting (or
a whole stage) is switched on.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from sampler.engine.presets import ranks_ties
from sampler.engine.stages import SETTINGS, STAGES

if TYPE_CHECKING:
    from sampler.engine.params import SamplingParams

__all__ = ["RowParams"]


@dataclass(frozen=True)
class RowParams:
    """Per-row settings ``[B]`` that the filters read, and which of them are on.

    ``rows["temperature"]`` is the effective temperature: 0 for greedy and hardmax rows.
    Numeric settings are int64 or float64 arrays; ``logit_bias`` is a tuple of dicts and
    ``dry_sequence_breakers`` a tuple of tuples of strings.
    ``history`` holds each row's past token ids (for the penalties), or ``None``. ``state``
    holds what stateful stages carry from step to step, per row (``mirostat_mu``), given by
    the sampler; a stage that needs a state it was not given starts from its initial value.
    """

    values: Mapping[str, Any]
    active: Mapping[str, np.ndarray]
    min_keep: np.ndarray
    greedy: np.ndarray
    hardmax: np.ndarray
    history: tuple[np.ndarray, ...] | None = None
    state: Mapping[str, np.ndarray] = field(default_factory=dict)
    vocabulary: Any = None  # the model's token texts (a dry.TokenTexts), for DRY's breakers
    # [B] bool: the row's preset cuts at exact counts, ties ranked by token id (presets.py)
    ranked_ties: np.ndarray | None = None

    @classmethod
    def from_params(cls, params: Sequence[SamplingParams]) -> RowParams:
        """Stack one :class:`SamplingParams` per row."""
        greedy = np.array([p.is_greedy for p in params], dtype=bool)
        hardmax = np.array([p.mode == "hardmax" for p in params], dtype=bool)
        values: dict[str, Any] = {}
        active: dict[str, np.ndarray] = {}
        for name, setting in SETTINGS.items():
            column = [getattr(p, name) for p in params]
            if setting.kind is dict:
                values[name] = tuple(dict(item) for item in column)
            elif setting.kind is tuple:
                values[name] = tuple(tuple(item) for item in column)
            elif setting.kind is str:
                values[name] = tuple(column)
            else:
                values[name] = np.array(column, dtype=np.int64 if setting.kind is int else float)
            active[name] = np.array([not setting.is_off(item) for item in column], dtype=bool)
        values["temperature"] = np.where(greedy | hardmax, 0.0, values["temperature"])
        active["temperature"] = values["temperature"] != 1
        for spec in STAGES:
            active[spec.name] = np.logical_or.reduce(
                [active[s.name] for s in spec.settings if s.activates]
            )
        return cls(
            values=values,
            active=active,
            min_keep=np.array([p.min_tokens_to_keep for p in params], dtype=np.int64),
            greedy=greedy,
            hardmax=hardmax,
            ranked_ties=np.array([ranks_ties(p.order) for p in params], dtype=bool),
        )

    def __getitem__(self, name: str) -> Any:
        """One setting's per-row values."""
        return self.values[name]

    def on(self, name: str) -> np.ndarray:
        """Per row, whether a setting or a stage (any of its settings) is switched on."""
        return self.active[name]

    def ranked(self) -> np.ndarray:
        """``[B]`` bool: rows whose preset keeps exact counts at cuts (see presets.py)."""
        if self.ranked_ties is None:
            return np.zeros(len(self), dtype=bool)
        return self.ranked_ties

    def __len__(self) -> int:
        return len(self.min_keep)

    def with_history(self, history: tuple[np.ndarray, ...] | None) -> RowParams:
        return replace(self, history=history)

    def with_state(self, state: Mapping[str, np.ndarray]) -> RowParams:
        return replace(self, state=dict(state))

    def with_vocabulary(self, vocabulary: Any) -> RowParams:
        return replace(self, vocabulary=vocabulary)

    def take(self, rows: np.ndarray) -> RowParams:
        """The parameters of a subset of rows, in the given order."""

        def pick(value: Any) -> Any:
            if isinstance(value, np.ndarray):
                return value[rows]
            return tuple(value[i] for i in rows)

        return RowParams(
            values={name: pick(value) for name, value in self.values.items()},
            active={name: value[rows] for name, value in self.active.items()},
            min_keep=self.min_keep[rows],
            greedy=self.greedy[rows],
            hardmax=self.hardmax[rows],
            history=None if self.history is None else pick(self.history),
            state={name: value[rows] for name, value in self.state.items()},
            vocabulary=self.vocabulary,
            ranked_ties=None if self.ranked_ties is None else self.ranked_ties[rows],
        )
