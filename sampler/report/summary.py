"""Per-temperature summary of a run, each mean with a 95 % interval, adjacent orderings tested.

Definitions (see also :mod:`sampler.report.metrics`):

* ``length``: mean generated tokens per row;
* entropy columns and ``surprisal``: mean over every step of every row at that temperature
  (a row that ends at EOS has one step more than tokens: the step that drew EOS);
* ``ppl_base``: perplexity of the generated text under the base model (τ = 1, no filters),
  ``exp(mean surprisal_base)``;
* ``distinct_1/2/3``: unique n-grams / total n-grams among one prompt's rows at the
  temperature, averaged over prompts (diversity between a prompt's samples, like self-BLEU;
  n-grams pooled over different prompts would also count how different the prompts are);
* ``self_bleu4``: Texygen self-BLEU-4 among the samples of one prompt, averaged over prompts;
* ``repetition``: seq-rep-4 (Welleck et al.), share of repeated 4-grams within a row, averaged;
* ``greedy_agreement``: share of steps whose token is the base model's argmax.

``rows`` also says how many of a temperature's rows are different completions (greedy's
samples of a prompt are one completion repeated). Every column gets a 95 % percentile interval
from a bootstrap over prompts (rows of one prompt are resampled together), and each column of
adjacent temperatures a paired bootstrap of the difference over their common prompts: an
ordering whose interval contains 0 is reported as not significant. With few prompts the
intervals are rough (3 prompts allow only 10 distinct resamples).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from sampler.report.bootstrap import TemperatureSums, fold
from sampler.tables import aligned_table

__all__ = [
    "COLUMNS",
    "RESAMPLES",
    "cell",
    "format_summary",
    "interval_rows",
    "markdown_summary",
    "significance_notes",
    "summarize",
    "table_rows",
]

# (key, title) of the columns with a mean; "rows" and the temperature come first in tables.
COLUMNS = (
    ("length", "length"),
    ("entropy_final", "H final"),
    ("entropy_base", "H base"),
    ("surprisal", "surprisal"),
    ("ppl_base", "PPL base"),
    ("distinct_1", "dist-1"),
    ("distinct_2", "dist-2"),
    ("distinct_3", "dist-3"),
    ("self_bleu4", "self-BLEU4"),
    ("repetition", "rep-4"),
    ("greedy_agreement", "greedy agr."),
)
RESAMPLES = 2000
CONFIDENCE = 0.95


def _percentiles(values: np.ndarray) -> tuple[float, float]:
    finite = values[np.isfinite(values)]
    if finite.size < len(values) * 0.5:
        return math.nan, math.nan
    tail = (1 - CONFIDENCE) / 2 * 100
    low, high = np.percentile(finite, [tail, 100 - tail])
    return float(low), float(high)


def _draws(rng: np.random.Generator, prompts: int, resamples: int) -> np.ndarray:
    """``[resamples, prompts]``: how often each prompt is drawn in each bootstrap resample."""
    picks = rng.integers(0, prompts, size=(resamples, prompts))
    return np.stack([np.bincount(row, minlength=prompts) for row in picks]).astype(np.float64)


def summarize(
    completions: Iterable[dict], resamples: int = RESAMPLES, seed: int = 0
) -> list[dict[str, Any]]:
    """One dict per temperature (ascending) from run-log completions (with steps).

    Each holds ``temperature``, ``rows``, ``distinct`` (different completions), ``prompts``,
    every column of
    :data:`COLUMNS`, ``<column>_ci`` (a ``(low, high)`` 95 % interval, NaN with one prompt),
    and ``not_significant``: the columns whose difference from the previous temperature is
    not significant at 95 %. ``completions`` is read once, so a generator of a large run's
    rows is never held in memory whole.
    """
    rng = np.random.default_rng(seed)
    folded = fold(completions)
    summary = []
    for index, sums in enumerate(folded):
        point = {k: float(v[0]) for k, v in sums.columns(np.ones((1, len(sums.prompts)))).items()}
        row: dict[str, Any] = {"temperature": sums.temperature, "rows": sums.rows}
        row["distinct"], row["prompts"] = sums.distinct, len(sums.prompts)
        row |= {key: point[key] for key, _ in COLUMNS}
        boot = sums.columns(_draws(rng, len(sums.prompts), resamples))
        for key, _ in COLUMNS:
            interval = _percentiles(boot[key]) if len(sums.prompts) > 1 else (math.nan, math.nan)
            row[f"{key}_ci"] = interval
        row["not_significant"] = (
            _not_significant(folded[index - 1], sums, rng, resamples) if index else []
        )
        summary.append(row)
    return summary


def _not_significant(
    before: TemperatureSums, after: TemperatureSums, rng: np.random.Generator, resamples: int
) -> list[str]:
    """Columns whose paired bootstrap difference (over common prompts) has 0 in its interval."""
    common = [p for p in before.prompts if p in set(after.prompts)]
    if len(common) < 2:
        return [key for key, _ in COLUMNS]
    draws = _draws(rng, len(common), resamples)
    counts = []
    for sums in (before, after):
        full = np.zeros((resamples, len(sums.prompts)))
        full[:, [sums.prompts.index(p) for p in common]] = draws
        counts.append(sums.columns(full))
    flat = []
    for key, _ in COLUMNS:
        low, high = _percentiles(counts[1][key] - counts[0][key])
        if math.isnan(low) or low <= 0 <= high:
            flat.append(key)
    return flat


def cell(key: str, value: Any) -> str:
    if key == "temperature":
        return "0 (greedy)" if value == 0 else f"{value:g}"
    if key in ("rows", "prompts"):
        return str(value)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:.1f}" if key == "length" else f"{value:.3f}"


def _interval(key: str, interval: tuple[float, float]) -> str:
    low, high = interval
    if math.isnan(low):
        return "–"
    return f"{cell(key, low)}–{cell(key, high)}"


def table_rows(summary: Sequence[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the table of means."""
    header = ["τ", "rows", *(title for _, title in COLUMNS)]
    body = [
        [cell("temperature", row["temperature"]), _rows(row)]
        + [cell(key, row[key]) for key, _ in COLUMNS]
        for row in summary
    ]
    return header, body


