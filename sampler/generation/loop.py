"""The generation loop: any logit source + the engine → completions with per-step statistics.

Every row is a prompt with its own :class:`~sampler.engine.params.SamplingParams`; all rows run
as one batch (one forward pass per step serves every temperature of a sweep). A row ends at an
EOS token, at a stop string, or after ``max_new_tokens``. Statistics are kept per step; full logits
never are.

A row's random stream is keyed by ``(seed, prompt, sample)``
(:meth:`~sampler.generation.rows.GenerationRow.stream_key`); what a row is and what it yields
live in :mod:`sampler.generation.rows`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from sampler.engine.sampling import Sampler
from sampler.errors import InvalidInputError
from sampler.generation.rows import Completion, GenerationRow
from sampler.sources.base import LogitSource, dry_vocabulary

__all__ = ["batch_rows", "encode_prompts", "generate"]

TextCallback = Callable[[int, str], None]
# A 32-row, 512-token SmolLM2 batch would hold ~800 MB of float32 KV cache; past this budget
# the rows run as consecutive batches instead, so memory stays bounded whatever the sweep.
DEFAULT_CACHE_BUDGET_MB = 200.0
# A step holds the [B, V] float32 logits and the engine's working arrays: about 32 bytes per
# logit (measured with tracemalloc, top-p at 50,000 tokens). Batches stay under 256 MB of
# those, so a large vocabulary or many samples run as several batches instead of running out
# of memory (a row's tokens do not depend on its batch).
BYTES_PER_LOGIT = 32
LOGITS_BUDGET_BYTES = 256 * 2**20


def encode_prompts(
    source: LogitSource, rows: Sequence[GenerationRow], chat: bool, max_new_tokens: int
) -> list[list[int]]:
    """Token ids of each row's prompt, checked against the source's context length."""
    if max_new_tokens < 1:
        raise InvalidInputError(f"max_new_tokens={max_new_tokens} is invalid: use 1 or more")
    encoded: dict[str, list[int]] = {}
    for row in rows:
        if row.prompt not in encoded:
            ids = source.encode(row.prompt, chat)
            limit = source.context_limit
            if limit is not None and len(ids) + max_new_tokens > limit:
                raise InvalidInputError(
                    f"the prompt is {len(ids)} tokens; with max_new_tokens={max_new_tokens} it "
                    f"exceeds the model's context of {limit} tokens"
                )
            encoded[row.prompt] = ids
    return [encoded[row.prompt] for row in rows]


def _stop_at(text: str, stop: Sequence[str], start: int = 0) -> int | None:
    """Where the first stop string in ``text[start:]`` begins, or ``None``."""
    hits = [found for s in stop if s and (found := text.find(s, start)) >= 0]
    return min(hits) if hits else None


def generate(
    source: LogitSource,
    rows: Sequence[GenerationRow],
    max_new_tokens: int = 64,
    stop: Sequence[str] = (),
    chat: bool | None = None,
    on_text: TextCallback | None = None,
    stats: bool = True,
    ignore_eos: bool = False,
    on_step: Callable[[int, int], None] | None = None,
    on_finish: Callable[[int, Completion], None] | None = None,
    cache_budget_mb: float | None = DEFAULT_CACHE_BUDGET_MB,
) -> list[Completion]:
    """Generate one completion per row, the rows batched.

    Parameters
    ----------
    source
        Any :class:`~sampler.sources.base.LogitSource`.
    rows
        Prompt, params and sample index of each completion.
    max_new_tokens
        Upper bound on generated tokens per row.
    stop
        Strings that end a row (the text is cut before them).
    chat
        Send prompts through the chat template; default: when the source has one.
    on_text
        Called with ``(row index, new text)`` as text appears, for streaming.
    stats
        Record :class:`~sampler.engine.stats.StepStats` of each step in ``Completion.steps``.
    ignore_eos
        Keep going past EOS tokens (fixed-length runs, benchmarks).
    on_step
        Called after each step with ``(step, rows still running before it)``: progress bars.
    on_finish
        Called with ``(row index, completion)`` as soon as a row ends, so callers can save
        each finished row at once (the run log commits it then).
    cache_budget_mb
        Largest KV cache one batch may grow to; more rows than fit run as several batches one
        after another (same tokens: a row does not depend on its batch). ``None``: one batch.
    """
    if not rows:
        raise InvalidInputError("no rows to generate: give at least one prompt")
    chat = source.is_chat if chat is None else chat
    prompt_ids = encode_prompts(source, rows, chat, max_new_tokens)
    completions = [Completion(row, ids) for row, ids in zip(rows, prompt_ids, strict=True)]
    plan = _Plan(max_new_tokens, tuple(stop), on_text, stats, ignore_eos, on_step, on_finish)
    size = min(
        batch_rows(source, prompt_ids, max_new_tokens, cache_budget_mb),
        max(1, LOGITS_BUDGET_BYTES // (BYTES_PER_LOGIT * source.vocab_size)),
    )
    for start in range(0, len(completions), size):
        _run_batch(source, completions[start : start + size], start, plan)
    return completions


def batch_rows(
    source: LogitSource,
    prompt_ids: Sequence[Sequence[int]],
    max_new_tokens: int,
    cache_budget_mb: float | None,
) -> int:
    """How many rows fit in one batch under the KV-cache budget (at least one)."""
    per_token = getattr(source, "cache_bytes_per_token", 0)
    if cache_budget_mb is None or per_token == 0:
        return len(prompt_ids)
    longest = max(len(ids) for ids in prompt_ids) + max_new_tokens
    return max(1, min(len(prompt_ids), int(cache_budget_mb * 2**20 // (per_token * longest))))


@dataclass(frozen=True)
class _Plan:
    max_new_tokens: int
    stop: tuple[str, ...]
    on_text: TextCallback | None
    stats: bool
    ignore_eos: bool
    on_step: Callable[[int, int], None] | None
    on_finish: Callable[[int, Completion], None] | None


def _run_batch(
    source: LogitSource, completions: list[Completion], offset: int, plan: _Plan
) -> None:
    """Extend one batch of rows to the end; callbacks get indices ``offset + i``."""
    rows = [c.row for c in completions]
    vocabulary = dry_vocabulary(source, [row.params for row in rows])
    sampler = Sampler(
        [row.params for row in rows],
        row_keys=[row.stream_key() for row in rows],
        stats=plan.stats,
        vocabulary=vocabulary,
    )
    penalised = vocabulary is not None or any(
        "penalties" in row.params.active_stages for row in rows
    )
    watch_text = bool(plan.stop) or plan.on_text is not None
    live = np.ones(len(rows), dtype=bool)
    filler = min(source.eos_token_ids) if source.eos_token_ids else 0
    logits, session = source.start([c.prompt_ids for c in completions])
    for step in range(plan.max_new_tokens):
        history = [c.prompt_ids + c.token_ids for c in completions] if penalised else None
        tokens, step_stats = sampler.step(logits, history=history)
        running = np.flatnonzero(live)
        for index in running:
            completion, token = completions[index], int(tokens[index])
            if step_stats is not None:
                completion.steps.append({"token": token, **step_stats.row(index)})
            if token in source.eos_token_ids and not plan.ignore_eos:
                completion.finish_reason, live[index] = "eos", False
                continue
            completion.token_ids.append(token)
            if watch_text:
                _update_text(source, completion, plan.stop, offset + index, plan.on_text)
                live[index] = completion.finish_reason != "stop"
        last = not live.any() or step == plan.max_new_tokens - 1
        for index in running:
            if not live[index] or last:
                _finish(source, completions[index], watch_text, offset + index, plan.on_finish)
        if plan.on_step is not None:
            plan.on_step(step, len(running))
        if last:
            break
        logits = session.advance(np.where(live, tokens, filler))


def _finish(
    source: LogitSource,
    completion: Completion,
    text_is_current: bool,
    index: int,
    on_finish: Callable[[int, Completion], None] | None,
) -> None:
    if not text_is_current:
        completion.text = source.decode(completion.token_ids)
        return _report(completion, index, on_finish)
    state = _text_state(completion)
    if completion.finish_reason != "stop":
        # One full decode per row, at its end: the text is exactly decode(token_ids), and what
        # was held back (a split character, a possible stop string) is streamed now.
        completion.text = source.decode(completion.token_ids)
    if state.on_text is not None and len(completion.text) > state.emitted:
        state.on_text(index, completion.text[state.emitted :])
    _report(completion, index, on_finish)


def _report(
    completion: Completion, index: int, on_finish: Callable[[int, Completion], None] | None
) -> None:
    if on_finish is not None:
        on_finish(index, completion)


@dataclass
class _TextState:
    """Where a row's incremental decoding stands (see :func:`_update_text`)."""

    prefix: int = 0  # first token of the decode window
    read: int = 0  # tokens whose text is already in completion.text
    emitted: int = 0  # characters of completion.text already given to on_text
    on_text: TextCallback | None = None


