"""Exact acceptance of speculative sampling along texts: Σ min(p, q) per step, per pair.

A *pair* is a draft side and a target side, each a logit source and a settings function of
the temperature. Along every document (context + forced tokens, teacher-forced in one batch
per source) each pair's exact acceptance ``Σ_x min(p(x), q(x))`` is computed at every position
from the two laws' float64 log-probabilities
(:func:`sampler.analysis.speculative.acceptance`). Laws of one source at one position share its
forward pass: only their chains differ.

Examples
--------
>>> from sampler.sources.synthetic_spec import parse_synthetic
>>> from sampler.papers.texts import Document
>>> a = parse_synthetic("synthetic:markov?vocab=30&seed=1")
>>> b = parse_synthetic("synthetic:markov?vocab=30&seed=1&sharpness=1.5")
>>> pair = Pair("b drafts for a", b, a, lambda t: SamplingParams(temperature=t))
>>> docs = [(a, [Document("d", [0], [3, 4])]), (b, [Document("d", [0], [3, 4])])]
>>> result = acceptance_along([pair], [1.0], docs)
>>> result["b drafts for a"].shape  # [temperatures, documents, positions]
(1, 1, 2)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from sampler.analysis.divergence_laws import log_law
from sampler.analysis.speculative import acceptance
from sampler.engine.params import SamplingParams
from sampler.papers.texts import Document, forced_steps
from sampler.sources.base import LogitSource

__all__ = ["Pair", "acceptance_along"]


@dataclass(frozen=True)
class Pair:
    """A draft and a target: sources, and each side's settings at a temperature."""

    name: str
    draft: LogitSource
    target: LogitSource
    draft_params: Callable[[float], SamplingParams]
    target_params: Callable[[float], SamplingParams] | None = None  # default: the draft's

    def params(self, temperature: float) -> tuple[SamplingParams, SamplingParams]:
        """``(draft settings, target settings)`` at ``temperature``."""
        target = self.target_params or self.draft_params
        return self.draft_params(temperature), target(temperature)


def acceptance_along(
    pairs: Sequence[Pair],
    temperatures: Sequence[float],
    documents: Sequence[tuple[LogitSource, list[Document]]],
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, np.ndarray]:
    """Per pair, the exact acceptance ``[temperatures, documents, positions]`` (NaN past a
    document's end).

    ``documents`` gives every source of the pairs its own encoding of the same documents (a
    chat template may encode a prompt differently); their forced tokens must be the same.
    """
    sources = [source for source, _ in documents]
    # per source, the distinct settings asked of it, each computed once per position
    wanted: dict[int, list[SamplingParams]] = {id(source): [] for source in sources}
    for pair in pairs:
        for temperature in temperatures:
            for source, params in zip(
                (pair.draft, pair.target), pair.params(temperature), strict=True
            ):
                if params not in wanted[id(source)]:
                    wanted[id(source)].append(params)
    count = len(documents[0][1])
    length = max(len(d.targets) for d in documents[0][1])
    out = {p.name: np.full((len(temperatures), count, length), np.nan) for p in pairs}
    steps = [forced_steps(source, docs) for source, docs in documents]
    for position, *per_source in zip(range(length), *steps, strict=False):
        laws = {}
        for source, (_, logits, _, _) in zip(sources, per_source, strict=True):
            settings = wanted[id(source)]
            rows = [params for params in settings for _ in range(count)]
            stacked = log_law(np.tile(logits, (len(settings), 1)), rows)
            for index in range(len(settings)):
                laws[id(source), index] = stacked[index * count : (index + 1) * count]
        active = per_source[0][3]
        for pair in pairs:
            for t, temperature in enumerate(temperatures):
                draft, target = pair.params(temperature)
                log_p = laws[id(pair.target), wanted[id(pair.target)].index(target)]
                log_q = laws[id(pair.draft), wanted[id(pair.draft)].index(draft)]
                out[pair.name][t, :, position] = np.where(active, acceptance(log_p, log_q), np.nan)
        if progress is not None:
            progress(position + 1, length)
    return out
