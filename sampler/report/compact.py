"""The per-temperature summary in 100 columns: five named columns, a legend, short notes.

The full table (:func:`sampler.report.summary.format_summary`, every column and its interval)
is ``sampler report`` and ``sampler sweep --all-columns``. This one keeps what says most about
temperature: how spread the sampled distribution is, how varied and how repetitive the texts
are, how often they follow greedy, and how likely the model finds them; each mean carries its
95 % interval over prompts in brackets.

Examples
--------
>>> compact_number(0.1234), compact_number(18.74), compact_number(3676.7), compact_number(2e5)
('0.12', '18.7', '3677', '2.0e+05')
>>> compact_cell("greedy_agreement", 0.523, (0.426, 0.613))
'52% [43–61]'
"""

from __future__ import annotations

import itertools
import math
import textwrap
from collections.abc import Sequence
from typing import Any

from sampler.report.bootstrap import MIN_PROMPTS
from sampler.report.summary import cell
from sampler.tables import aligned_table

__all__ = [
    "COMPACT_COLUMNS",
    "GLOSSARY",
    "SHARE_KEYS",
    "compact_cell",
    "compact_number",
    "compact_table",
    "format_compact_summary",
    "legend_lines",
    "short_warning",
    "unsettled_orderings",
]

#: Every value of a summary row in plain words (the JSON results carry it as ``columns``).
GLOSSARY = {
    "temperature": "temperature τ; 0 (greedy) always takes the most likely token",
    "rows": "rows generated at this temperature (prompts × samples)",
    "distinct": "how many of those rows are different completions (greedy's repeats are one)",
    "prompts": "prompts with a row at this temperature: the intervals are over them",
    "length": "mean generated tokens per row",
    "entropy_final": "mean entropy of the distribution each token was drawn from, nats",
    "entropy_base": "mean entropy of the model's own distribution (τ = 1, no filters), nats",
    "surprisal": "mean −log probability of each token under the distribution it was drawn from",
    "ppl_base": "perplexity of the text under the model itself (τ = 1): how surprising it is",
    "distinct_1": "share of distinct tokens among a prompt's texts",
    "distinct_2": "share of distinct token pairs among a prompt's texts (diversity)",
    "distinct_3": "share of distinct token triples among a prompt's texts",
    "self_bleu4": "how alike a prompt's samples are (self-BLEU-4, 0-1; higher = more alike)",
    "repetition": "share of 4-token runs repeated within one text",
    "greedy_agreement": "share of tokens that were the model's top choice (greedy's pick)",
}
#: (summary key, column title) of the columns shown, in order; :data:`GLOSSARY` says what
#: each is.
COMPACT_COLUMNS = (
    ("entropy_final", "entropy"),
    ("distinct_2", "distinct-2"),
    ("repetition", "repetition"),
    ("greedy_agreement", "greedy agreement"),
    ("ppl_base", "perplexity"),
)
#: Columns that are shares, shown in per cent.
SHARE_KEYS = frozenset({"distinct_2", "repetition", "greedy_agreement"})
_INTERVAL_LEGEND = f"95 % interval over prompts (bootstrap; rough below {MIN_PROMPTS} prompts)"


def compact_number(value: float) -> str:
    """At most four significant figures' width: 2 decimals below 10, 1 below 100, then none,
    and scientific notation from 10,000 on."""
    if math.isnan(value):
        return "–"
    size = abs(value)
    if size < 10:
        return f"{value:.2f}"
    if size < 100:
        return f"{value:.1f}"
    return f"{value:.0f}" if size < 10_000 else f"{value:.1e}"


def _part(key: str, value: float, percent: bool) -> str:
    if math.isnan(value):
        return "–"
    return f"{value * 100:.0f}{'%' * percent}" if key in SHARE_KEYS else compact_number(value)


