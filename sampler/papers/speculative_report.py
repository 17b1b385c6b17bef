"""The speculative-decoding experiment's table and figure of exact acceptance per pair and τ."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from sampler.analysis.speculative import SpeculativeRun
from sampler.papers.intervals import ratio_estimate
from sampler.papers.records import Estimate, Figure, Table

__all__ = ["acceptance_figure", "acceptance_table", "mean_acceptance"]


def mean_acceptance(values: np.ndarray, rng: np.random.Generator) -> Estimate:
    """Mean exact acceptance over the positions of ``[documents, positions]`` (NaN past an
    end), its interval over documents."""
    sums = np.nansum(values, axis=1)
    counts = (~np.isnan(values)).sum(axis=1).astype(np.float64)
    return ratio_estimate(sums, counts, rng, bounds=(0.0, 1.0))


def _estimates(
    exact: dict[str, np.ndarray], temperatures: Sequence[float], rng: np.random.Generator
) -> dict[str, list[Estimate]]:
    return {
        name: [mean_acceptance(values[t], rng) for t in range(len(temperatures))]
        for name, values in exact.items()
    }


def acceptance_table(
    exact: dict[str, np.ndarray], temperatures: Sequence[float], rng: np.random.Generator
) -> Table:
    """Rows: pairs; columns: temperatures; cells: mean exact acceptance (95 % CI)."""
    rows = tuple(
        (name, *(f"{e.value:.4f} ({e.low:.4f}–{e.high:.4f})" for e in estimates))
        for name, estimates in _estimates(exact, temperatures, rng).items()
    )
    return Table(
        "Exact acceptance per drafted token, mean over positions (95 % CI over texts)",
        ("draft → target", *(f"τ={t:g}" for t in temperatures)),
        rows,
        "Σ min(p, q) from float64 log-probabilities at every position of the texts; "
        "both sides use the same settings unless the pair says otherwise.",
    )


def acceptance_figure(
    exact: dict[str, np.ndarray],
    temperatures: Sequence[float],
    measured: dict[str, list[SpeculativeRun]],
) -> Figure:
    """Exact acceptance against τ per pair; the sampler's measured rates as crosses."""
    from sampler.papers.writer import png_bytes
    from sampler.plots.figures import pyplot

    plt = pyplot()
    rng = np.random.default_rng(0)  # intervals for the error bars only
    figure, axes = plt.subplots(figsize=(7.0, 4.4))
    for name, estimates in _estimates(exact, temperatures, rng).items():
        y = np.array([e.value for e in estimates])
        spread = np.array([y - [e.low for e in estimates], [e.high for e in estimates] - y])
        axes.errorbar(temperatures, y, yerr=spread, marker="o", capsize=3, label=name)
    for label, runs in measured.items():
        accepted = sum(r.accepted for r in runs) / sum(r.checked for r in runs)
        temperature = float(label.rsplit("τ=", 1)[1])
        axes.plot([temperature], [accepted], "kx", markersize=9)
    axes.plot([], [], "kx", label="speculative sampler, measured")
    axes.set(xlabel="temperature τ", ylabel="acceptance per drafted token")
    axes.set_title("Speculative decoding: exact acceptance Σ min(p, q)")
    axes.legend(fontsize=7)
    return Figure("speculative_acceptance.png", "acceptance against temperature", png_bytes(figure))
