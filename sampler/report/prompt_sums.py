"""Per-temperature statistics as sums over prompts: every column is a ratio of such sums.

Every column of the report is a ratio of sums over a temperature's prompts (mean entropy =
summed step entropies / steps; self-BLEU and distinct-n = the sum of the prompts' values / the
number of prompts that have one, ...). A run's rows are folded, in one pass, into one
:class:`PromptSums` per (temperature, prompt); :mod:`sampler.report.bootstrap` then resamples
prompts, keeping the rows of one prompt together: they share its difficulty, so they are not
independent draws. (Distinct-n is computed per prompt for the same reason: n-grams pooled over
prompts are not a sum over prompts, and a resample that draws a prompt twice would count its
n-grams as repeats.)

Rows that repeat one path count once per distinct completion of their prompt: greedy
decoding (τ = 0 or ``mode="greedy"``) with nothing random in its chain (no XTC coin) gives
one completion N times, which is one observation, not N. So greedy's distinct-n is that of its
completion, and its self-BLEU is undefined (one completion has nothing to be compared with).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from sampler.report.metrics import distinct_n, self_bleu, seq_rep_n

__all__ = [
    "LOG_COLUMNS",
    "SHARE_COLUMNS",
    "SUM_COLUMNS",
    "PromptSums",
    "TemperatureSums",
    "fold",
    "repeats_one_path",
]

NGRAM_ORDERS = (1, 2, 3)  # distinct-1, -2, -3
# column -> (numerator, denominator) names in PromptSums.sums
SUM_COLUMNS = {
    "length": ("tokens", "rows"),
    "entropy_final": ("entropy_final", "steps"),
    "entropy_base": ("entropy_base", "steps"),
    "surprisal": ("surprisal", "steps"),
    "ppl_base": ("surprisal_base", "steps"),
    "repetition": ("repetition", "rows_with_4grams"),
    "greedy_agreement": ("agreements", "agreement_steps"),
    "self_bleu4": ("self_bleu4", "prompts_with_self_bleu"),
    **{f"distinct_{n}": (f"distinct_{n}", f"prompts_with_{n}grams") for n in NGRAM_ORDERS},
}
LOG_COLUMNS = frozenset({"ppl_base"})  # the ratio is the column's log: exp() shows it
# every column is >= 0 (ppl_base's log too); these are shares, at most 1
SHARE_COLUMNS = frozenset(
    {"self_bleu4", "repetition", "greedy_agreement", *(f"distinct_{n}" for n in NGRAM_ORDERS)}
)


@dataclass
class PromptSums:
    """The sums one prompt's rows at one temperature contribute to every column."""

    sums: dict[str, float] = field(default_factory=dict)
    sequences: list[list[int]] = field(default_factory=list)
    paths: set[tuple[int, ...]] = field(default_factory=set)  # completions of one-path rows

    def add(self, completion: dict) -> None:
        """Add a row's sums; a one-path row (:func:`repeats_one_path`) seen before is skipped."""
        tokens = list(completion["token_ids"])
        if repeats_one_path(completion):
            if tuple(tokens) in self.paths:
                return
            self.paths.add(tuple(tokens))
        self.sequences.append(tokens)
        steps = completion["steps"]
        add = self._add
        add("rows", 1)
        add("tokens", len(tokens))
        add("steps", len(steps))
        for key in ("entropy_final", "entropy_base", "surprisal", "surprisal_base"):
            add(key, math.fsum(step[key] for step in steps))
        agreeing = [step["token"] == step["base_argmax"] for step in steps if "base_argmax" in step]
        add("agreements", sum(agreeing))
        add("agreement_steps", len(agreeing))
        repetition = seq_rep_n(tokens, 4)
        if not math.isnan(repetition):
            add("repetition", repetition)
            add("rows_with_4grams", 1)

    def _add(self, key: str, value: float) -> None:
        self.sums[key] = self.sums.get(key, 0.0) + value

    def finish(self) -> None:
        """Per-prompt values that need all its rows: self-BLEU-4 and distinct-n of its rows."""
        self._prompt_value("self_bleu4", "prompts_with_self_bleu", self_bleu(self.sequences))
        for n in NGRAM_ORDERS:
            value = distinct_n(self.sequences, n)
            self._prompt_value(f"distinct_{n}", f"prompts_with_{n}grams", value)
        self.sequences, self.paths = [], set()  # text is not kept past its prompt's values

    def _prompt_value(self, key: str, count: str, value: float) -> None:
        # an undefined value (NaN: one sample, no n-gram) is left out of the mean over prompts
        self.sums[key] = 0.0 if math.isnan(value) else value
        self.sums[count] = 0.0 if math.isnan(value) else 1.0


@dataclass
class TemperatureSums:
    """One temperature's prompts, as arrays ``[prompts]`` of every sum."""

    temperature: float
    prompts: list[str]
    rows: int  # every row, repeats included
    distinct: int  # different completions among the rows
    sums: dict[str, np.ndarray]

    def parts(self, column: str) -> tuple[np.ndarray, np.ndarray]:
        """``(numerator, denominator)`` per prompt of a column (``ppl_base``: of its log)."""
        numerator, denominator = SUM_COLUMNS[column]
        return self.sums[numerator], self.sums[denominator]

    @staticmethod
    def bounds(column: str) -> tuple[float, float]:
        """The range of the ratio of :meth:`parts` (of ``ppl_base``'s log)."""
        return 0.0, 1.0 if column in SHARE_COLUMNS else math.inf

    def value(self, column: str) -> float:
        """The column over all prompts: NaN when no prompt has a value."""
        numerator, denominator = (float(part.sum()) for part in self.parts(column))
        if denominator == 0:
            return math.nan
        ratio = numerator / denominator
        return math.exp(ratio) if column in LOG_COLUMNS else ratio


def repeats_one_path(completion: dict) -> bool:
    """Whether a row's draws used no randomness: greedy decoding without XTC's coin.

    Such rows of one prompt are one completion repeated. A record without ``params`` (as in
    hand-made test rows) is judged by its temperature and ``mode`` alone.
    """
    params = completion.get("params") or {}
    mode = completion.get("mode", params.get("mode", "sample"))
    greedy = mode == "greedy" or (mode == "sample" and completion["temperature"] == 0)
    return greedy and not params.get("xtc_probability", 0)


def fold(completions: Iterable[dict]) -> list[TemperatureSums]:
    """One pass over a run's completions (with steps) into per-temperature sums, τ ascending."""
    groups: dict[float, dict[str, PromptSums]] = {}
    distinct: dict[float, set[tuple[str, tuple[int, ...]]]] = {}
    rows: dict[float, int] = {}
    for completion in completions:
        temperature = completion["temperature"]
        rows[temperature] = rows.get(temperature, 0) + 1
        distinct.setdefault(temperature, set()).add(
            (completion["prompt"], tuple(completion["token_ids"]))
        )
        by_prompt = groups.setdefault(temperature, {})
        by_prompt.setdefault(completion["prompt"], PromptSums()).add(completion)
    return [
        _stack(temperature, groups[temperature], rows[temperature], len(distinct[temperature]))
        for temperature in sorted(groups)
    ]


def _stack(
    temperature: float, by_prompt: dict[str, PromptSums], rows: int, distinct: int
) -> TemperatureSums:
    prompts = list(by_prompt)
    parts = [by_prompt[p] for p in prompts]
    for part in parts:
        part.finish()
    names = {name for pair in SUM_COLUMNS.values() for name in pair}
    sums = {name: np.array([part.sums.get(name, 0.0) for part in parts]) for name in names}
    return TemperatureSums(temperature, prompts, rows, distinct, sums)
