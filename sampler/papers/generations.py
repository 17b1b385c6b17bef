"""Generations an experiment needs, logged in the run log like any ``sampler generate`` run.

Each call is one logged run (kind ``generate``): its id goes into the outcome's ``runs`` so
every number of a report can be traced to stored rows (``sampler report RUN`` shows them), and
its completions come back with their per-step statistics
(:class:`~sampler.engine.stats.StepStats`, as the run log stores them).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from sampler.experiments.config import RunConfig
from sampler.experiments.runs import run_rows, start_run
from sampler.papers.records import Options
from sampler.runlog.store import open_run_log
from sampler.sources.base import LogitSource

__all__ = ["PROMPTS", "Logged", "logged_run", "prompts_for", "step_matrix"]

# Open-ended prompts, the same 32 as configs/holtzman.toml (tests/test_papers.py checks it):
# continuations long enough for a trend over positions, on topics a small model can follow.
PROMPTS = (
    "Write a long story about a dragon who learns to bake bread.",
    "Write an essay about the history of the bicycle.",
    "Tell me about your favourite city and why you love it.",
    "Write a letter to a friend describing a trip to the mountains.",
    "Describe a day in the life of a lighthouse keeper.",
    "Write a story about a robot who wants to become a gardener.",
    "Explain how a river shapes the land around it over thousands of years.",
    "Write a diary entry of a sailor crossing the Atlantic in 1850.",
    "Describe the perfect breakfast and how to prepare it.",
    "Write a short story about two strangers stuck in a lift.",
    "Tell the story of a village that wakes up to find the sea has disappeared.",
    "Write an essay on why people keep pets.",
    "Describe a walk through a forest in autumn.",
    "Write a story about a detective who can only work at night.",
    "Explain to a child how the moon changes shape during the month.",
    "Write a speech for the opening of a new public library.",
    "Describe a busy market in a small town on a Saturday morning.",
    "Write a story about an old clock that runs backwards.",
    "Tell me about the first time someone saw snow.",
    "Write a letter from a grandmother to her grandson who just left home.",
    "Describe what a city might look like in two hundred years.",
    "Write a fable about a fox and a crow who become business partners.",
    "Explain why bread rises and what yeast does.",
    "Write a story about a musician who loses her hearing.",
    "Describe a thunderstorm seen from a mountain hut.",
    "Write an essay about the importance of sleep.",
    "Tell the story of a lost dog finding its way home across the country.",
    "Write a travel guide entry for an imaginary island.",
    "Describe the life of a bee from the bee's point of view.",
    "Write a story about a painter who can paint the future.",
    "Explain how trains changed the way people lived in the nineteenth century.",
    "Write a story that begins with a knock on the door at midnight.",
)

Logged = tuple[str, list[dict[str, Any]]]


def prompts_for(scale: int, base: int = 8) -> list[str]:
    """The first ``base × scale`` prompts (at most the 32 of :data:`PROMPTS`)."""
    return list(PROMPTS[: min(len(PROMPTS), base * scale)])


def logged_run(
    options: Options,
    source: LogitSource,
    prompts: Sequence[str],
    temperatures: Sequence[float],
    samples: int,
    max_new_tokens: int,
    **settings: Any,
) -> Logged:
    """Generate every prompt × temperature × sample with ``settings`` (stage settings and
    ``order``), log the run in ``options.db``; return its id and its completions in plan order
    (prompt, then temperature, then sample), each with its ``steps``."""
    config = RunConfig(
        model=source.name,
        prompts=tuple(prompts),
        temperatures=tuple(temperatures),
        samples=samples,
        max_new_tokens=max_new_tokens,
        seed=options.seed,
        **settings,
    )
    with open_run_log(options.db, create=True) as store:
        run_id = start_run("generate", config, store, source)
        shown = ", ".join(f"{k}={v}" for k, v in settings.items()) or "no filter"
        options.progress(f"run {run_id}: {len(config.rows())} rows, {shown}")
        run_rows("generate", config, store, run_id, source)
        return run_id, store.completions(run_id)


def step_matrix(completions: Sequence[dict[str, Any]], column: str, length: int) -> np.ndarray:
    """``[rows, length]`` of one step column, NaN after a row ended (EOS before ``length``)."""
    out = np.full((len(completions), length), np.nan)
    for row, completion in enumerate(completions):
        values = [step[column] for step in completion["steps"][:length]]
        out[row, : len(values)] = np.asarray(values, dtype=np.float64)
    return out
