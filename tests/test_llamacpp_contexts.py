"""The GGUF source's reused contexts and borrowed logits change no logit, token or statistic.

Oracles: a fresh context (an empty pool, as every session had before contexts were reused),
llama.cpp driven directly through its API in a context this file makes, and the copying path
(``advance``) against the borrowing one (``advance_view``). Equality is exact: a cleared
context is in the state a fresh one starts in, so there is no rounding to allow for.
"""

from __future__ import annotations

import gc
import itertools
import threading

import numpy as np
import pytest
from conftest import import_llama_cpp_or_skip

import sampler.sources.llamacpp_contexts as contexts_module
from sampler import SamplingParams
from sampler.generation.generation_row import Completion, GenerationRow
from sampler.generation.loop import batch_steps, generate
from sampler.sources.llamacpp_contexts import IDLE_CONTEXTS, ContextPool, context_params
from sampler.sources.llamacpp_model import LlamaCppSession

llama = import_llama_cpp_or_skip()

PROMPTS = [
    "What is the capital of France?",
    "Write one sentence about the sea.",
    "List three colours.",
    "Name a fruit that is yellow.",
]
TEMPERATURES = (0.0, 0.3, 0.5, 0.7, 0.9, 1.1, 1.3, 1.5)


def _steps(source, prompts, forced):
    """First logits and the logits after each forced token ``[steps, B, V]``, and the
    session's context."""
    logits, session = source.start(prompts)
    out = [logits]
    for step in forced:
        out.append(session.advance(np.asarray(step)))
    return np.stack(out), session._context


def _fresh_pool(source, monkeypatch):
    monkeypatch.setattr(
        source, "contexts",
        ContextPool(llama, source.model, source.vocab_size, source.cache_bytes_per_token),
    )


def _long_run(source, prompts, tokens):
    """A longer generation before: its context is left with every cell it wrote."""
    rows = [GenerationRow(p, SamplingParams(temperature=0.8, seed=i)) for i, p in
            enumerate(prompts)]
    generate(source, rows, max_new_tokens=tokens, ignore_eos=True)


@pytest.fixture
def made(monkeypatch):
    """Every context the pool makes (a fresh one, not an idle one handed on)."""
    contexts = []
    real = contexts_module.Context

    def counted(*args):
        contexts.append(real(*args))
        return contexts[-1]

    monkeypatch.setattr(contexts_module, "Context", counted)
    return contexts


@pytest.mark.parametrize("rows", [1, 8])
def test_logits_after_reuse_equal_a_fresh_contexts(gguf, monkeypatch, made, rows):
    _fresh_pool(gguf, monkeypatch)
    words = [int(t) for t in gguf.encode(" the sea is calm and the sky is blue", False)]
    _long_run(gguf, [PROMPTS[0]] if rows == 1 else [PROMPTS[i % 2] for i in range(rows)], 60)
    assert len(made) == 1
    kept = made[0]
    for prompt_set in ([PROMPTS[1]], [PROMPTS[2]], PROMPTS[2:]):
        prompts = [gguf.encode(prompt_set[i % len(prompt_set)], chat=True) for i in range(rows)]
        forced = [[w] * rows for w in words]
        reused, context = _steps(gguf, prompts, forced)
        assert context is kept  # cleared and handed on, not made again
        with monkeypatch.context() as patch:
            _fresh_pool(gguf, patch)
            fresh, fresh_context = _steps(gguf, prompts, forced)
        assert fresh_context is made[-1] and fresh_context is not kept
        assert np.array_equal(reused, fresh), prompt_set


def test_a_session_reuses_the_context_the_last_one_gave_back(gguf, monkeypatch):
    _fresh_pool(gguf, monkeypatch)
    prompts = [gguf.encode(PROMPTS[0], chat=True)]
    _, session = gguf.start(prompts)
    first = session._context
    del session
    gc.collect()
    _, session = gguf.start([gguf.encode(PROMPTS[1], chat=True)])
    assert session._context is first  # same shape: 256 cells, one row, passes of 32
    _, other = gguf.start(prompts)  # the first still runs: the second gets its own
    assert other._context is not first


