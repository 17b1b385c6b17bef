"""Plots of a logged run: entropy and diversity against temperature, traces, first-step bars.

Each function returns a matplotlib Figure (the caller closes it); :func:`save_run_plots` writes
all four into a folder under fixed names and :func:`render_run_plots` renders them to PNG bytes
in memory (for a self-contained HTML page).
"""

from __future__ import annotations

import colorsys
import io
import math
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
from sampler.report.telemetry_plots import TELEMETRY_PLOTS, telemetry_figures

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
MAX_BAR_TOKENS = 10
def _plain(text: str) -> str:
    # Model and user text goes into tick labels and titles: a pair of '$' would turn into
    # mathtext (and may fail to parse), so every '$' is escaped.
    return text.replace("$", r"\$")


def _temperature_tick(temperature: float) -> str:
    if temperature == 0:
        return "0 (greedy)"
    return "∞ (uniform)" if math.isinf(temperature) else f"{temperature:g}"


_LINEAR_AXIS_MAX = 1e6


def _positions(temperatures: list[float]) -> list[float]:
    """x of each temperature: τ itself, and τ = ∞ one mean spacing right of the largest finite τ.

    Above τ = 1e6 (τ may be up to 1.8e308) a linear axis would overflow and crush every other
    temperature into one point: the temperatures are then evenly spaced in order, labelled.
    """
    finite = [t for t in temperatures if math.isfinite(t)]
    top = max(finite, default=0.0)
    if top > _LINEAR_AXIS_MAX:
        ranks = sorted(range(len(temperatures)), key=lambda index: temperatures[index])
        return [float(ranks.index(index)) for index in range(len(temperatures))]
    spacing = (top - min(finite, default=0.0)) / max(len(finite) - 1, 1) or 1.0
    return [t if math.isfinite(t) else top + spacing for t in temperatures]


def _temperature_colours(plt: Any, count: int) -> list[tuple[float, float, float]]:
    """coolwarm from cold to hot, with its pale middle darkened so lines show on white."""
    colours = []
    for red, green, blue, _ in plt.get_cmap("coolwarm")(np.linspace(0, 1, count)):
        hue, lightness, saturation = colorsys.rgb_to_hls(red, green, blue)
        colours.append(colorsys.hls_to_rgb(hue, min(lightness, 0.6), saturation))
    return colours


def _require_rows(summary: Sequence[dict[str, Any]]) -> list[float]:
    if not summary:
        raise InvalidInputError("the run summary is empty: a plot needs at least one completion")
    return [row["temperature"] for row in summary]


def _temperature_axis(axes: Any, temperatures: list[float]) -> None:
    positions = _positions(temperatures)
    axes.set_xticks(
        positions,
        [_temperature_tick(t) for t in temperatures],
        rotation=30 if len(temperatures) > 6 else 0,
    )
    axes.set_xlabel("temperature τ")
    span = max(positions) - min(positions) or 1.0
    axes.set_xlim(min(positions) - 0.08 * span, max(positions) + 0.08 * span)


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
            _positions(temperatures),
            [row[key] for row in summary],
            yerr=_interval_bars(summary, key),
            label=label,
            color=colour,
            marker=marker,
            capsize=4,
            linewidth=1.5,
        )
    _temperature_axis(axes, temperatures)
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
    colours = _temperature_colours(plt, len(temperatures))
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
            label=f"τ = {_temperature_tick(temperature)}",
        )
    axes.set_xlabel("generation step")
    axes.set_ylabel("mean entropy of the final distribution (nats)")
    axes.set_title("Entropy per generation step, by temperature")
    axes.grid(alpha=0.3)
    axes.legend(fontsize="small", ncols=2 if len(temperatures) > 5 else 1)
    figure.tight_layout()
    return figure


def _first_step_tops(completions: Sequence[dict[str, Any]]) -> dict[str, dict[float, list]]:
    tops: dict[str, dict[float, list]] = defaultdict(dict)
    for row in completions:
        top = (row.get("extra") or {}).get("first_step_top")
        if row.get("sample") == 0 and top:
            tops[row["prompt"]][row["temperature"]] = top
    return tops


def first_step_bars(completions: Sequence[dict[str, Any]], prompt: str | None = None) -> Any:
    """Grouped bars of one prompt's first-step probabilities, one group per temperature.

    The tokens are the union of each temperature's stored top list, the ``MAX_BAR_TOKENS``
    with the highest probability at any temperature. A token missing from one temperature's
    list gets no bar there (its probability is only known to be below that list's last one).
    ``prompt`` defaults to the first prompt with first-step data; a run without any gives a
    figure that says so, so a report can still be drawn.
    """
    tops = _first_step_tops(completions)
    plt = pyplot()
    figure, axes = plt.subplots(figsize=(9, 4.8))
    if prompt is None and not tops:
        axes.text(
            0.5,
            0.5,
            "no first-step distribution stored in this run",
            ha="center",
            va="center",
            transform=axes.transAxes,
        )
        axes.set_axis_off()
        axes.set_title("First-step next-token probabilities")
        return figure
    if prompt is None:
        prompt = next(iter(tops))
    if prompt not in tops:
        plt.close(figure)
        known = ", ".join(repr(p[:40]) for p in list(tops)[:5]) or "none"
        raise InvalidInputError(
            f"prompt {prompt[:60]!r} has no first-step data in this run; prompts with it: {known}"
        )
    by_temperature = dict(sorted(tops[prompt].items()))
    best: dict[int, float] = {}
    labels: dict[int, str] = {}
    for entries in by_temperature.values():
        for entry in entries:
            token = int(entry["token"])
            best[token] = max(best.get(token, 0.0), float(entry["prob"]))
            labels.setdefault(token, str(entry["label"]))
    tokens = sorted(best, key=lambda t: (-best[t], t))[:MAX_BAR_TOKENS]
    positions = np.arange(len(tokens))
    width = 0.8 / len(by_temperature)
    colours = _temperature_colours(plt, len(by_temperature))
    for i, (temperature, entries) in enumerate(by_temperature.items()):
        probs = {int(e["token"]): float(e["prob"]) for e in entries}
        heights = [probs.get(token, np.nan) for token in tokens]
        offset = (i - (len(by_temperature) - 1) / 2) * width
        axes.bar(
            positions + offset,
            heights,
            width,
            color=colours[i],
            label=f"τ = {_temperature_tick(temperature)}",
        )
    axes.set_xticks(
        positions,
        [_plain(printable_label(labels[t])) for t in tokens],
        rotation=45,
        ha="right",
        rotation_mode="anchor",
        family="monospace",
    )
    axes.set_xlabel("first generated token (␣ = space)")
    axes.set_ylabel("probability")
    axes.set_ylim(0, 1.05)
    shown = " ".join(prompt.split())
    shown = shown if len(shown) <= 60 else shown[:59] + "…"
    axes.set_title(_plain(f"First-step probabilities for {shown!r}"))
    axes.legend(fontsize="small", ncols=2 if len(by_temperature) > 4 else 1)
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
            _positions(temperatures),
            [row[f"distinct_{n}"] for row in summary],
            marker=marker,
            linestyle=style,
            linewidth=1.8,
            label=f"distinct-{n}",
        )
    _temperature_axis(axes, temperatures)
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
