"""Plots of what adaptive and stateful stages did, drawn only for runs where they were on:
mirostat's μ over the steps, the temperature dynamic temperature chose against entropy, how
often XTC fired and what it removed, DRY's repeats and penalties over the steps, adaptive-p's
running average of chosen probabilities and the target it aimed at, and the probability a
grammar's mask removed at each step.

Each figure reads the steps' telemetry (``StepStats.TELEMETRY``), which is absent from a step
where its stage was off, so a run without these stages gets none of these plots.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from sampler.plots.figures import finish, pyplot

__all__ = [
    "TELEMETRY_PLOTS",
    "adaptive_p_traces",
    "chosen_temperature_vs_entropy",
    "dry_traces",
    "grammar_traces",
    "mirostat_traces",
    "telemetry_figures",
    "xtc_bars",
]

TELEMETRY_PLOTS = {
    "mirostat_mu.png": "Mirostat's target surprise μ per generation step",
    "dynamic_temperature.png": "The temperature dynamic temperature chose, against entropy",
    "xtc.png": "How often XTC fired, and how many tokens it removed",
    "dry.png": "DRY: the longest repeat a candidate would extend, and the penalty",
    "adaptive_p.png": "Adaptive-p: its average of chosen probabilities and its target per step",
    "grammar.png": "The grammar's mask: the model's probability it removed, and forced steps",
}


def _has(completions: Sequence[dict[str, Any]], field: str) -> bool:
    return any(field in step for row in completions for step in row["steps"])


def _label(row: dict[str, Any]) -> str:
    params = row.get("params") or {}
    tau = params.get("mirostat_tau")
    version = params.get("mirostat")
    return f"τ = {row['temperature']:g}" + (f", v{version}, target {tau:g} bits" if tau else "")


def mirostat_traces(completions: Sequence[dict[str, Any]]) -> Any:
    """μ before each step, the mean over each setting's rows (thin lines: single rows)."""
    by_setting: dict[str, list[list[float]]] = defaultdict(list)
    for row in completions:
        trace = [s["mirostat_mu"] for s in row["steps"] if "mirostat_mu" in s]
        if trace:
            by_setting[_label(row)].append(trace)
    plt = pyplot()
    figure, axes = plt.subplots(figsize=(7.5, 4.5))
    for index, (label, traces) in enumerate(sorted(by_setting.items())):
        colour = plt.get_cmap("tab10")(index % 10)
        for trace in traces[:8]:
            axes.plot(np.arange(1, len(trace) + 1), trace, color=colour, alpha=0.2, linewidth=0.8)
        length = max(len(trace) for trace in traces)
        mean = [np.mean([t[i] for t in traces if len(t) > i]) for i in range(length)]
        axes.plot(np.arange(1, length + 1), mean, color=colour, linewidth=2, label=label)
    # μ starts at 2τ and climbs while the text is less surprising than τ
    return finish(
        figure, axes, "generation step", "μ before the step (bits)", "Mirostat's μ over the steps"
    )


def chosen_temperature_vs_entropy(completions: Sequence[dict[str, Any]]) -> Any:
    """Each step's chosen temperature against the model's entropy there, by set temperature."""
    points: dict[float, list[tuple[float, float]]] = defaultdict(list)
    for row in completions:
        for step in row["steps"]:
            if "temperature_chosen" in step:
                points[row["temperature"]].append(
                    (step["entropy_base"], step["temperature_chosen"])
                )
    plt = pyplot()
    figure, axes = plt.subplots(figsize=(7.5, 4.5))
    for index, (temperature, pairs) in enumerate(sorted(points.items())):
        entropy, chosen = np.array(pairs).T
        axes.scatter(entropy, chosen, s=8, alpha=0.5, color=plt.get_cmap("tab10")(index % 10),
                     label=f"τ = {temperature:g}")
    axes.set_xlabel("entropy of the model's distribution at the step (nats)")
    axes.set_ylabel("temperature chosen")
    axes.set_title("Dynamic temperature: hotter where the model is unsure")
    axes.grid(alpha=0.3)
    axes.legend(fontsize="small", markerscale=2)
    figure.tight_layout()
    return figure


def xtc_bars(completions: Sequence[dict[str, Any]]) -> Any:
    """Per temperature: the share of steps XTC's coin fired, and tokens removed when it did."""
    fired: dict[float, list[float]] = defaultdict(list)
    removed: dict[float, list[float]] = defaultdict(list)
    for row in completions:
        for step in row["steps"]:
            if "xtc_fired" in step:
                fired[row["temperature"]].append(step["xtc_fired"])
                if step["xtc_fired"]:
                    removed[row["temperature"]].append(step["xtc_removed"])
    temperatures = sorted(fired)
    plt = pyplot()
    figure, (left, right) = plt.subplots(1, 2, figsize=(9, 4))
    labels = [f"{t:g}" for t in temperatures]
    left.bar(labels, [np.mean(fired[t]) for t in temperatures], color="tab:purple")
    left.set_ylabel("share of steps the coin fired")
    right.bar(labels, [np.mean(removed[t]) if removed[t] else 0 for t in temperatures])
    right.set_ylabel("tokens removed when it fired (mean)")
    for axes in (left, right):
        axes.set_xlabel("temperature τ")
        axes.grid(alpha=0.3, axis="y")
    figure.suptitle("XTC: how often it fired, and what it removed")
    figure.tight_layout()
    return figure


