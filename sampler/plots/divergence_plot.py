"""The teacher-forced divergence as a picture: TV and KL at every position, a line per pair."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from sampler.analysis.divergence import Divergence
from sampler.plots.figures import check_figure_path, printable_label, pyplot, save_figure

__all__ = ["plot_divergence"]


def _ceiling(results: Sequence[Divergence]) -> float:
    """Where an infinite KL is drawn: above every finite one, so it cannot be mistaken."""
    finite = [
        float(values[np.isfinite(values)].max())
        for result in results
        for values in (result.kl_ab, result.kl_ba)
        if np.isfinite(values).any()
    ]
    return 1.15 * max(finite, default=0.0) or 1.0


def plot_divergence(results: Sequence[Divergence], path: str | os.PathLike[str]) -> Path:
    """Top: total variation per position; bottom: KL(A‖B) solid and KL(B‖A) dashed.

    An infinite KL (a token one side can draw and the other cannot) is drawn as a cross on a
    dotted line above every finite value.
    """
    target = check_figure_path(path)
    plt = pyplot()
    figure, (tv_axes, kl_axes) = plt.subplots(2, 1, figsize=(10, 6.4), sharex=True)
    colours = plt.get_cmap("tab10")(np.arange(len(results)) % 10)
    positions = np.arange(len(results[0].labels))
    ceiling = _ceiling(results)
    drew_inf = False
    for result, colour in zip(results, colours, strict=True):
        # '$' in settings or model names would start matplotlib's mathtext
        name = f"{result.a} vs {result.b}" if len(results) > 1 else f"A: {result.a}\nB: {result.b}"
        name = name.replace("$", r"\$")
        tv_axes.plot(positions, result.tv, color=colour, marker=".", label=name)
        for values, style, arrow in ((result.kl_ab, "-", "A‖B"), (result.kl_ba, "--", "B‖A")):
            infinite = np.isinf(values)
            kl_axes.plot(
                positions,
                np.where(infinite, np.nan, values),
                style,
                color=colour,
                marker=".",
                label=f"KL {arrow}" if len(results) == 1 else None,
            )
            if infinite.any():
                kl_axes.plot(
                    positions[infinite],
                    np.full(infinite.sum(), ceiling),
                    "x",
                    color=colour,
                    markersize=8,
                )
                drew_inf = True
    if drew_inf:
        kl_axes.axhline(ceiling, linestyle=":", color="grey", label="∞ (drawn here)")
    tv_axes.set_ylim(-0.02, 1.02)
    tv_axes.set_ylabel("total variation\n(1 − P(same token))")
    tv_axes.set_title("How far two samplers' next-token laws are apart along a fixed text")
    tv_axes.legend(fontsize="small")
    kl_axes.set_ylabel("KL (nats)")
    if len(results) > 1:
        kl_axes.plot([], [], "-", color="black", label="KL A‖B")
        kl_axes.plot([], [], "--", color="black", label="KL B‖A")
    kl_axes.legend(fontsize="small")
    if len(positions) <= 40:
        labels = [printable_label(label).replace("$", r"\$") for label in results[0].labels]
        kl_axes.set_xticks(positions, labels, rotation=60, ha="right", fontsize="small")
        kl_axes.set_xlabel("next token (teacher-forced)")
    else:
        kl_axes.set_xlabel("position")
    figure.tight_layout()
    try:
        return save_figure(figure, target)
    finally:
        plt.close(figure)