def _rows(row: dict[str, Any]) -> str:
    rows, distinct = row["rows"], row.get("distinct", row["rows"])
    return str(rows) if distinct == rows else f"{rows} ({distinct} distinct)"


def interval_rows(summary: Sequence[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the table of 95 % intervals."""
    header = ["τ", "prompts", *(title for _, title in COLUMNS)]
    body = [
        [cell("temperature", row["temperature"]), cell("prompts", row["prompts"])]
        + [_interval(key, row[f"{key}_ci"]) for key, _ in COLUMNS]
        for row in summary
    ]
    return header, body


def significance_notes(summary: Sequence[dict[str, Any]]) -> list[str]:
    """One line per column whose change between some adjacent temperatures is not significant."""
    titles = dict(COLUMNS)
    flat: dict[str, list[str]] = {}
    for before, after in itertools.pairwise(summary):
        step = f"{cell('temperature', before['temperature'])} → {after['temperature']:g}"
        for key in after["not_significant"]:
            flat.setdefault(key, []).append(step)
    return [f"{titles[key]}: {', '.join(steps)}" for key, steps in flat.items()]


def _caption() -> str:
    return (
        f"95 % intervals: bootstrap over prompts ({RESAMPLES:,} resamples; a prompt's rows "
        "are resampled together)"
    )


def format_summary(summary: Sequence[dict[str, Any]]) -> str:
    """The summary for a terminal: means, their intervals, and what is not significant."""
    lines = aligned_table(*table_rows(summary))
    lines += ["", _caption() + ":", *aligned_table(*interval_rows(summary))]
    notes = significance_notes(summary)
    if notes:
        lines += ["", "Not significant between adjacent temperatures (paired bootstrap, 95 %):"]
        lines += [f"  {note}" for note in notes]
    return "\n".join(lines)


def _markdown_table(header: list[str], body: list[list[str]]) -> list[str]:
    rule = "|" + "|".join(" --- " for _ in header) + "|"
    return ["| " + " | ".join(header) + " |", rule, *("| " + " | ".join(r) + " |" for r in body)]


def markdown_summary(summary: Sequence[dict[str, Any]]) -> str:
    """The summary as Markdown: the two tables and the significance notes."""
    lines = _markdown_table(*table_rows(summary))
    lines += ["", f"{_caption()}:", "", *_markdown_table(*interval_rows(summary))]
    notes = significance_notes(summary)
    if notes:
        lines += ["", "Not significant between adjacent temperatures (paired bootstrap, 95 %):", ""]
        lines += [f"- {note}" for note in notes]
    return "\n".join(lines)
