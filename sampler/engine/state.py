"""What stateful stages carry from one step to the next, per row: mirostat's target surprise μ.

The sampler holds it: it starts fresh with each row (``μ = 2τ``, as llama.cpp's
``mirostat_v2`` init and reset), is given to the stages as ``rows.state``, and moves after
each draw by the rule of the stage. Rows without mirostat hold NaN. Nothing is shared between
rows or between samplers (KoboldCpp keeps μ in one static variable that leaks between
requests; here a new Sampler always starts fresh).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from sampler.engine.rows import RowParams

__all__ = ["initial_state", "next_state"]


def initial_state(rows: RowParams) -> dict[str, np.ndarray]:
    """Each row's state before its first step."""
    on = rows.on("mirostat")
    with np.errstate(over="ignore"):  # 2τ beyond float64 is held at its largest below
        mu = 2.0 * rows["mirostat_tau"]
    return {"mirostat_mu": np.where(on, _finite(mu), np.nan)}


def _finite(mu: np.ndarray) -> np.ndarray:
    """μ held within float64's finite range: an infinite μ would become NaN (inf − inf) at a
    later step, and a NaN μ cuts every token."""
    largest = np.finfo(np.float64).max
    return np.clip(mu, -largest, largest)


def next_state(
    state: Mapping[str, np.ndarray], rows: RowParams, chosen_probability: np.ndarray
) -> dict[str, np.ndarray]:
    """The state after a step that drew, per row, a token of probability ``chosen_probability``
    under the final (cut and renormalised) distribution.

    Mirostat: ``μ ← μ - η (-log2 q - τ)`` (llama.cpp, ``llama_sampler_mirostat_v2_apply``; a
    greedy row has ``q = 1``, so its μ grows by ``η τ`` a step, as in llama.cpp).
    """
    on = rows.on("mirostat")
    if not on.any():  # nothing moves: skip the arithmetic (a per-step cost at batch 1)
        return {"mirostat_mu": np.full(len(on), np.nan)}
    surprise = -np.log2(np.where(on, chosen_probability, 1.0))
    with np.errstate(over="ignore", invalid="ignore"):  # rows off (NaN μ) are not kept
        moved = state["mirostat_mu"] - rows["mirostat_eta"] * (surprise - rows["mirostat_tau"])
    return {"mirostat_mu": np.where(on, _finite(moved), np.nan)}
