"""`RowParams`: a batch's `SamplingParams` as arrays, one entry per row (vLLM's layout)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from sampler.engine.params import SamplingParams

__all__ = ["RowParams"]

# The float-valued filter and penalty settings, read off SamplingParams itself.
_FLOAT_FIELDS = tuple(
    name
    for name, spec in SamplingParams.__dataclass_fields__.items()
    if spec.default.__class__ is float and name != "temperature"
)


@dataclass(frozen=True)
class RowParams:
    """Per-row parameter arrays ``[B]`` that the filters read.

    ``temperature`` is the effective one: 0 for greedy and hardmax rows. ``top_k`` uses 0 for
    off (vLLM's -1 is mapped to 0). ``history`` holds each row's past token ids (for the
    penalties), or ``None``.
    """

    temperature: np.ndarray
    top_k: np.ndarray
    top_p: np.ndarray
    min_p: np.ndarray
    typical_p: np.ndarray
    epsilon: np.ndarray
    eta: np.ndarray
    top_n_sigma: np.ndarray
    repetition_penalty: np.ndarray
    frequency_penalty: np.ndarray
    presence_penalty: np.ndarray
    penalty_last_n: np.ndarray
    min_keep: np.ndarray
    greedy: np.ndarray
    hardmax: np.ndarray
    logit_bias: tuple[dict[int, float], ...]
    history: tuple[np.ndarray, ...] | None = None

    @classmethod
    def from_params(cls, params: Sequence[SamplingParams]) -> RowParams:
        """Stack one :class:`SamplingParams` per row."""
        floats = {
            name: np.array([getattr(p, name) for p in params], dtype=np.float64)
            for name in _FLOAT_FIELDS
        }
        greedy = np.array([p.is_greedy for p in params])
        hardmax = np.array([p.mode == "hardmax" for p in params])
        temperature = np.array([p.temperature for p in params], dtype=np.float64)
        return cls(
            temperature=np.where(greedy | hardmax, 0.0, temperature),
            top_k=np.array([max(p.top_k, 0) for p in params], dtype=np.int64),
            penalty_last_n=np.array([p.penalty_last_n for p in params], dtype=np.int64),
            min_keep=np.array([p.min_tokens_to_keep for p in params], dtype=np.int64),
            greedy=greedy,
            hardmax=hardmax,
            logit_bias=tuple(dict(p.logit_bias) for p in params),
            **floats,
        )

    def __len__(self) -> int:
        return len(self.temperature)

    def with_history(self, history: tuple[np.ndarray, ...] | None) -> RowParams:
        return replace(self, history=history)

    def take(self, rows: np.ndarray) -> RowParams:
        """The parameters of a subset of rows, in the given order."""
        picked = {}
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            if isinstance(value, np.ndarray):
                picked[name] = value[rows]
            elif value is not None:
                picked[name] = tuple(value[i] for i in rows)
            else:
                picked[name] = None
        return RowParams(**picked)
