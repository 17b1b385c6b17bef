"""Per-temperature summary of a run: entropies, perplexity, diversity, repetition, agreement.

Definitions (see also ``sampler.report.metrics``):

* entropy columns: mean over every generated step of every row at that temperature, with the
  standard deviation of the per-row means as the spread;
* ``surprisal``: mean ``-log q(token)`` under the distribution actually sampled from;
* ``ppl_base``: perplexity of the generated text under the base model (τ = 1, no filters),
  ``exp(mean surprisal_base)``;
* ``distinct_1/2/3``: unique n-grams / total n-grams over all completions at the temperature
  (token ids);
* ``self_bleu4``: Texygen self-BLEU-4 among the samples of one prompt, averaged over prompts;
* ``repetition``: seq-rep-4 (Welleck et al.), share of repeated 4-grams within a completion,
  averaged;
* ``greedy_agreement``: share of steps whose token is the base model's argmax;
* ``length``: mean generated tokens.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np

from sampler.report.metrics import distinct_n, perplexity, repetition_rate, self_bleu
from sampler.tables import aligned_table

__all__ = ["COLUMNS", "cell", "format_summary", "markdown_summary", "summarize"]

COLUMNS = (
    ("temperature", "τ"),
    ("rows", "rows"),
    ("length", "length"),
    ("entropy_final", "H final"),
    ("entropy_final_sd", "±"),
    ("entropy_base", "H base"),
    ("entropy_base_sd", "±"),
    ("surprisal", "surprisal"),
    ("ppl_base", "PPL base"),
    ("distinct_1", "dist-1"),
    ("distinct_2", "dist-2"),
    ("distinct_3", "dist-3"),
    ("self_bleu4", "self-BLEU4"),
    ("repetition", "rep-4"),
    ("greedy_agreement", "greedy agr."),
)


def _mean_and_spread(rows: Sequence[dict], key: str) -> tuple[float, float]:
    per_row = [np.mean([s[key] for s in row["steps"]]) for row in rows if row["steps"]]
    if not per_row:
        return math.nan, math.nan
    return float(np.mean(per_row)), float(np.std(per_row))


def summarize(completions: Sequence[dict]) -> list[dict[str, Any]]:
    """One dict per temperature (ascending) from run-log completions (with steps)."""
    by_temperature: dict[float, list[dict]] = defaultdict(list)
    for completion in completions:
        by_temperature[completion["temperature"]].append(completion)
    summary = []
    for temperature in sorted(by_temperature):
        rows = by_temperature[temperature]
        sequences = [row["token_ids"] for row in rows]
        steps = [step for row in rows for step in row["steps"]]
        by_prompt: dict[str, list[list[int]]] = defaultdict(list)
        for row in rows:
            by_prompt[row["prompt"]].append(row["token_ids"])
        bleus = [self_bleu(group) for group in by_prompt.values() if len(group) > 1]
        final, final_sd = _mean_and_spread(rows, "entropy_final")
        base, base_sd = _mean_and_spread(rows, "entropy_base")
        agreement = [s["token"] == s["base_argmax"] for s in steps if "base_argmax" in s]
        summary.append(
            {
                "temperature": temperature,
                "rows": len(rows),
                "length": float(np.mean([len(s) for s in sequences])),
                "entropy_final": final,
                "entropy_final_sd": final_sd,
                "entropy_base": base,
                "entropy_base_sd": base_sd,
                "surprisal": float(np.mean([s["surprisal"] for s in steps])) if steps else math.nan,
                "ppl_base": perplexity([s["surprisal_base"] for s in steps]),
                "distinct_1": distinct_n(sequences, 1),
                "distinct_2": distinct_n(sequences, 2),
                "distinct_3": distinct_n(sequences, 3),
                "self_bleu4": float(np.nanmean(bleus)) if bleus else math.nan,
                "repetition": repetition_rate(sequences, 4),
                "greedy_agreement": float(np.mean(agreement)) if agreement else math.nan,
            }
        )
    return summary


def cell(key: str, value: Any) -> str:
    if key == "temperature":
        return "0 (greedy)" if value == 0 else f"{value:g}"
    if key == "rows":
        return str(value)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:.1f}" if key == "length" else f"{value:.3f}"


def format_summary(summary: Sequence[dict[str, Any]]) -> str:
    """The summary as an aligned terminal table."""
    header = [title for _, title in COLUMNS]
    body = [[cell(key, row[key]) for key, _ in COLUMNS] for row in summary]
    return "\n".join(aligned_table(header, body))


def markdown_summary(summary: Sequence[dict[str, Any]]) -> str:
    """The summary as a Markdown table."""
    header = "| " + " | ".join(title for _, title in COLUMNS) + " |"
    rule = "|" + "|".join(" --- " for _ in COLUMNS) + "|"
    body = ["| " + " | ".join(cell(key, row[key]) for key, _ in COLUMNS) + " |" for row in summary]
    return "\n".join([header, rule, *body])
