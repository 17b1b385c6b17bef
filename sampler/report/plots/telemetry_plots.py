"""Plots of what adaptive and stateful stages did, drawn only for runs where they were on:
mirostat's μ over the steps, and the temperature dynamic temperature chose against entropy.

Each figure reads the steps' telemetry (``StepStats.TELEMETRY``), which is absent from a step
where its stage was off, so a run without these stages gets none of these plots.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from sampler.report.plots.figures import pyplot

__all__ = [
    "TELEMETRY_PLOTS",
    "chosen_temperature_vs_entropy",
    "mirostat_traces",
    "telemetry_figures",
]

TELEMETRY_PLOTS = {
    "mirostat_mu.png": "Mirostat's target surprise μ per generation step",
    "dynamic_temperature.png": "The temperature dynamic temperature chose, against entropy",
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
    axes.set_xlabel("generation step")
    axes.set_ylabel("μ before the step (bits)")
    # μ starts at 2τ and climbs while the text is less surprising than τ
    axes.set_title("Mirostat's μ over the steps")
    axes.grid(alpha=0.3)
    axes.legend(fontsize="small")
    figure.tight_layout()
    return figure


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


def telemetry_figures(completions: Sequence[dict[str, Any]]) -> dict[str, Callable[[], Any]]:
    """File name → figure maker, for the stages this run used."""
    figures: dict[str, Callable[[], Any]] = {}
    if _has(completions, "mirostat_mu"):
        figures["mirostat_mu.png"] = lambda: mirostat_traces(completions)
    if _has(completions, "temperature_chosen"):
        figures["dynamic_temperature.png"] = lambda: chosen_temperature_vs_entropy(completions)
    return figures
