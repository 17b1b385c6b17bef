"""What a sweep stores besides its rows: the first step's most likely tokens per (prompt, τ).

The report draws them as the first-step bar plot. Planning, recording and resuming the rows of
a sweep (and of every other kind of run) is :mod:`sampler.experiments.runs`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from sampler.engine.constraints.matcher import constraint_state
from sampler.engine.sampling import distribution
from sampler.generation.generation_row import GenerationRow
from sampler.sources.base import LogitSource, dry_vocabulary

__all__ = ["FIRST_STEP_TOP", "Extras", "first_step_extras", "first_step_tops"]

FIRST_STEP_TOP = 10  # tokens kept per (prompt, temperature) for the first-step bar plot

# (source, rows about to run, chat) -> each row's extra record, computed once per run
Extras = Callable[[LogitSource, Sequence[GenerationRow], bool], Callable[[GenerationRow], dict]]


def first_step_tops(
    source: LogitSource, rows: Sequence[GenerationRow], chat: bool, top: int = FIRST_STEP_TOP
) -> dict[tuple[str, float], list[dict]]:
    """Per (prompt, temperature), the first step's most likely tokens under the final chain.

    One forward pass per distinct prompt; every temperature reuses its logits.
    """
    logits_by_prompt: dict[str, np.ndarray] = {}
    prompt_ids: dict[str, list[int]] = {}
    vocabulary = dry_vocabulary(source, [row.params for row in rows])
    tops = {}
    for row in rows:
        key = (row.prompt, row.params.temperature)
        if key in tops:
            continue
        if row.prompt not in logits_by_prompt:
            prompt_ids[row.prompt] = source.encode(row.prompt, chat)
            logits, _ = source.start([prompt_ids[row.prompt]])
            logits_by_prompt[row.prompt] = logits[0]
        # the prompt is the history penalties and DRY see at a row's first step; a grammar
        # is at its start
        probs = distribution(
            logits_by_prompt[row.prompt],
            row.params,
            history=[prompt_ids[row.prompt]],
            vocabulary=vocabulary,
            state=constraint_state(source, row.params),
        )
        best = np.argsort(-probs, kind="stable")[:top]
        tops[key] = [
            {"token": int(t), "label": source.token_label(int(t)), "prob": float(probs[t])}
            for t in best
        ]
    return tops


def first_step_extras(
    source: LogitSource, rows: Sequence[GenerationRow], chat: bool
) -> Callable[[GenerationRow], dict]:
    """A sweep's extra record per row: sample 0 of each (prompt, τ) keeps the first step's tops."""
    tops = first_step_tops(source, [row for row in rows if row.sample == 0], chat)

    def extra(row: GenerationRow) -> dict:
        if row.sample != 0:
            return {}
        return {"first_step_top": tops[(row.prompt, row.params.temperature)]}

    return extra
