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
samples of a prompt are one completion, counted once by the columns). Every column gets a 95 %
interval from an expanded percentile bootstrap over prompts (:mod:`sampler.report.bootstrap`;
rows of one prompt are resampled together), and each column of adjacent temperatures a paired t-test
over their common prompts (:mod:`sampler.report.paired`): an ordering whose p-value is 0.05 or
more is reported as not significant. Below :data:`~sampler.report.bootstrap.MIN_PROMPTS`
prompts the reports warn that the intervals are unreliable and test no ordering.
"""

from __future__ import annotations

import itertools
import math
import textwrap
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from sampler.report.bootstrap import CONFIDENCE, MIN_PROMPTS, RESAMPLES, ratio_interval
from sampler.report.paired import paired_p_values
from sampler.report.prompt_sums import LOG_COLUMNS, TemperatureSums, fold
from sampler.tables import aligned_table

__all__ = [
    "COLUMNS",
    "RESAMPLES",
    "cell",
    "format_summary",
    "interval_caption",
    "interval_rows",
    "interval_warning",
    "markdown_summary",
    "ordering_notes",
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


def summarize(
    completions: Iterable[dict], resamples: int = RESAMPLES, seed: int = 0
) -> list[dict[str, Any]]:
    """One dict per temperature (ascending) from run-log completions (with steps).

    Each holds ``temperature``, ``rows``, ``distinct`` (different completions), ``prompts``,
    every column of :data:`COLUMNS`, ``<column>_ci`` (a ``(low, high)`` 95 % interval, NaN
    with fewer than two prompts that have a value), and against the previous temperature
    ``not_significant`` (the columns whose change is not significant at 95 %) and
    ``untested`` (the columns whose change is not tested: fewer than
    :data:`~sampler.report.bootstrap.MIN_PROMPTS` common prompts with a value); both are
    empty on the first. ``completions`` is read once, so a generator of a large run's rows is
    never held in memory whole.
    """
    rng = np.random.default_rng(seed)
    folded = fold(completions)
    summary = []
    for index, sums in enumerate(folded):
        row: dict[str, Any] = {"temperature": sums.temperature, "rows": sums.rows}
        row["distinct"], row["prompts"] = sums.distinct, len(sums.prompts)
        for key, _ in COLUMNS:
            row[key] = sums.value(key)
            low, high = ratio_interval(
                *sums.parts(key), rng, resamples, CONFIDENCE, sums.bounds(key)
            )
            row[f"{key}_ci"] = (math.exp(low), math.exp(high)) if key in LOG_COLUMNS else (
                low, high
            )
        row["not_significant"], row["untested"] = (
            _orderings(folded[index - 1], sums) if index else ([], [])
        )
        summary.append(row)
    return summary


def _orderings(before: TemperatureSums, after: TemperatureSums) -> tuple[list[str], list[str]]:
    """Columns whose paired t-test over common prompts is not significant, and untested ones."""
    common = [p for p in before.prompts if p in set(after.prompts)]
    columns = [[before.prompts.index(p) for p in common], [after.prompts.index(p) for p in common]]
    flat, untested = [], []
    for key, _ in COLUMNS:
        sides = [
            tuple(part[where] for part in sums.parts(key))
            for sums, where in zip((before, after), columns, strict=True)
        ]
        valued = (sides[0][1] > 0) & (sides[1][1] > 0)  # prompts with a value on both sides
        if valued.sum() < MIN_PROMPTS:
            untested.append(key)
            continue
        kept = [tuple(part[valued] for part in side) for side in sides]
        if not paired_p_values(*kept)[0] < 1 - CONFIDENCE:
            flat.append(key)
    return flat, untested


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


def _steps(summary: Sequence[dict[str, Any]], key: str) -> dict[str, list[str]]:
    """Per column title, the adjacent steps ``τ → τ'`` listed under ``key`` of the later row."""
    titles = dict(COLUMNS)
    steps: dict[str, list[str]] = {}
    for before, after in itertools.pairwise(summary):
        step = f"{cell('temperature', before['temperature'])} → {after['temperature']:g}"
        for column in after.get(key, []):
            steps.setdefault(titles[column], []).append(step)
    return steps