def compact_cell(key: str, mean: Any, interval: tuple[float, float] | None) -> str:
    """``mean [low–high]``; shares in per cent; ``–`` for an undefined value."""
    mean = math.nan if mean is None else float(mean)
    shown = _part(key, mean, percent=True)
    if interval is None or math.isnan(mean) or any(math.isnan(x) for x in interval):
        return shown
    low, high = (_part(key, bound, percent=False) for bound in interval)
    return f"{shown} [{low}–{high}]"


def compact_table(summary: Sequence[dict[str, Any]]) -> list[str]:
    """Lines of the table: temperature, then each column of :data:`COMPACT_COLUMNS`."""
    header = ["τ", *(title for _, title in COMPACT_COLUMNS)]
    body = [
        [cell("temperature", row["temperature"])]
        + [compact_cell(key, row[key], row.get(f"{key}_ci")) for key, _ in COMPACT_COLUMNS]
        for row in summary
    ]
    return aligned_table(header, body)


def legend_lines(width: int = 100) -> list[str]:
    """One line per column shown (and for the brackets): its title, then what it is."""
    entries = [("τ", GLOSSARY["temperature"])]
    entries += [(title, GLOSSARY[key]) for key, title in COMPACT_COLUMNS]
    entries.append(("[low–high]", _INTERVAL_LEGEND))
    name_width = max(len(title) for title, _ in entries)
    return [
        line
        for title, meaning in entries
        for line in textwrap.wrap(
            f"{title.ljust(name_width)}  {meaning}",
            width,
            subsequent_indent=" " * (name_width + 2),
        )
    ]


def short_warning(summary: Sequence[dict[str, Any]]) -> str | None:
    """One sentence when some temperature's intervals rest on fewer than 8 prompts."""
    fewest = min((row["prompts"] for row in summary), default=MIN_PROMPTS)
    if fewest >= MIN_PROMPTS:
        return None
    return (
        f"WARNING: only {fewest} prompt{'s' * (fewest != 1)} (fewer than {MIN_PROMPTS}): the "
        f"intervals are rough ranges and no ordering is tested; use {MIN_PROMPTS} prompts or more."
    )


def unsettled_orderings(summary: Sequence[dict[str, Any]]) -> dict[str, list[str]]:
    """Per column title shown, the adjacent steps ``τ → τ'`` whose change is not significant
    (paired t-test over prompts, 95 %); steps not tested are left out."""
    titles = dict(COMPACT_COLUMNS)
    steps: dict[str, list[str]] = {}
    for before, after in itertools.pairwise(summary):
        step = f"{before['temperature']:g}→{after['temperature']:g}"
        for key in after.get("not_significant", []):
            if key in titles:
                steps.setdefault(titles[key], []).append(step)
    return steps


def _header(summary: Sequence[dict[str, Any]]) -> str:
    rows = sorted({row["rows"] for row in summary})
    prompts = sorted({row["prompts"] for row in summary})
    rows_text = str(rows[0]) if len(rows) == 1 else f"{rows[0]}–{rows[-1]}"
    prompts_text = str(prompts[0]) if len(prompts) == 1 else f"{prompts[0]}–{prompts[-1]}"
    return (
        f"Per temperature: mean [95 % interval] over {rows_text} rows of {prompts_text} "
        f"prompt{'s' * (prompts[-1] != 1)}"
    )


def format_compact_summary(summary: Sequence[dict[str, Any]], width: int = 100) -> str:
    """The compact table with its header, its legend, and what is not significant."""
    if not summary:
        return "no rows"
    lines = [_header(summary), *compact_table(summary), "", *legend_lines(width)]
    warning = short_warning(summary)
    if warning:
        lines += ["", *textwrap.wrap(warning, width)]
    flat = unsettled_orderings(summary)
    if flat:
        text = "Not significant (paired t-test over prompts, 95 %): " + "; ".join(
            f"{title} {', '.join(steps)}" for title, steps in flat.items()
        )
        lines += ["", *textwrap.wrap(text, width)]
    return "\n".join(lines)
