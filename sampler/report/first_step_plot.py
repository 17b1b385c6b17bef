"""The first-step plot of a logged run: one prompt's next-token probabilities at the first
step, grouped bars per temperature (re-exported by :mod:`sampler.report.run_plots`)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np

from sampler.errors import InvalidInputError
from sampler.plots.figures import plain_text, printable_label, pyplot
from sampler.report.temperature_axis import temperature_colours, temperature_tick

__all__ = ["MAX_BAR_TOKENS", "first_step_bars"]

MAX_BAR_TOKENS = 10


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
    colours = temperature_colours(plt, len(by_temperature))
    for i, (temperature, entries) in enumerate(by_temperature.items()):
        probs = {int(e["token"]): float(e["prob"]) for e in entries}
        heights = [probs.get(token, np.nan) for token in tokens]
        offset = (i - (len(by_temperature) - 1) / 2) * width
        axes.bar(
            positions + offset,
            heights,
            width,
            color=colours[i],
            label=f"τ = {temperature_tick(temperature)}",
        )
    axes.set_xticks(
        positions,
        [plain_text(printable_label(labels[t])) for t in tokens],
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
    axes.set_title(plain_text(f"First-step probabilities for {shown!r}"))
    axes.legend(fontsize="small", ncols=2 if len(by_temperature) > 4 else 1)
    figure.tight_layout()
    return figure
