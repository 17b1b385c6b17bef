"""Stage by stage: what each filter of a chain does to one row's distribution.

Examples
--------
>>> from sampler import SamplingParams
>>> steps = trace_chain([3.0, 1.0, 0.2], SamplingParams(temperature=2.0, top_k=2))
>>> [(s.stage, s.kept_tokens) for s in steps]
[('input', 3), ('temperature', 3), ('top_k', 2), ('final', 2)]
>>> round(steps[-1].probs[0], 4)
0.7311
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from sampler.engine.candidates import Candidates, overflow_is_infinite
from sampler.engine.chain import check_tokens_left
from sampler.engine.final_distribution import FinalDistribution
from sampler.engine.inputs import as_batch, as_history, as_state
from sampler.engine.params import SamplingParams
from sampler.engine.rows import RowParams
from sampler.engine.stages import BY_NAME
from sampler.entropy import entropy as probability_entropy
from sampler.entropy import softmax_entropy
from sampler.errors import InvalidInputError
from sampler.softmax import softmax
from sampler.tables import aligned_table, format_number

__all__ = ["StageTrace", "format_trace", "trace_chain"]


@dataclass(frozen=True)
class StageTrace:
    """The distribution after one stage (softmax of the logits at that point)."""

    stage: str
    logits: list[float | None]  # None where the token is dropped (-inf)
    probs: list[float]
    entropy: float  # nats
    kept_tokens: int
    kept_mass: float  # base (τ = 1, unfiltered) probability of the kept tokens
    # what the stage reported (Candidates.notes, e.g. the grammar's grammar_removed_mass)
    notes: dict[str, float] = field(default_factory=dict)


@overflow_is_infinite
def trace_chain(
    logits: ArrayLike,
    params: SamplingParams,
    history: Sequence[int] | None = None,
    vocabulary: Any = None,
    state: Mapping[str, Any] | None = None,
) -> list[StageTrace]:
    """Run ``params``' chain on one row of logits and record the distribution after each stage.

    Active stages are listed (temperature always; a neutral stage changes nothing), framed by
    ``input`` (the raw softmax) and ``final`` (what a draw uses, including greedy/hardmax).
    ``vocabulary``: the model's token texts, which DRY needs for its sequence breakers.
    ``state``: the row's sampler state (:func:`~sampler.engine.sampling.distribution`'s), e.g.
    ``{"grammar_matcher": ...}`` from
    :func:`~sampler.engine.constraints.matcher.constraint_state` for a constrained row; each
    stage's notes (the grammar's telemetry) are in its :attr:`StageTrace.notes`.
    """
    raw, _, _ = as_batch(logits)
    if raw.shape[0] != 1:
        raise InvalidInputError(f"a trace takes one row of logits, got shape {raw.shape}")
    rows = (
        RowParams.from_params([params])
        .with_history(as_history(None if history is None else [history], 1, raw.shape[1]))
        .with_vocabulary(vocabulary)
    )
    if state is not None:
        rows = rows.with_state(as_state(state, rows))
    base = softmax(raw[0])
    steps = [_record("input", raw[0], base)]
    candidates = Candidates.dense(raw)
    for name in params.stages:
        candidates = BY_NAME[name].function(candidates, rows)
        check_tokens_left(candidates, rows, name)
        if name in params.active_stages:
            notes = _row_notes(candidates.notes)
            steps.append(_record(name, candidates.to_dense()[0], base, notes=notes))
        candidates = replace(candidates, notes={})  # a stage's notes are its own
    final = FinalDistribution.from_candidates(candidates, rows)
    support = final.scatter(final.support(), False)[0]
    steps.append(_record("final", np.where(support, raw[0], -np.inf), base, final.to_dense()[0]))
    return steps


def _row_notes(notes: Mapping[str, np.ndarray]) -> dict[str, float]:
    """The one row's per-row notes as numbers (NaN ones, a stage's "off", left out; ``[B, N]``
    notes are the sampler's working arrays, not telemetry)."""
    values = {name: float(value[0]) for name, value in notes.items() if np.ndim(value) == 1}
    return {name: value for name, value in values.items() if not np.isnan(value)}


def _record(
    stage: str,
    logits: np.ndarray,
    base: np.ndarray,
    probs: np.ndarray | None = None,
    notes: dict[str, float] | None = None,
) -> StageTrace:
    kept = np.isfinite(logits)
    if probs is None:
        probs = softmax(logits)
        entropy = float(softmax_entropy(logits))
    else:
        entropy = float(probability_entropy(probs))
    # whole-array conversions: a per-element loop cost ~20 ms a stage at V = 49,152
    shown = logits.astype(np.float64).astype(object)
    shown[~kept] = None
    return StageTrace(
        stage=stage,
        logits=shown.tolist(),
        probs=np.asarray(probs, dtype=np.float64).tolist(),
        entropy=entropy,
        kept_tokens=int(kept.sum()),
        kept_mass=float(base[kept].sum()),
        notes=notes or {},
    )


def format_trace(steps: list[StageTrace], labels: Sequence[str], title: str = "") -> str:
    """An aligned table: one row per stage, token probabilities, kept count, entropy."""
    header = ["stage", *(f"P({name})" for name in labels), "kept", "H nats", "kept mass"]
    body = [
        [
            step.stage,
            *(format_number(p, 4) for p in step.probs),
            str(step.kept_tokens),
            format_number(step.entropy, 4),
            format_number(step.kept_mass, 4),
        ]
        for step in steps
    ]
    lines = [title] if title else []
    return "\n".join(lines + aligned_table(header, body))
