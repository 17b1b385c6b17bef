"""The generation loop: any logit source + the engine → completions with per-step statistics.

Every row is a prompt with its own :class:`~sampler.engine.params.SamplingParams`; all rows run
as one batch (one forward pass per step serves every temperature of a sweep). A row ends at an
EOS token, at a stop string, or after ``max_new_tokens``. Statistics are kept per step; full logits
never are.

A row's random stream is keyed by ``(seed, prompt, sample)``
(:meth:`~sampler.generation.generation_row.GenerationRow.stream_key`); what a row is and what it
yields live in :mod:`sampler.generation.generation_row`. :func:`generate` runs every step of
every batch; :func:`batch_steps` is the same loop (one function) yielding after each step, for
callers that stream tokens as they come (``sampler serve``) or stop a batch between two steps.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from sampler.engine.constraints.matcher import row_constraints
from sampler.engine.sampling import Sampler
from sampler.errors import InvalidInputError
from sampler.generation.generation_row import Completion, GenerationRow
from sampler.generation.incremental_text import TextCallback, finish_text, update_text
from sampler.generation.logprobs import LogprobRequest, record_step
from sampler.generation.phrase_bans import PhraseGuard
from sampler.sources.base import LogitSource, dry_vocabulary

__all__ = ["BatchStep", "batch_rows", "batch_steps", "encode_prompts", "generate"]

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
            encoded[row.prompt] = source.encode(row.prompt, chat)
            _check_context(source, encoded[row.prompt], max_new_tokens)
    return [encoded[row.prompt] for row in rows]


def _check_context(source: LogitSource, ids: Sequence[int], max_new_tokens: int) -> None:
    limit = source.context_limit
    if limit is not None and len(ids) + max_new_tokens > limit:
        raise InvalidInputError(
            f"the prompt is {len(ids)} tokens; with max_new_tokens={max_new_tokens} it "
            f"exceeds the model's context of {limit} tokens"
        )


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
    logprobs: LogprobRequest | None = None,
    ban_phrases: Sequence[str] = (),
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
    logprobs
        Record each step's log-probabilities in ``Completion.logprobs``
        (:mod:`sampler.generation.logprobs`); ``None``: not computed.
    ban_phrases
        Phrases no row may produce (:mod:`sampler.generation.phrase_bans`): each rewind one
        caused is in ``Completion.rewinds``.
    """
    if not rows:
        raise InvalidInputError("no rows to generate: give at least one prompt")
    chat = source.is_chat if chat is None else chat
    prompt_ids = encode_prompts(source, rows, chat, max_new_tokens)
    completions = [Completion(row, ids) for row, ids in zip(rows, prompt_ids, strict=True)]
    plan = _Plan(
        max_new_tokens, tuple(stop), on_text, stats, ignore_eos, on_step, on_finish, logprobs,
        tuple(ban_phrases), borrow_logits=True,
    )
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
class BatchStep:
    """What one step of a batch did, as :func:`batch_steps` yields it.

    ``logits`` (``[B, V]`` float32) are what the step drew from and ``state`` each row's
    sampler state before it (mirostat's μ): with the rows' params and histories they give the
    step's exact law through :func:`~sampler.engine.sampling.distribution`. ``tokens`` are the
    ``[B]`` draws, ``running`` the indices of the rows that were still running (the others drew
    too, to keep their streams aligned, but their tokens are not used). A running row's
    statistics are its completion's last ``steps`` entry; its completion is final once it is
    not running any more.
    """

    step: int
    logits: np.ndarray
    state: dict[str, np.ndarray]
    tokens: np.ndarray
    running: np.ndarray


def batch_steps(
    source: LogitSource,
    completions: Sequence[Completion],
    max_new_tokens: int,
    on_text: TextCallback | None = None,
    stats: bool = True,
    logprobs: LogprobRequest | None = None,
    written: Sequence[int] = (),
) -> Iterator[BatchStep]:
    """Extend ``completions`` (rows with their prompt ids, nothing generated yet) as ONE batch,
    yielding a :class:`BatchStep` after every step: :func:`generate`'s loop, one step at a time.

    A row's prompt ids may go beyond its prompt's text (tokens forced after it); its tokens
    depend on its ids, params and stream key only, as in :func:`generate`. The model is called
    when the generator is advanced (the prefill on the first ``next``, one step on each next
    one), never between, so a caller can take a lock per ``next``. ``written``: the tokens
    forced after the prompt that the rows wrote under their grammars (a branch of the page),
    which each row's matcher takes first (checked legal by the caller). Closing the generator stops
    the batch between two steps and drops its session (KV cache).

    Raises :class:`~sampler.errors.InvalidInputError` for ``max_new_tokens`` below 1 or a row
    whose prompt ids and ``max_new_tokens`` exceed the source's context.
    """
    if max_new_tokens < 1:
        raise InvalidInputError(f"max_new_tokens={max_new_tokens} is invalid: use 1 or more")
    if not completions:
        raise InvalidInputError("no rows to generate: give at least one prompt")
    for completion in completions:
        _check_context(source, completion.prompt_ids, max_new_tokens)
    plan = _Plan(max_new_tokens, (), on_text, stats, False, None, None, logprobs,
                 written=tuple(int(t) for t in written))
    return _steps(source, list(completions), 0, plan)


