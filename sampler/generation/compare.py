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
from dataclasses import dataclass, replace

from sampler.engine.params import SamplingParams
from sampler.generation.generation_row import Completion, GenerationRow
from sampler.generation.loop import generate
from sampler.sources.base import LogitSource

__all__ = [
    "SampleComparison",
    "compare",
    "compare_rows",
    "first_divergence",
    "format_comparison",
]


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


def compare_rows(
    prompt: str, params: SamplingParams, samples: int, stream: str = "prompt"
) -> list[GenerationRow]:
    """The rows a comparison runs: greedy first, then samples ``0..samples-1`` under ``params``.

    Greedy is ``params`` at temperature 0 (no seed: it draws nothing): the same order, bias,
    penalties and DRY, so a sample and greedy differ by the temperature alone. The truncation
    filters never change the argmax, so greedy is the same with or without them; XTC, which
    removes the argmax when its coin fires, is off for greedy (its coin would make the greedy
    path random).
    """
    greedy = replace(params, temperature=0.0, seed=None, mode="sample", xtc_probability=0.0)
    return [GenerationRow(prompt, greedy, 0, stream)] + [
        GenerationRow(prompt, params, sample, stream) for sample in range(samples)
    ]


def compare(
    source: LogitSource,
    prompt: str,
    params: SamplingParams,
    samples: int,
    max_new_tokens: int,
    chat: bool | None = None,
    ban_phrases: Sequence[str] = (),
) -> tuple[Completion, list[SampleComparison]]:
    """Run greedy and ``samples`` sampled rows in one batch and compare each with greedy
    (both under the same ``ban_phrases``)."""
    rows = compare_rows(prompt, params, samples)
    greedy, *sampled = generate(
        source, rows, max_new_tokens=max_new_tokens, chat=chat, ban_phrases=ban_phrases
    )
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


def format_comparison(greedy: Completion, comparisons: Sequence[SampleComparison]) -> str:
    """Greedy's text, then each sample: where it leaves the greedy path, and its text."""
    blocks = [f"greedy (τ=0) · {len(greedy.token_ids)} tokens\n{greedy.text}\n"]
    for item in comparisons:
        if item.divergence_step is None:
            where = "never leaves the greedy path"
        else:
            where = f"leaves the greedy path at step {item.divergence_step}"
            if item.entropy_at_divergence is not None:
                where += (
                    f" (entropy {item.entropy_at_divergence:.3f} nats; greedy "
                    f"{item.greedy_token!r}, sampled {item.sampled_token!r})"
                )
        row = item.completion.row
        blocks.append(
            f"── sample {row.sample} (τ={row.params.temperature:g}): {where}; "
            f"{item.argmax_rate:.0%} of its tokens were the argmax\n{item.completion.text}\n"
        )
    return "\n".join(blocks)
