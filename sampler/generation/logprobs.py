"""Per-token log-probabilities of a generation, named as vLLM, OpenAI and llama.cpp name them.

Asked for with a :class:`LogprobRequest` (``sampler generate --logprobs raw|processed
--top-logprobs N``, ``POST /api/generate``'s ``logprobs`` and ``top_logprobs``), each completion
gets ``logprobs = {"mode", "top_logprobs", "content": [...]}``, one entry per step (a final EOS
included), each entry::

    {"id", "token", "bytes", "logprob", "raw_logprob", "processed_logprob",
     "top_logprobs": [{"id", "token", "bytes", "logprob", "raw_logprob", "processed_logprob"}]}

``logprob`` is the mode's number (what vLLM's ``logprob`` is under ``logprobs_mode``), and both
numbers are always there; ``top_logprobs`` are the N most likely tokens under the mode (ties by
the other number, then lower id). What raw and processed are: :mod:`sampler.engine.logprobs`.
A token the chain cut has ``processed_logprob`` ``-inf``, which every JSON output writes as
``null``. Nothing here runs unless asked for.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from sampler.engine.logprobs import step_log_probs, top_tokens
from sampler.errors import InvalidInputError

__all__ = [
    "DEFAULT_TOP_LOGPROBS",
    "LOGPROB_MODES",
    "MAX_TOP_LOGPROBS",
    "LogprobRequest",
    "record_step",
    "token_bytes",
]

LOGPROB_MODES = ("raw", "processed")
DEFAULT_TOP_LOGPROBS = 5
# OpenAI's and vLLM's default cap (max_logprobs = 20): an entry stays a few hundred bytes.
MAX_TOP_LOGPROBS = 20


@dataclass(frozen=True)
class LogprobRequest:
    """Which log-probability ``logprob`` is (``mode``) and how many alternatives (``top``)."""

    mode: str
    top: int = DEFAULT_TOP_LOGPROBS

    def __post_init__(self) -> None:
        if self.mode not in LOGPROB_MODES:
            raise InvalidInputError(
                f"logprobs {self.mode!r} is unknown: use {' or '.join(LOGPROB_MODES)}"
            )
        top = self.top
        if isinstance(top, bool) or not isinstance(top, int) or not 0 <= top <= MAX_TOP_LOGPROBS:
            raise InvalidInputError(
                f"top_logprobs must be an integer in 0..{MAX_TOP_LOGPROBS}, got {top!r}"
            )

    @classmethod
    def from_body(cls, body: dict[str, Any]) -> LogprobRequest | None:
        """The request of an API body's ``logprobs`` and ``top_logprobs`` (``None``: none)."""
        mode, top = body.get("logprobs"), body.get("top_logprobs")
        if mode is None:
            if top is not None:
                raise InvalidInputError(
                    "top_logprobs goes with logprobs: give logprobs 'raw' or 'processed'"
                )
            return None
        if not isinstance(mode, str):
            raise InvalidInputError(f"logprobs must be 'raw' or 'processed', got {mode!r}")
        return cls(mode, DEFAULT_TOP_LOGPROBS if top is None else top)

    def empty(self) -> dict[str, Any]:
        """A completion's ``logprobs`` before its first step."""
        return {"mode": self.mode, "top_logprobs": self.top, "content": []}


def token_bytes(source: Any, token: int) -> bytes:
    """A token's own bytes: the llama.cpp source's exact bytes, else its label in UTF-8."""
    exact = getattr(getattr(source, "text", None), "token_bytes", None)
    if exact is not None:
        return exact(int(token))
    return source.token_label(int(token)).encode("utf-8")


def record_step(
    request: LogprobRequest,
    source: Any,
    completions: Sequence[Any],
    rows: np.ndarray,
    logits: np.ndarray,
    tokens: np.ndarray,
    history: Sequence[Sequence[int]] | None,
    state: dict[str, np.ndarray],
    vocabulary: Any,
) -> None:
    """Append one step's entry to the ``logprobs`` of each completion in ``rows``.

    ``logits``, ``tokens``, ``history`` (or ``None``) and ``state`` are the whole batch's, as
    the step's sampler saw them; only ``rows`` (the running ones) are computed.
    """
    if rows.size == 0:
        return
    raw, processed = step_log_probs(
        logits[rows],
        [completions[i].row.params for i in rows],
        history=None if history is None else [history[i] for i in rows],
        state={name: values[rows] for name, values in state.items()},
        vocabulary=vocabulary,
    )
    first, second = (raw, processed) if request.mode == "raw" else (processed, raw)
    for j, index in enumerate(rows):
        token = int(tokens[index])
        entry = _entry(source, token, first[j], second[j], request.mode)
        top = top_tokens(first[j], second[j], request.top)
        entry["top_logprobs"] = [_entry(source, t, first[j], second[j], request.mode) for t in top]
        completion = completions[index]
        if completion.logprobs is None:
            completion.logprobs = request.empty()
        completion.logprobs["content"].append(entry)


def _entry(
    source: Any, token: int, first: np.ndarray, second: np.ndarray, mode: str
) -> dict[str, Any]:
    token = int(token)
    data = token_bytes(source, token)
    value, other = float(first[token]), float(second[token])
    raw, processed = (value, other) if mode == "raw" else (other, value)
    return {
        "id": token,
        "token": data.decode("utf-8", "replace"),
        "bytes": list(data),
        "logprob": value,
        "raw_logprob": raw,
        "processed_logprob": processed,
    }
