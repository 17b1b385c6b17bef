"""Running the filter chain over a batch: rows grouped by chain order, each group batched."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace

import numpy as np

from sampler.engine.candidates import Candidates, overflow_is_infinite
from sampler.engine.final_distribution import FinalDistribution
from sampler.engine.params import SamplingParams
from sampler.engine.rows import RowParams
from sampler.engine.stages import BY_NAME
from sampler.errors import InvalidInputError

__all__ = [
    "GroupResult",
    "chain_groups",
    "check_tokens_left",
    "run_chain",
    "run_group",
    "run_groups",
]

# Stages before temperature that reshape without cutting: part of the tempered distribution.
_SHAPING = tuple(name for name, spec in BY_NAME.items() if spec.shaping and not spec.required)


def chain_groups(params: list[SamplingParams]) -> list[tuple[tuple[str, ...], np.ndarray]]:
    """Rows that share a chain order, so each group runs its chain once, batched; rows that
    resample a grammar (:attr:`SamplingParams.resamples`) apart from those that do not."""
    by_order: dict[tuple[tuple[str, ...], bool], list[int]] = {}
    for row, item in enumerate(params):
        by_order.setdefault((item.stages, item.resamples), []).append(row)
    return [(order, np.array(rows)) for (order, _), rows in by_order.items()]


def _group_inputs(
    raw: np.ndarray, rows: RowParams, members: np.ndarray
) -> tuple[np.ndarray, RowParams]:
    if len(members) == raw.shape[0] and (members == np.arange(len(members))).all():
        return raw, rows  # the usual case, one order for the batch: no copy
    start = int(members[0])
    if (members == np.arange(start, start + len(members))).all():
        return raw[start : start + len(members)], rows.take(members)  # a slice: a view
    return raw[members], rows.take(members)


def run_chain(
    raw: np.ndarray, rows: RowParams, stages: Sequence[str]
) -> tuple[Candidates, np.ndarray, dict[str, np.ndarray]]:
    """Run ``stages`` in order; return the final candidates, the *tempered* logits, and the
    stages' notes (:attr:`Candidates.notes`, collected after each stage).

    The tempered logits are the dense logits after bias, penalties and temperature with
    nothing dropped: what ``entropy_temp`` measures. When the chain computes them on its way
    (shaping stages first, as in every preset) they are taken from it, not computed again.
    """
    shaping = [name for name in stages if name in _SHAPING]
    candidates = Candidates.dense(raw)
    shaped = candidates if stages[: len(shaping)] == tuple(shaping) else None
    tempered = None
    notes: dict[str, np.ndarray] = {}
    for name in stages:
        before = candidates
        candidates = BY_NAME[name].function(candidates, rows)
        if candidates.notes:
            notes.update(candidates.notes)
            candidates = replace(candidates, notes={})
        if name == "temperature" and shaped is not None and before is shaped:
            tempered = candidates.logits
        if shaped is not None and name in _SHAPING:
            shaped = candidates
    if not np.isfinite(candidates.logits.max(axis=1)).all():
        _name_the_stage(raw, rows, stages)
    if tempered is None:
        dense = Candidates.dense(raw)
        for name in shaping:
            dense = BY_NAME[name].function(dense, rows)
        tempered = BY_NAME["temperature"].function(dense, rows).logits
    return candidates, tempered, notes


def check_tokens_left(candidates: Candidates, rows: RowParams, stage: str) -> None:
    """Refuse, naming ``stage`` and the row's settings, candidates where a row has no finite
    logit left (none to draw) or a NaN or ``+inf`` one.

    Every stage keeps at least one token and maps finite logits to finite ones, so this only
    fires for settings whose arithmetic a stage does not yet handle: a one-line error that
    says where, instead of a NaN or an empty draw far from its cause.
    """
    peak = candidates.logits.max(axis=1)
    bad = np.flatnonzero(~np.isfinite(peak))
    if bad.size:
        row = int(bad[0])
        settings = ", ".join(
            f"{setting.name}={np.asarray(rows[setting.name][row]).item()!r}"
            for setting in BY_NAME[stage].settings
        )
        raise InvalidInputError(
            f"the {stage} stage left row {row} no token to draw from ({settings}): "
            "choose less extreme settings for it"
        )


def _name_the_stage(raw: np.ndarray, rows: RowParams, stages: Sequence[str]) -> None:
    """Run ``stages`` again, checking after each, to name the one that left no token."""
    candidates = Candidates.dense(raw)
    for name in stages:
        candidates = BY_NAME[name].function(candidates, rows)
        check_tokens_left(candidates, rows, name)


@dataclass(frozen=True)
class GroupResult:
    """One group of rows (same chain order) after its chain: what a draw and stats need."""

    members: np.ndarray  # row indices in the batch
    raw: np.ndarray  # the group's raw logits
    rows: RowParams
    final: FinalDistribution
    tempered: np.ndarray  # dense logits after bias, penalties and temperature
    notes: dict[str, np.ndarray]  # what the stages reported per row (Candidates.notes)


def run_groups(
    raw: np.ndarray, params: list[SamplingParams], rows: RowParams
) -> Iterator[GroupResult]:
    """Run each row's chain, batched over the rows that share a chain order."""
    for stages, members in chain_groups(params):
        yield run_group(raw, rows, stages, members)


@overflow_is_infinite
def run_group(
    raw: np.ndarray, rows: RowParams, stages: Sequence[str], members: np.ndarray
) -> GroupResult:
    """Run the chain ``stages`` on the rows ``members`` of the batch."""
    group_raw, group_rows = _group_inputs(raw, rows, members)
    candidates, tempered, notes = run_chain(group_raw, group_rows, stages)
    final = FinalDistribution.from_candidates(candidates, group_rows)
    return GroupResult(members, group_raw, group_rows, final, tempered, notes)