def test_reused_context_equals_llama_cpp_driven_directly(gguf, monkeypatch):
    """The oracle here is llama.cpp itself, in a context this test makes and frees."""
    _fresh_pool(gguf, monkeypatch)
    _long_run(gguf, [PROMPTS[0]], 80)
    prompt = gguf.encode(PROMPTS[2], chat=True)
    forced = [int(t) for t in gguf.encode(" red, green and blue", False)]
    ours, context = _steps(gguf, [prompt], [[t] for t in forced])
    assert context.fits(*context.shape[:2], len(prompt))
    page = LlamaCppSession.page
    n_ctx = -(-(len(prompt) + LlamaCppSession.reserve) // page) * page
    direct = llama.llama_init_from_model(gguf.model, context_params(llama, n_ctx, 1, len(prompt)))
    batch = llama.llama_batch_init(len(prompt), 0, 1)
    theirs = []
    try:
        for start, tokens in [(0, prompt)] + [(len(prompt) + i, [t]) for i, t in
                                                enumerate(forced)]:
            for i, token in enumerate(tokens):
                batch.token[i], batch.pos[i], batch.n_seq_id[i] = token, start + i, 1
                batch.seq_id[i][0] = 0
                batch.logits[i] = i == len(tokens) - 1
            batch.n_tokens = len(tokens)
            assert llama.llama_decode(direct, batch) == 0
            row = llama.llama_get_logits_ith(direct, len(tokens) - 1)
            theirs.append(np.ctypeslib.as_array(row, shape=(gguf.vocab_size,)).copy())
    finally:
        llama.llama_batch_free(batch)
        llama.llama_free(direct)
    assert np.array_equal(ours[:, 0], np.stack(theirs))


def _generation(steps):
    return [(c.token_ids, c.steps) for c in steps]


@pytest.mark.parametrize("temperatures", [(0.0,), (0.7,), TEMPERATURES],
                         ids=["greedy", "sampled", "eight temperatures"])
def test_borrowed_logits_give_the_copied_logits_numbers(gguf, temperatures):
    """generate reads llama.cpp's buffer in place; batch_steps copies it: same numbers."""
    rows = [GenerationRow(PROMPTS[1], SamplingParams(temperature=t, seed=3))
            for t in temperatures]
    borrowed = generate(gguf, rows, max_new_tokens=12, ignore_eos=True)
    ids = gguf.encode(PROMPTS[1], chat=True)
    copied = [Completion(row, list(ids)) for row in rows]
    steps = list(batch_steps(gguf, copied, 12))
    assert _generation(borrowed)[0][0]  # tokens were made
    # EOS may end a batch_steps row (it does not ignore EOS): compare up to the shorter
    for (tokens, stats), (other_tokens, other_stats) in zip(
        _generation(borrowed), _generation(copied), strict=True
    ):
        assert tokens[: len(other_tokens)] == other_tokens
        assert stats[: len(other_stats)] == other_stats
    # and batch_steps' logits are copies: every step's still holds its own row
    assert not any(np.shares_memory(a.logits, b.logits) for a, b in itertools.pairwise(steps))


class _FakeContext:
    cells, memory = 256, None

    def __init__(self, *shape):
        self.shape = shape[-3:]

    def fits(self, *shape):
        return self.shape == shape


class _NoLlama:
    @staticmethod
    def llama_memory_clear(memory, data):
        pass


def test_no_context_is_handed_to_two_sessions_at_once(monkeypatch):
    """Takers on several threads, contexts given back from weakref callbacks meanwhile."""
    monkeypatch.setattr(contexts_module, "Context", _FakeContext)
    pool = ContextPool(_NoLlama(), None, 1000, 1)
    in_use: set[int] = set()
    clash = []
    guard = threading.Lock()

    def worker():
        for _ in range(2000):
            context = pool.take(256, 1, 40)
            with guard:
                clash.extend([id(context)] if id(context) in in_use else [])
                in_use.add(id(context))
            with guard:
                in_use.discard(id(context))
            pool.give_back(context)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert clash == []
    assert pool._idle.qsize() <= IDLE_CONTEXTS


def test_the_pool_keeps_few_and_small_contexts(monkeypatch):
    monkeypatch.setattr(contexts_module, "Context", _FakeContext)
    pool = ContextPool(_NoLlama(), None, 1000, bytes_per_cell=1)
    made = [_FakeContext(256, 1, 32) for _ in range(IDLE_CONTEXTS + 2)]
    for context in made:
        pool.give_back(context)
    assert pool._idle.qsize() == IDLE_CONTEXTS
    huge = ContextPool(_NoLlama(), None, 1000, bytes_per_cell=2**40)
    huge.give_back(made[0])
    assert huge._idle.qsize() == 0
    assert pool.take(256, 1, 32) in made[-IDLE_CONTEXTS:]  # the newest are kept
    assert pool.take(512, 1, 32) not in made  # another shape: made fresh
