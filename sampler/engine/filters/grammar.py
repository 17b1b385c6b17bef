"""The constraint stage: the tokens a grammar does not allow next are dropped (``-inf``).

Each row with a constraint has its matcher in the sampler's state
(``rows.state["grammar_matcher"]``, a :class:`~sampler.engine.constraints.matcher.RowConstraint`,
advanced by the sampler after each draw, see :mod:`sampler.engine.state`); this stage only
reads it. Where the stage sits in the chain is the row's ``order`` (the presets put it where
each peer applies its mask, :mod:`sampler.engine.presets`).

Notes per row (NaN where off), over the distribution the stage receives (the model's own when
the stage is first): ``grammar_allowed``, how many tokens of the vocabulary the grammar allows;
``grammar_removed_mass``, the probability of the tokens it drops; ``grammar_kl``,
``KL(constrained || received) = -log(allowed mass)`` (the constrained law is the received one
restricted to the allowed tokens and renormalised), from log-sum-exps in float64 so that a
mass of 1e-30 still gives its logarithm; ``grammar_top1_illegal``, 1 when the received
distribution's likeliest token (lowest id on ties) is not allowed; ``grammar_forced``, 1 when
exactly one token is allowed. A row that resamples as llama.cpp does
(:mod:`sampler.engine.resample`) also reports :data:`RESAMPLED_NOTE`, ``grammar_resampled``: 1
when the chain's token without the mask was illegal and the token was drawn again after it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from sampler.engine.candidates import Candidates
from sampler.errors import InvalidInputError

if TYPE_CHECKING:
    from sampler.engine.rows import RowParams

__all__ = ["GRAMMAR_NOTES", "RESAMPLED_NOTE", "grammar", "row_matchers"]

GRAMMAR_NOTES = (
    "grammar_allowed",
    "grammar_removed_mass",
    "grammar_kl",
    "grammar_top1_illegal",
    "grammar_forced",
)
# set by the sampler, not the stage: whether the step drew twice (sampler.engine.resample)
RESAMPLED_NOTE = "grammar_resampled"


def grammar(candidates: Candidates, rows: RowParams) -> Candidates:
    """Mask each constrained row to the tokens its grammar allows next."""
    on = rows.on("grammar")
    if not on.any():
        return candidates
    matchers = row_matchers(rows.state, np.flatnonzero(on))
    logits = candidates.logits.copy()
    notes = {name: np.full(len(on), np.nan) for name in GRAMMAR_NOTES}
    for row in np.flatnonzero(on):
        mask = matchers[row].allowed()
        legal = mask if candidates.ids is None else mask[candidates.ids[row]]
        values = logits[row].astype(np.float64)
        log_total = _log_sum_exp(values)
        log_allowed = _log_sum_exp(values[legal])
        notes["grammar_allowed"][row] = mask.sum()
        notes["grammar_kl"][row] = log_total - log_allowed
        notes["grammar_removed_mass"][row] = -np.expm1(log_allowed - log_total)
        notes["grammar_top1_illegal"][row] = float(not legal[int(np.argmax(values))])
        notes["grammar_forced"][row] = float(mask.sum() == 1)
        logits[row, ~legal] = -np.inf
    masked = candidates.with_logits(logits)
    return Candidates(masked.logits, masked.ids, masked.vocab_size, notes, masked.array_size)


def row_matchers(state: Mapping[str, Any], rows: np.ndarray) -> np.ndarray:
    """The state's matchers (``grammar_matcher``), checked to hold one for each of ``rows``."""
    matchers = state.get("grammar_matcher")
    if matchers is None or any(matchers[row] is None for row in rows):
        raise InvalidInputError(
            "a grammar needs the model's vocabulary: use it with a model "
            "(sampler generate/compare/sweep --grammar), not on bare logits"
        )
    return matchers


def _log_sum_exp(values: np.ndarray) -> float:
    """``log Σ exp(values)`` in float64 (``-inf`` for none, or none finite)."""
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return -np.inf
    peak = finite.max()
    return float(peak + np.log(np.exp(finite - peak).sum()))