@dataclass(frozen=True)
class _Plan:
    max_new_tokens: int
    stop: tuple[str, ...]
    on_text: TextCallback | None
    stats: bool
    ignore_eos: bool
    on_step: Callable[[int, int], None] | None
    on_finish: Callable[[int, Completion], None] | None
    logprobs: LogprobRequest | None = None
    ban_phrases: tuple[str, ...] = ()
    borrow_logits: bool = False  # read logits in place (advance_view): generate drops each step
    written: tuple[int, ...] = ()  # forced tokens each row's matcher takes first


def _run_batch(
    source: LogitSource, completions: list[Completion], offset: int, plan: _Plan
) -> None:
    """Extend one batch of rows to the end; callbacks get indices ``offset + i``."""
    for _ in _steps(source, completions, offset, plan):
        pass


def _steps(
    source: LogitSource, completions: list[Completion], offset: int, plan: _Plan
) -> Iterator[BatchStep]:
    """The loop of one batch, yielding after each step (before the model is called again)."""
    rows = [c.row for c in completions]
    vocabulary = dry_vocabulary(source, [row.params for row in rows])
    constraints = row_constraints(source, [row.params for row in rows])
    for matcher in [m for m in constraints or () if m is not None]:
        for token in plan.written:
            matcher.advance(token)
    sampler = Sampler(
        [row.params for row in rows],
        row_keys=[row.stream_key() for row in rows],
        stats=plan.stats,
        vocabulary=vocabulary,
        constraints=constraints,
    )
    penalised = vocabulary is not None or any(
        "penalties" in row.params.active_stages for row in rows
    )
    watch_text = bool(plan.stop) or plan.on_text is not None
    live = np.ones(len(rows), dtype=bool)
    filler = min(source.eos_token_ids) if source.eos_token_ids else 0
    guard = (  # a rewind rolls back the row's matcher: the sampler's own (same objects)
        PhraseGuard(source, completions, plan.ban_phrases, constraints)
        if plan.ban_phrases
        else None
    )
    logits, session = source.start([c.prompt_ids for c in completions])
    borrow = plan.borrow_logits and guard is None and hasattr(session, "advance_view")
    advance = session.advance_view if borrow else session.advance
    for step in range(plan.max_new_tokens):
        history = [c.prompt_ids + c.token_ids for c in completions] if penalised else None
        state = sampler.state  # before the step: what the step's law depends on
        if guard is not None:  # phrase bans: the row's banned tokens at its position
            logits = guard.mask(logits, np.flatnonzero(live))
        tokens, step_stats = sampler.step(logits, history=history)
        running = np.flatnonzero(live)
        if plan.logprobs is not None:  # before the rows' ids grow: the step's own history
            record_step(
                plan.logprobs, source, completions, running, logits, tokens, history, state,
                vocabulary,
            )
        for index in running:
            completion, token = completions[index], int(tokens[index])
            if step_stats is not None:
                completion.steps.append({"token": token, **step_stats.row(index)})
            if token in source.eos_token_ids and not plan.ignore_eos:
                completion.finish_reason, live[index] = "eos", False
                continue
            completion.token_ids.append(token)
            if guard is not None and guard.check(index, step):
                continue  # rewound to where a banned phrase began
            if watch_text:
                update_text(source, completion, plan.stop, offset + index, plan.on_text)
                live[index] = completion.finish_reason != "stop"
        last = not live.any() or step == plan.max_new_tokens - 1
        for index in running:
            if not live[index] or last:
                finish_text(source, completions[index], watch_text, offset + index, plan.on_finish)
        if plan.on_step is not None:
            plan.on_step(step, len(running))
        yield BatchStep(step, logits, state, tokens, running)
        if last:
            break
        feed = np.where(live, tokens, filler)
        logits = advance(feed if guard is None else guard.feed(session, feed, filler))

