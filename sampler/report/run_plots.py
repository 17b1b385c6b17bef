"""Plots of a logged run: entropy and diversity against temperature, traces, first-step bars.

Each function returns a matplotlib Figure (the caller closes it); :func:`save_run_plots` writes
all four into a folder under fixed names and :func:`render_run_plots` renders them to PNG bytes
in memory (for a self-contained HTML page).
"""

from __future__ import annotations

import io
import os
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sampler.errors import InvalidInputError
from sampler.files import atomic_writer
from sampler.plots.figures import finish, printable_label, pyplot
from sampler.report.bootstrap import MIN_PROMPTS
from sampler.report.first_step_plot import first_step_bars
from sampler.report.telemetry_plots import TELEMETRY_PLOTS, telemetry_figures
from sampler.report.temperature_axis import (
    temperature_axis,
    temperature_colours,
    temperature_positions,
    temperature_tick,
)

__all__ = [
    "PLOT_FILES",
    "distinct_vs_temperature",
    "entropy_traces",
    "entropy_vs_temperature",
    "first_step_bars",
    "printable_label",
    "render_run_plots",
    "save_run_plots",
]

#: File name of each run plot → a caption for reports.
PLOT_FILES = {
    "entropy_vs_temperature.png": "Mean entropy against temperature",
    "entropy_traces.png": "Entropy per generation step",
    "first_step.png": "First-step next-token probabilities",
    "distinct_vs_temperature.png": "Distinct n-grams against temperature",
    **TELEMETRY_PLOTS,
}
_positions = temperature_positions  # the name tests/test_bad_output.py imports from here


def _require_rows(summary: Sequence[dict[str, Any]]) -> list[float]:
    if not summary:
        raise InvalidInputError("the run summary is empty: a plot needs at least one completion")
    return [row["temperature"] for row in summary]


def _interval_bars(summary: Sequence[dict[str, Any]], key: str) -> np.ndarray:
    """``[2, T]`` distances from each mean down and up to its interval (0 where there is none)."""
    means = np.array([row[key] for row in summary])
    low = np.array([row[f"{key}_ci"][0] for row in summary])
    high = np.array([row[f"{key}_ci"][1] for row in summary])
    bars = np.stack([means - low, high - means])
    return np.where(np.isfinite(bars), np.maximum(bars, 0.0), 0.0)


def entropy_vs_temperature(summary: Sequence[dict[str, Any]]) -> Any:
    """Mean final and base entropy per temperature, error bars their 95 % intervals.

    Temperature 0 (greedy) sits at x = 0 on a linear axis.
    """
    temperatures = _require_rows(summary)
    plt = pyplot()
    figure, axes = plt.subplots(figsize=(7.5, 4.5))
    series = (
        ("entropy_final", "H final (distribution sampled from)", "tab:red", "o"),
        ("entropy_base", "H base (τ = 1, no filters)", "tab:blue", "s"),
    )
    for key, label, colour, marker in series:
        axes.errorbar(
            temperature_positions(temperatures),
            [row[key] for row in summary],
            yerr=_interval_bars(summary, key),
            label=label,
            color=colour,
            marker=marker,
            capsize=4,
            linewidth=1.5,
        )
    temperature_axis(axes, temperatures)
    fewest = min(row["prompts"] for row in summary)
    title = "Entropy against temperature (95 % intervals over prompts"
    # the report's warning travels with the picture, which may be shown alone
    title += f"; only {fewest}: unreliable)" if fewest < MIN_PROMPTS else ")"
    return finish(figure, axes, axes.get_xlabel(), "mean entropy per step (nats)", title)


