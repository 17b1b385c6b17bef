"""The cheat sheet as a picture: probability bars per temperature, and entropy against τ."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from sampler.entropy import softmax_entropy
from sampler.plots.figures import check_figure_path, pyplot, save_figure

__all__ = ["plot_cheat_sheet"]


def _entropy_curve_range(temperatures: list[float]) -> tuple[float, float]:
    positive = [t for t in temperatures if 0 < t < math.inf] or [1.0]
    low = min(0.01, min(positive) / 2)
    high = max(100.0, max(positive) * 2)
    return low, high


def plot_cheat_sheet(sheet: dict[str, Any], path: str | os.PathLike[str]) -> Path:
    """Draw a :func:`~sampler.cheatsheet.cheat_sheet` dict to a PNG or SVG file.

    Left: the probability of each token at each temperature (grouped bars, cold to hot).
    Right: entropy of softmax(x/τ) against τ on a log axis, with its two limits: the hardmax
    entropy (τ → 0) and log of the number of unmasked tokens (τ → ∞).
    """
    target = check_figure_path(path)
    plt = pyplot()
    labels: list[str] = sheet["labels"]
    rows = sheet["rows"]
    logits = np.array([-np.inf if v is None else v for v in sheet["logits"]])

    figure, (bars, curve) = plt.subplots(1, 2, figsize=(11, 4.2), width_ratios=(1.25, 1))
    colours = plt.get_cmap("coolwarm")(np.linspace(0, 1, len(rows)))
    width = 0.8 / len(rows)
    positions = np.arange(len(labels))
    for i, row in enumerate(rows):
        tau = row["temperature"]
        name = "τ = 0 (hardmax)" if tau == 0 else f"τ = {tau:g}"
        offset = (i - (len(rows) - 1) / 2) * width
        bars.bar(positions + offset, row["probs"], width, color=colours[i], label=name)
    bars.set_xticks(positions, labels)
    bars.set_xlabel("token")
    bars.set_ylabel("probability softmax(x / τ)")
    bars.set_ylim(0, 1.05)
    bars.set_title("Next-token probabilities by temperature")
    bars.legend(fontsize="small", ncols=2 if len(rows) > 4 else 1)

    low, high = _entropy_curve_range([row["temperature"] for row in rows])
    grid = np.geomspace(low, high, 400)
    curve.plot(
        grid,
        softmax_entropy(np.broadcast_to(logits, (grid.size, logits.size)), grid),
        color="black",
        linewidth=1.5,
        label="H(softmax(x / τ))",
    )
    for i, row in enumerate(rows):
        if 0 < row["temperature"] < math.inf:
            curve.plot(
                row["temperature"],
                row["entropy_nats"],
                "o",
                color=colours[i],
                markeredgecolor="black",
                zorder=3,
            )
    uniform = math.log(int(np.isfinite(logits).sum()))
    hard = float(softmax_entropy(logits, 0.0))
    curve.axhline(
        uniform,
        linestyle="--",
        color="tab:red",
        label=f"τ → ∞: uniform, log {int(np.isfinite(logits).sum())} = {uniform:.3f}",
    )
    curve.axhline(hard, linestyle=":", color="tab:blue", label=f"τ → 0: hardmax, {hard:.3f}")
    curve.set_xscale("log")
    curve.set_xlabel("temperature τ (log scale)")
    curve.set_ylabel("entropy (nats)")
    curve.set_ylim(-0.05 * max(uniform, 1e-3), uniform * 1.12 + 1e-3)
    curve.set_title("Entropy rises with temperature")
    curve.legend(fontsize="small", loc="center right")
    figure.tight_layout()
    try:
        return save_figure(figure, target)
    finally:
        plt.close(figure)