def dry_traces(completions: Sequence[dict[str, Any]]) -> Any:
    """Per step, the mean over rows of DRY's longest repeat found and its largest penalty."""
    by_step: dict[int, list[tuple[float, float]]] = defaultdict(list)
    for row in completions:
        for index, step in enumerate(row["steps"]):
            if "dry_match" in step:
                by_step[index].append((step["dry_match"], step["dry_penalty"]))
    steps = sorted(by_step)
    match = [np.mean([m for m, _ in by_step[i]]) for i in steps]
    penalty = [np.mean([p for _, p in by_step[i]]) for i in steps]
    plt = pyplot()
    figure, axes = plt.subplots(figsize=(7.5, 4.5))
    axes.plot(np.array(steps) + 1, match, color="tab:blue", label="longest repeat (tokens)")
    axes.set_xlabel("generation step")
    axes.set_ylabel("longest repeat a candidate would extend (mean)")
    other = axes.twinx()
    other.plot(np.array(steps) + 1, penalty, color="tab:red", label="largest penalty")
    other.set_ylabel("largest penalty subtracted (mean, logits)")
    axes.set_title("DRY over the steps")
    axes.grid(alpha=0.3)
    figure.legend(loc="upper left", fontsize="small")
    figure.tight_layout()
    return figure


def _mean_pairs_per_step(
    completions: Sequence[dict[str, Any]], key: str, second: str
) -> list[tuple[float, np.ndarray, list[float], list[float]]]:
    """Per temperature (ascending): the steps (1-based) where rows logged ``key``, and the mean
    over those rows of ``key`` and of ``second`` (0 where a step lacks it) at each step."""
    by_temperature: dict[float, dict[int, list[tuple[float, float]]]] = defaultdict(
        lambda: defaultdict(list)
    )
    for row in completions:
        for index, step in enumerate(row["steps"]):
            if key in step:
                pair = (step[key], step.get(second, 0.0))
                by_temperature[row["temperature"]][index].append(pair)
    traces = []
    for temperature, by_step in sorted(by_temperature.items()):
        steps = sorted(by_step)
        first = [float(np.mean([a for a, _ in by_step[i]])) for i in steps]
        other = [float(np.mean([b for _, b in by_step[i]])) for i in steps]
        traces.append((temperature, np.array(steps) + 1, first, other))
    return traces


def adaptive_p_traces(completions: Sequence[dict[str, Any]]) -> Any:
    """Per step, by temperature, the mean over rows of adaptive-p's running average of chosen
    probabilities (solid) and of the target it aimed at (dashed)."""
    plt = pyplot()
    figure, axes = plt.subplots(figsize=(7.5, 4.5))
    traces = _mean_pairs_per_step(completions, "adaptive_average", "adapted_target")
    for index, (temperature, x, average, target) in enumerate(traces):
        colour = plt.get_cmap("tab10")(index % 10)
        axes.plot(x, average, color=colour, linewidth=2, label=f"τ = {temperature:g}: average")
        axes.plot(x, target, color=colour, linestyle="--", label=f"τ = {temperature:g}: target")
    # the target moves against the average: 2·target − average, held within [0, 1]
    return finish(
        figure, axes, "generation step", "probability", "Adaptive-p over the steps"
    )


def grammar_traces(completions: Sequence[dict[str, Any]]) -> Any:
    """Per step, by temperature, the mean over rows of the probability the grammar's mask
    removed (solid) and the share of rows whose step was forced, one legal token (dotted)."""
    plt = pyplot()
    figure, axes = plt.subplots(figsize=(7.5, 4.5))
    traces = _mean_pairs_per_step(completions, "grammar_removed_mass", "grammar_forced")
    for index, (temperature, x, removed, forced) in enumerate(traces):
        colour = plt.get_cmap("tab10")(index % 10)
        axes.plot(x, removed, color=colour, linewidth=2, label=f"τ = {temperature:g}: removed")
        axes.plot(x, forced, color=colour, linestyle=":", label=f"τ = {temperature:g}: forced")
    axes.set_ylim(-0.02, 1.02)
    return finish(
        figure, axes, "generation step", "probability / share of rows", "The grammar's mask"
    )


def telemetry_figures(completions: Sequence[dict[str, Any]]) -> dict[str, Callable[[], Any]]:
    """File name → figure maker, for the stages this run used."""
    figures: dict[str, Callable[[], Any]] = {}
    if _has(completions, "mirostat_mu"):
        figures["mirostat_mu.png"] = lambda: mirostat_traces(completions)
    if _has(completions, "temperature_chosen"):
        figures["dynamic_temperature.png"] = lambda: chosen_temperature_vs_entropy(completions)
    if _has(completions, "xtc_fired"):
        figures["xtc.png"] = lambda: xtc_bars(completions)
    if _has(completions, "dry_match"):
        figures["dry.png"] = lambda: dry_traces(completions)
    if _has(completions, "adaptive_average"):
        figures["adaptive_p.png"] = lambda: adaptive_p_traces(completions)
    if _has(completions, "grammar_removed_mass"):
        figures["grammar.png"] = lambda: grammar_traces(completions)
    return figures