def entropy_traces(completions: Sequence[dict[str, Any]]) -> Any:
    """Mean final entropy at each generation step, one line per temperature (cold → hot).

    A step's mean is over the rows still generating at that step, so late steps of a
    temperature whose rows mostly stopped early rest on few rows.
    """
    by_temperature: dict[float, list[list[float]]] = defaultdict(list)
    for row in completions:
        by_temperature[row["temperature"]].append([s["entropy_final"] for s in row["steps"]])
    temperatures = _require_rows([{"temperature": t} for t in sorted(by_temperature)])
    plt = pyplot()
    figure, axes = plt.subplots(figsize=(7.5, 4.5))
    colours = temperature_colours(plt, len(temperatures))
    for colour, temperature in zip(colours, temperatures, strict=True):
        traces = by_temperature[temperature]
        length = max((len(trace) for trace in traces), default=0)
        means = [
            float(np.mean([trace[i] for trace in traces if len(trace) > i])) for i in range(length)
        ]
        axes.plot(
            np.arange(1, length + 1),
            means,
            color=colour,
            linewidth=1.6,
            label=f"τ = {temperature_tick(temperature)}",
        )
    axes.set_xlabel("generation step")
    axes.set_ylabel("mean entropy of the final distribution (nats)")
    axes.set_title("Entropy per generation step, by temperature")
    axes.grid(alpha=0.3)
    axes.legend(fontsize="small", ncols=2 if len(temperatures) > 5 else 1)
    figure.tight_layout()
    return figure


def distinct_vs_temperature(summary: Sequence[dict[str, Any]]) -> Any:
    """distinct-1/2/3 (unique n-grams / all n-grams, over a temperature's rows) against τ."""
    temperatures = _require_rows(summary)
    plt = pyplot()
    figure, axes = plt.subplots(figsize=(7.5, 4.5))
    # Distinct-2 and -3 often both sit at 1.0: line styles keep overlapping lines apart.
    for n, marker, style in ((1, "o", "-"), (2, "s", "--"), (3, "^", ":")):
        axes.plot(
            temperature_positions(temperatures),
            [row[f"distinct_{n}"] for row in summary],
            marker=marker,
            linestyle=style,
            linewidth=1.8,
            label=f"distinct-{n}",
        )
    temperature_axis(axes, temperatures)
    axes.set_ylabel("unique / total n-grams")
    axes.set_ylim(0, 1.05)
    axes.set_title("Diversity against temperature")
    axes.grid(alpha=0.3)
    axes.legend(fontsize="small")
    figure.tight_layout()
    return figure


def _figures(
    summary: Sequence[dict[str, Any]], completions: Sequence[dict[str, Any]]
) -> dict[str, Callable[[], Any]]:
    # Built one at a time by the callers, so only one figure is open at once.
    return {
        "entropy_vs_temperature.png": lambda: entropy_vs_temperature(summary),
        "entropy_traces.png": lambda: entropy_traces(completions),
        "first_step.png": lambda: first_step_bars(completions),
        "distinct_vs_temperature.png": lambda: distinct_vs_temperature(summary),
    } | telemetry_figures(completions)


def save_run_plots(
    summary: Sequence[dict[str, Any]],
    completions: Sequence[dict[str, Any]],
    folder: str | os.PathLike[str],
) -> dict[str, Path]:
    """Write the run plots (four, and the telemetry plots of the stages the run used) as PNGs
    into an existing ``folder``: file name → path."""
    target = Path(folder)
    if not target.is_dir():
        raise InvalidInputError(
            f"plot folder {str(target)!r} does not exist or is not a folder: create it first"
        )
    written = {}
    for name, png in render_run_plots(summary, completions).items():
        with atomic_writer(target / name) as stream:
            stream.write(png)
        written[name] = target / name
    return written


def render_run_plots(
    summary: Sequence[dict[str, Any]], completions: Sequence[dict[str, Any]]
) -> dict[str, bytes]:
    """The run plots (see :func:`save_run_plots`) as PNG bytes, in memory: file name → bytes."""
    _require_rows(summary)
    plt = pyplot()
    rendered = {}
    for name, make in _figures(summary, completions).items():
        figure = make()
        try:
            buffer = io.BytesIO()
            figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
            rendered[name] = buffer.getvalue()
        finally:
            plt.close(figure)
    return rendered
