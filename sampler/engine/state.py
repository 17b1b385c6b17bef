"""What stateful stages carry from one step to the next, per row: mirostat's target surprise μ,
adaptive-p's running sums ``S`` and ``W`` (its average of chosen probabilities is ``S/W``), and
a constrained row's matcher (``grammar_matcher``: an object array holding a
:class:`~sampler.engine.constraints.matcher.RowConstraint` per row, ``None`` where there is
none; each takes the row's drawn token after the step).

The sampler holds it: it starts fresh with each row (``μ = 2τ``, as llama.cpp's
``mirostat_v2`` init and reset; ``S = target / (1 − decay)``, ``W = 1 / (1 − decay)``, as
llama.cpp's ``adaptive_p`` init and reset), is given to the stages as ``rows.state``, and moves
after each draw by the rule of the stage. Rows without the stage hold NaN. Nothing is shared
between rows or between samplers (KoboldCpp keeps μ in one static variable that leaks between
requests; here a new Sampler always starts fresh).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from sampler.engine.filters.adaptive_p import initial_adaptive_state
from sampler.engine.rows import RowParams

__all__ = ["copy_state", "initial_state", "matcher_array", "next_state"]

_STATE_NAMES = ("mirostat_mu", "adaptive_p_sum", "adaptive_p_weight")


def initial_state(rows: RowParams) -> dict[str, np.ndarray]:
    """Each row's state before its first step."""
    on = rows.on("mirostat")
    with np.errstate(over="ignore"):  # 2τ beyond float64 is held at its largest below
        mu = 2.0 * rows["mirostat_tau"]
    total, weight = initial_adaptive_state(rows)
    return {
        "mirostat_mu": np.where(on, _finite(mu), np.nan),
        "adaptive_p_sum": total,
        "adaptive_p_weight": weight,
    }


def _finite(mu: np.ndarray) -> np.ndarray:
    """μ held within float64's finite range: an infinite μ would become NaN (inf − inf) at a
    later step, and a NaN μ cuts every token."""
    largest = np.finfo(np.float64).max
    return np.clip(mu, -largest, largest)


def next_state(
    state: Mapping[str, np.ndarray],
    rows: RowParams,
    chosen_probability: np.ndarray,
    chosen_prior: np.ndarray | None = None,
    tokens: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """The state after a step that drew, per row, a token of probability ``chosen_probability``
    under the final (cut and renormalised) distribution, and of probability ``chosen_prior``
    under the distribution adaptive-p transformed (NaN or ``None`` where it did not run).

    Mirostat: ``μ ← μ - η (-log2 q - τ)`` (llama.cpp, ``llama_sampler_mirostat_v2_apply``; a
    greedy row has ``q = 1``, so its μ grows by ``η τ`` a step, as in llama.cpp).
    Adaptive-p: ``S ← p + decay·S``, ``W ← 1 + decay·W`` (llama.cpp,
    ``llama_sampler_adaptive_p_accept``). A matcher takes the row's drawn token (``tokens``),
    in place: the state's matchers are the sampler's own (:attr:`Sampler.state` hands out
    copies).
    """
    matchers = state.get("grammar_matcher")
    if matchers is not None and tokens is not None:
        for row, matcher in enumerate(matchers):
            if matcher is not None:
                matcher.advance(int(tokens[row]))
    kept = {} if matchers is None else {"grammar_matcher": matchers}
    return {**_numbers(state, rows, chosen_probability, chosen_prior), **kept}


def copy_state(state: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """An independent copy of ``state`` (each matcher copied at its point)."""
    copied = {name: value.copy() for name, value in state.items()}
    if "grammar_matcher" in copied:
        copied["grammar_matcher"] = matcher_array(
            [None if m is None else m.copy() for m in state["grammar_matcher"]]
        )
    return copied


def matcher_array(matchers: list) -> np.ndarray:
    """``matchers`` (objects or ``None``) as a 1-D object array, one per row."""
    array = np.empty(len(matchers), dtype=object)
    array[:] = matchers
    return array


def _numbers(
    state: Mapping[str, np.ndarray],
    rows: RowParams,
    chosen_probability: np.ndarray,
    chosen_prior: np.ndarray | None,
) -> dict[str, np.ndarray]:
    on = rows.on("mirostat")
    adaptive = rows.on("adaptive_p")
    if not (on.any() or adaptive.any()):  # nothing moves: skip the arithmetic (batch 1 cost)
        return {name: np.full(len(on), np.nan) for name in _STATE_NAMES}
    surprise = -np.log2(np.where(on, chosen_probability, 1.0))
    with np.errstate(over="ignore", invalid="ignore"):  # rows off (NaN μ) are not kept
        moved = state["mirostat_mu"] - rows["mirostat_eta"] * (surprise - rows["mirostat_tau"])
    prior = np.full(len(on), np.nan) if chosen_prior is None else chosen_prior
    decay = rows["adaptive_decay"]
    fresh = initial_adaptive_state(rows)  # for a state given without adaptive-p's sums
    total = state.get("adaptive_p_sum", fresh[0])
    weight = state.get("adaptive_p_weight", fresh[1])
    return {
        "mirostat_mu": np.where(on, _finite(moved), np.nan),
        "adaptive_p_sum": np.where(adaptive, prior + decay * total, np.nan),
        "adaptive_p_weight": np.where(adaptive, 1.0 + decay * weight, np.nan),
    }
