"""Per-temperature statistics as sums over prompts, so a bootstrap over prompts is a matrix product.

Every column of the report is a ratio of sums over a temperature's prompts (mean entropy =
summed step entropies / steps; self-BLEU and distinct-n = the sum of the prompts' values / the
number of prompts, ...). A run's rows are folded, in one pass, into one :class:`PromptSums` per
(temperature, prompt); then any multiset of prompts (a bootstrap resample: prompt ``g`` drawn
``m_g`` times) gives each column as ``Σ m_g a_g / Σ m_g b_g``. Resampling prompts, not rows,
keeps the rows of one prompt together: they share its difficulty, so they are not independent
draws. (Distinct-n is computed per prompt for the same reason: n-grams pooled over prompts are
not a sum over prompts, and a resample that draws a prompt twice would count its n-grams as
repeats.)

Greedy rows count once per distinct completion of their prompt: greedy's N samples of a
prompt are one completion repeated, not N observations.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from sampler.report.metrics import distinct_n, self_bleu, seq_rep_n

__all__ = ["SUM_COLUMNS", "PromptSums", "TemperatureSums", "fold"]

NGRAM_ORDERS = (1, 2, 3)  # distinct-1, -2, -3
# column -> (numerator, denominator) names in PromptSums.sums; ppl_base is exp() of its ratio
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


@dataclass
class PromptSums:
    """The sums one prompt's rows at one temperature contribute to every column."""

    sums: dict[str, float] = field(default_factory=dict)
    sequences: list[list[int]] = field(default_factory=list)

    def add(self, completion: dict) -> None:
        tokens = list(completion["token_ids"])
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
        self.sequences = []  # a run's text is not kept past its prompt's values

    def _prompt_value(self, key: str, count: str, value: float) -> None:
        # an undefined value (NaN: one sample, no n-gram) is left out of the mean over prompts
        self.sums[key] = 0.0 if math.isnan(value) else value
        self.sums[count] = 0.0 if math.isnan(value) else 1.0


@dataclass
class TemperatureSums:
    """One temperature's prompts, as arrays ``[prompts]`` the bootstrap multiplies."""

    temperature: float
    prompts: list[str]
    rows: int
    distinct: int  # different completions among the rows
    sums: dict[str, np.ndarray]

    def columns(self, counts: np.ndarray) -> dict[str, np.ndarray]:
        """Every column for resamples ``counts`` ``[R, prompts]`` (how often each is drawn)."""
        out = {}
        with np.errstate(invalid="ignore", divide="ignore"):
            for column, (numerator, denominator) in SUM_COLUMNS.items():
                out[column] = (counts @ self.sums[numerator]) / (counts @ self.sums[denominator])
        out["ppl_base"] = np.exp(out["ppl_base"])
        return out


def fold(completions: Iterable[dict]) -> list[TemperatureSums]:
    """One pass over a run's completions (with steps) into per-temperature sums, τ ascending."""
    groups: dict[float, dict[str, PromptSums]] = {}
    distinct: dict[float, set[tuple[str, tuple[int, ...]]]] = {}
    for completion in completions:
        temperature = completion["temperature"]
        distinct.setdefault(temperature, set()).add(
            (completion["prompt"], tuple(completion["token_ids"]))
        )
        by_prompt = groups.setdefault(temperature, {})
        by_prompt.setdefault(completion["prompt"], PromptSums()).add(completion)
    return [
        _stack(temperature, groups[temperature], len(distinct[temperature]))
        for temperature in sorted(groups)
    ]


def _stack(temperature: float, by_prompt: dict[str, PromptSums], distinct: int) -> TemperatureSums:
    prompts = list(by_prompt)
    parts = [by_prompt[p] for p in prompts]
    for part in parts:
        part.finish()
    names = {name for pair in SUM_COLUMNS.values() for name in pair} | {"rows"}
    sums = {name: np.array([part.sums.get(name, 0.0) for part in parts]) for name in names}
    rows = int(sums["rows"].sum())
    return TemperatureSums(temperature, prompts, rows, distinct, sums)
