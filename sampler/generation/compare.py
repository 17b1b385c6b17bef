"""Greedy against sampled: where each sample leaves the greedy path, and how often it agrees.

Examples
--------
>>> first_divergence([5, 6, 7, 8], [5, 6, 9, 8])
2
>>> first_divergence([5, 6], [5, 6]) is None
True
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sampler.engine.params import SamplingParams
from sampler.generation.loop import Completion, GenerationRow, generate
from sampler.sources.base import LogitSource

__all__ = ["SampleComparison", "compare", "first_divergence"]


def first_divergence(greedy: Sequence[int], sample: Sequence[int]) -> int | None:
    """First step where the two token sequences differ (a length difference counts)."""
    for step, (a, b) in enumerate(zip(greedy, sample, strict=False)):
        if a != b:
            return step
    return None if len(greedy) == len(sample) else min(len(greedy), len(sample))


@dataclass(frozen=True)
class SampleComparison:
    """One sampled completion seen against the greedy one."""

    completion: Completion
    divergence_step: int | None  # None: the sample is the greedy text
    entropy_at_divergence: float | None  # entropy_final of the sample at that step, nats
    greedy_token: str | None  # what greedy chose there, and what the sample chose
    sampled_token: str | None
    argmax_rate: float  # share of the sample's steps whose token was the base argmax


def compare(
    source: LogitSource,
    prompt: str,
    params: SamplingParams,
    samples: int,
    max_new_tokens: int,
    chat: bool | None = None,
) -> tuple[Completion, list[SampleComparison]]:
    """Run greedy and ``samples`` sampled rows in one batch and compare each with greedy."""
    greedy_params = SamplingParams(temperature=0.0, order=params.order)
    rows = [GenerationRow(prompt, greedy_params)] + [
        GenerationRow(prompt, params, sample) for sample in range(samples)
    ]
    greedy, *sampled = generate(source, rows, max_new_tokens=max_new_tokens, chat=chat)
    return greedy, [_against(greedy, completion, source) for completion in sampled]


def _tokens(completion: Completion) -> list[int]:
    return [step["token"] for step in completion.steps]


def _against(greedy: Completion, completion: Completion, source: LogitSource) -> SampleComparison:
    step = first_divergence(_tokens(greedy), _tokens(completion))
    steps = completion.steps
    agreement = [s["token"] == s["base_argmax"] for s in steps]
    at = steps[step] if step is not None and step < len(steps) else None
    greedy_at = _tokens(greedy)[step] if step is not None and step < len(greedy.steps) else None
    return SampleComparison(
        completion=completion,
        divergence_step=step,
        entropy_at_divergence=None if at is None else at["entropy_final"],
        greedy_token=None if greedy_at is None else source.token_label(greedy_at),
        sampled_token=None if at is None else source.token_label(at["token"]),
        argmax_rate=sum(agreement) / len(agreement) if agreement else float("nan"),
    )