def _text_state(completion: Completion) -> _TextState:
    # Kept on the completion itself (not a field: it is no part of the result) so the state
    # lives and dies with its row whatever the batch.
    return completion.__dict__.setdefault("_text_state", _TextState())


def _update_text(
    source: LogitSource,
    completion: Completion,
    stop: Sequence[str],
    index: int,
    on_text: TextCallback | None,
) -> None:
    """Extend ``completion.text`` with the newest token's text, decoding only a short window.

    Re-decoding the whole row at every step costs O(n²) over a row (56 s for 8,000 tokens).
    The window runs from the token before the last emitted text (``prefix``): its text up to
    ``read`` was emitted, and what the newer tokens add is the difference. While that ends in
    U+FFFD (a character whose bytes are split across tokens) nothing is emitted yet, so a
    multi-byte character is never printed as garbage.
    """
    state = _text_state(completion)
    state.on_text = on_text
    ids = completion.token_ids
    settled = source.decode(ids[state.prefix : state.read])
    window = source.decode(ids[state.prefix :])
    if window.endswith("\ufffd") or not window.startswith(settled):
        return  # an incomplete character, or a tokenizer still rewriting the tail: wait
    before = completion.text
    text = before + window[len(settled) :]
    state.prefix, state.read = state.read, len(ids)
    # a stop string may straddle the new text and the old: search from its longest overlap
    cut = _stop_at(text, stop, start=max(0, len(before) - max(map(len, stop), default=0)))
    if cut is not None:
        text, completion.finish_reason = text[:cut], "stop"
    completion.text = text
    # Text that may be the start of a stop string is held back until the next tokens tell.
    end = len(text) if cut is not None else len(text) - _stop_prefix(text, stop)
    if on_text is not None and end > state.emitted:
        on_text(index, text[state.emitted : end])
        state.emitted = end


def _stop_prefix(text: str, stop: Sequence[str]) -> int:
    """Length of the longest end of ``text`` that begins some stop string."""
    return max((k for s in stop for k in range(1, len(s)) if text.endswith(s[:k])), default=0)
