"""The teacher-forced analysis as a picture: entropy at every position, one line per τ."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from sampler.analysis.teacher_forced import Analysis
from sampler.plots.figures import check_figure_path, pyplot, save_figure

__all__ = ["plot_analysis"]


def plot_analysis(result: Analysis, path: str | os.PathLike[str]) -> Path:
    """Entropy of the next-token distribution at each position, for every temperature."""
    target = check_figure_path(path)
    plt = pyplot()
    figure, axes = plt.subplots(figsize=(10, 4.2))
    colours = plt.get_cmap("coolwarm")(np.linspace(0, 1, len(result.temperatures)))
    positions = np.arange(len(result.labels))
    for column, (tau, colour) in enumerate(zip(result.temperatures, colours, strict=True)):
        mean = result.entropy[:, column].mean()
        axes.plot(
            positions,
            result.entropy[:, column],
            color=colour,
            marker=".",
            label=f"τ = {tau:g} (mean {mean:.2f})",
        )
    if len(positions) <= 40:
        axes.set_xticks(
            positions,
            [repr(label)[1:-1] for label in result.labels],
            rotation=60,
            ha="right",
            fontsize="small",
        )
        axes.set_xlabel("next token (teacher-forced)")
    else:
        axes.set_xlabel("position")
    axes.set_ylabel("entropy of the next-token distribution (nats)")
    axes.set_title("Exact entropy at every position of a fixed text")
    axes.legend(fontsize="small")
    figure.tight_layout()
    try:
        return save_figure(figure, target)
    finally:
        plt.close(figure)