def interval_caption(summary: Sequence[dict[str, Any]] = ()) -> str:
    """What the interval table holds, and how it was computed for these prompt counts."""
    caption = (
        f"95 % intervals: expanded percentile bootstrap over prompts ({RESAMPLES:,} resamples; a "
        "prompt's rows are resampled together)"
    )
    if any(row["prompts"] < MIN_PROMPTS for row in summary):
        caption += f"; below {MIN_PROMPTS} prompts: mean ± t(prompts − 1) standard errors"
    return caption


def interval_warning(summary: Sequence[dict[str, Any]]) -> str | None:
    """A plain warning when some temperature's intervals rest on fewer than 8 prompts."""
    fewest = min((row["prompts"] for row in summary), default=MIN_PROMPTS)
    if fewest >= MIN_PROMPTS:
        return None
    return (
        f"WARNING: these intervals rest on only {fewest} prompt{'s' * (fewest != 1)}, fewer "
        f"than {MIN_PROMPTS}: read them as rough ranges. From so few prompts an interval is "
        "wide, and for a skewed column it misses the true value about 1 time in 9 rather "
        "than 1 in 20 (by simulation at 3 prompts); no ordering between temperatures is "
        f"tested on fewer than {MIN_PROMPTS} shared prompts. Use {MIN_PROMPTS} prompts or "
        "more (32 for skewed columns such as PPL and rep-4)."
    )


def ordering_notes(summary: Sequence[dict[str, Any]]) -> list[tuple[str, list[str]]]:
    """``(heading, items)`` about the orderings between adjacent temperatures.

    The columns whose change is not significant (among those tested), and those not tested;
    when no ordering is tested at all, one heading and no list, so nothing reads as an
    ordering.
    """
    pairs = len(summary) - 1
    if pairs < 1:
        return []
    untested = _steps(summary, "untested")
    if sum(len(steps) for steps in untested.values()) == pairs * len(COLUMNS):
        return [(
            "No ordering between adjacent temperatures is tested: they share fewer than "
            f"{MIN_PROMPTS} prompts.",
            [],
        )]
    notes = []
    flat = _steps(summary, "not_significant")
    if flat:
        heading = "Not significant between adjacent temperatures (paired t-test, 95 %):"
        notes.append((heading, [f"{title}: {', '.join(steps)}" for title, steps in flat.items()]))
    if untested:
        heading = f"Not tested (fewer than {MIN_PROMPTS} common prompts with a value):"
        notes.append(
            (heading, [f"{title}: {', '.join(steps)}" for title, steps in untested.items()])
        )
    return notes


def format_summary(summary: Sequence[dict[str, Any]]) -> str:
    """The summary for a terminal: means, their intervals, and what is not significant."""
    lines = aligned_table(*table_rows(summary))
    lines += ["", interval_caption(summary) + ":", *aligned_table(*interval_rows(summary))]
    warning = interval_warning(summary)
    if warning:
        lines += ["", *textwrap.wrap(warning, 100)]
    for heading, items in ordering_notes(summary):
        lines += ["", heading, *(f"  {item}" for item in items)]
    return "\n".join(lines)


def _markdown_table(header: list[str], body: list[list[str]]) -> list[str]:
    rule = "|" + "|".join(" --- " for _ in header) + "|"
    return ["| " + " | ".join(header) + " |", rule, *("| " + " | ".join(r) + " |" for r in body)]


def markdown_summary(summary: Sequence[dict[str, Any]]) -> str:
    """The summary as Markdown: the two tables, the warning and the notes on orderings."""
    lines = _markdown_table(*table_rows(summary))
    lines += ["", f"{interval_caption(summary)}:", "", *_markdown_table(*interval_rows(summary))]
    warning = interval_warning(summary)
    if warning:
        lines += ["", f"**{warning}**"]
    for heading, items in ordering_notes(summary):
        lines += ["", heading, *([""] if items else []), *(f"- {item}" for item in items)]
    return "\n".join(lines)
