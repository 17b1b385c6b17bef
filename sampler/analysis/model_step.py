"""One step of a real model, stage by stage: the next-token row after a prompt and the text
the model already wrote, traced through a chain (:func:`~sampler.engine.trace.trace_chain`)
with the penalties' history and the grammar's matcher at that point.

``sampler chain --model M --prompt P --written TEXT`` prints it and ``--plot`` draws it
(:mod:`sampler.plots.step_plot`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from sampler.engine.params import SamplingParams
from sampler.engine.trace import StageTrace, trace_chain
from sampler.errors import InvalidInputError
from sampler.sources.base import text_tokens

__all__ = ["ModelRow", "before_after", "model_row", "shown_tokens", "text_tokens", "trace_step"]


@dataclass(frozen=True)
class ModelRow:
    """A model's next-token logits after ``prompt`` (as the model reads it: chat template
    unless raw) and ``written``, the text it wrote after the prompt."""

    model: str
    prompt: str
    written: str
    prompt_ids: list[int]
    written_ids: list[int]
    logits: np.ndarray  # [V] float32, the source's own row
    chat: bool  # the prompt went through the model's chat template

    @property
    def history(self) -> list[int]:
        """What the penalties and DRY see: the prompt's tokens, then the written ones (as
        ``sampler generate`` gives them)."""
        return self.prompt_ids + self.written_ids


def model_row(source: Any, prompt: str, written: str = "", chat: bool = True) -> ModelRow:
    """The source's next-token row after ``prompt`` then ``written`` (one forward pass)."""
    prompt_ids = list(source.encode(prompt, chat))
    written_ids = text_tokens(source, written)
    total = len(prompt_ids) + len(written_ids)
    limit = source.context_limit
    if limit is not None and total >= limit:
        raise InvalidInputError(
            f"the prompt and the written text are {total} tokens: the model's context is "
            f"{limit}; give a shorter --prompt or --written"
        )
    logits, _ = source.start([prompt_ids + written_ids])
    row = np.array(logits[0], dtype=np.float32)  # a copy: the session may reuse its buffer
    return ModelRow(source.name, prompt, written, prompt_ids, written_ids, row, chat)


def trace_step(source: Any, row: ModelRow, params: SamplingParams) -> list[StageTrace]:
    """``params``' chain on the row, each stage recorded: the penalties see
    :attr:`ModelRow.history`, and a grammar's matcher has taken the written tokens (one that
    the grammar does not allow where it stands is a one-line error)."""
    from sampler.engine.constraints.matcher import constraint_state, constraint_vocabulary
    from sampler.sources.base import dry_vocabulary

    state = None
    if params.grammar:
        constraint_vocabulary(source)  # a source without one: its own error, not the text's
        try:
            state = constraint_state(source, params, written=row.written_ids)
        except InvalidInputError as error:  # which text: the user gave text, not tokens
            raise InvalidInputError(f"the written text {row.written!r}: {error}") from None
    return trace_chain(
        row.logits, params, row.history, dry_vocabulary(source, [params]), state=state
    )


def before_after(steps: Sequence[StageTrace]) -> tuple[StageTrace, StageTrace]:
    """The two distributions a step's picture compares: what the grammar's mask received and
    what it left when the chain has a grammar, else the model's own and the final one."""
    names = [step.stage for step in steps]
    if "grammar" in names:
        at = names.index("grammar")
        return steps[at - 1], steps[at]
    return steps[0], steps[-1]


def shown_tokens(steps: Sequence[StageTrace], top: int) -> list[int]:
    """The tokens worth showing, in the model's order: its ``top`` likeliest, then the
    likeliest ``ceil(top / 4)`` of the "after" distribution (:func:`before_after`) that are
    not among them, so that where a mask or a filter moved the probability is in view."""
    if top < 1:
        raise InvalidInputError(f"--top {top} shows no token: use 1 or more")
    model = np.asarray(steps[0].probs)
    after = np.asarray(before_after(steps)[1].probs)
    first = list(np.argsort(-model, kind="stable")[:top])
    extra = [
        int(t)
        for t in np.argsort(-after, kind="stable")[: math.ceil(top / 4)]
        if after[t] > 0 and t not in first
    ]
    chosen = [int(t) for t in first] + extra
    return sorted(chosen, key=lambda t: (-model[t], t))
