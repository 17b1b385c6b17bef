"""llama.cpp contexts for the GGUF source, and the idle ones it keeps for its next session.

Making a context costs about 7.5 ms (allocating and zeroing its KV cache, reserving its compute
graphs): 0.12 ms a token of a 64-token batch-1 run, where llama-cpp-python's ``Llama`` keeps
one context for good. So a :class:`ContextPool` keeps the contexts that finished sessions give
back (at most :data:`IDLE_CONTEXTS`, each holding at most :data:`IDLE_CONTEXT_BYTES` of KV
cache) and hands one to the next session that asks for the same shape, after
``llama_memory_clear(memory, data=True)``: every sequence removed, the KV buffers zeroed, the
state a fresh context starts in. A reused context's logits equal a fresh one's to the bit
(``tests/test_llamacpp_contexts.py``).

Thread safety: a context belongs to one session at a time. A session gives its context back
when it is collected, which may happen on any thread and inside any allocation (a weakref
callback), so the pool takes no lock: idle contexts wait in a ``queue.SimpleQueue``, whose
``put`` may be called from such callbacks, and :meth:`ContextPool.take` empties the queue into a
list of its own, so two takers never get the same context.
"""

from __future__ import annotations

import contextlib
import ctypes
import queue
import weakref
from collections.abc import Sequence
from typing import Any

import numpy as np

from sampler.errors import InvalidInputError

__all__ = ["UBATCH", "Context", "ContextPool", "context_params", "threads"]

# Tokens llama.cpp computes in one pass (it splits a larger batch into passes of this size).
# With flash attention on, a pass of 64 tokens or more takes another attention kernel on the
# CPU, whose rounding differs: a row's logits in a step of 64+ rows moved by up to 0.55 from
# the row alone (measured on the native and the generic build alike), so a row's tokens
# depended on its batch. Passes of at most 32 keep every row bit-identical to the row alone
# (tests/test_llamacpp_source.py checks 80 rows), at the cost of one more pass per 32 rows.
UBATCH = 32
# Idle contexts kept per source, and the largest KV cache one may hold while idle: reuse pays
# where a context's making is a visible share of its run (short runs, few rows); a large
# context's making is small beside its run, and keeping it would hold its memory for nothing.
IDLE_CONTEXTS = 2
IDLE_CONTEXT_BYTES = 64 * 2**20


def threads() -> int:
    """llama.cpp's thread count: the engine's rule, the process's cores or SAMPLER_THREADS
    (a Ray actor's share of a node)."""
    from sampler.engine.parallel import cores

    return cores()


def context_params(llama: Any, n_ctx: int, n_seq: int, n_batch: int) -> Any:
    """The settings of every context this source makes (the parity tests reuse them)."""
    params = llama.llama_context_default_params()
    params.n_ctx = n_ctx
    params.n_batch = n_batch
    params.n_ubatch = min(n_batch, UBATCH)
    params.n_seq_max = n_seq
    params.kv_unified = True  # one pool of cells: a shared prompt is stored once
    params.n_threads = params.n_threads_batch = threads()
    params.no_perf = True
    return params


def _free(llama: Any, context: Any, batch: Any) -> None:
    llama.llama_batch_free(batch)
    llama.llama_free(context)


class Context:
    """One llama.cpp context and its token batch, freed together when this object is dropped.

    ``shape`` is what a session asks for: ``(n_ctx, n_seq, n_ubatch)``; the batch holds
    ``n_batch`` tokens, so a context serves any session of its shape that needs no more.
    """

    def __init__(
        self, llama: Any, model: Any, vocab_size: int, n_ctx: int, n_seq: int, n_batch: int
    ) -> None:
        pointer = llama.llama_init_from_model(model, context_params(llama, n_ctx, n_seq, n_batch))
        if not pointer:
            raise InvalidInputError(
                f"llama.cpp cannot make a context of {n_ctx} tokens for {n_seq} rows "
                "(out of memory?): use fewer rows or tokens"
            )
        self.llama, self.pointer = llama, pointer
        self.batch = batch = llama.llama_batch_init(n_batch, 0, 1)
        weakref.finalize(self, _free, llama, pointer, batch)
        self.shape = (n_ctx, n_seq, min(n_batch, UBATCH))
        self.n_batch, self.vocab_size = n_batch, vocab_size
        self.cells = int(llama.llama_n_ctx(pointer))
        self.memory = llama.llama_get_memory(pointer)
        # The batch's token and position arrays as numpy views: a step writes them in one go.
        self._tokens = np.ctypeslib.as_array(batch.token, shape=(n_batch,))
        self._positions = np.ctypeslib.as_array(batch.pos, shape=(n_batch,))
        self._step_rows = 0  # rows the batch is laid out for as a step (0: not a step)
        self._logits: tuple[int, int, np.ndarray] | None = None  # address, rows, view

    def fits(self, n_ctx: int, n_seq: int, n_batch: int) -> bool:
        return self.shape == (n_ctx, n_seq, min(n_batch, UBATCH)) and self.n_batch >= n_batch

    def decode(self, entries: Sequence[tuple[int, int, int]], every: bool) -> None:
        """Decode ``(token, position, sequence)`` entries, with logits for ``every`` entry
        or for the last one only (a prefill)."""
        batch, last = self.batch, len(entries) - 1
        for i, (token, position, sequence) in enumerate(entries):
            batch.token[i] = token
            batch.pos[i] = position
            batch.n_seq_id[i] = 1
            batch.seq_id[i][0] = sequence
            batch.logits[i] = every or i == last
        batch.n_tokens = len(entries)
        self._step_rows = 0
        self._run()

    def step(self, tokens: np.ndarray, positions: np.ndarray) -> None:
        """Decode one token per row (row ``r`` is sequence ``r``), logits for every row: the
        same batch as :meth:`decode` of ``(tokens[r], positions[r], r)``, written in one go."""
        rows = len(tokens)
        if self._step_rows != rows:  # sequences and logit flags stay as the last step left them
            batch = self.batch
            for row in range(rows):
                batch.n_seq_id[row] = 1
                batch.seq_id[row][0] = row
                batch.logits[row] = True
            batch.n_tokens = self._step_rows = rows
        self._tokens[:rows] = tokens
        self._positions[:rows] = positions
        self._run()

    def _run(self) -> None:
        status = self.llama.llama_decode(self.pointer, self.batch)
        if status != 0:
            raise InvalidInputError(f"llama.cpp failed to decode a batch (llama_decode={status})")

    def logits(self, rows: int) -> np.ndarray:
        """The last decode's logits ``[rows, V]``: a read-only view of llama.cpp's buffer,
        which the next decode overwrites."""
        pointer = self.llama.llama_get_logits(self.pointer)
        address = ctypes.cast(pointer, ctypes.c_void_p).value or 0
        if self._logits is None or self._logits[:2] != (address, rows):
            view = np.ctypeslib.as_array(pointer, shape=(rows, self.vocab_size))
            view.flags.writeable = False
            self._logits = (address, rows, view)
        return self._logits[2]


class ContextPool:
    """The idle contexts of one model (see the module docstring).

    Parameters
    ----------
    llama, model, vocab_size
        The ``llama_cpp`` module, the loaded model and its vocabulary's size.
    bytes_per_cell
        KV-cache bytes of one cell, to leave out contexts too large to keep idle.
    """

    def __init__(self, llama: Any, model: Any, vocab_size: int, bytes_per_cell: int) -> None:
        self._llama, self._model, self._vocab_size = llama, model, vocab_size
        self._bytes_per_cell = bytes_per_cell
        self._idle: queue.SimpleQueue[Context] = queue.SimpleQueue()

    def take(self, n_ctx: int, n_seq: int, n_batch: int) -> Context:
        """A cleared idle context of this shape, else a fresh one."""
        idle = []
        while True:
            try:
                idle.append(self._idle.get_nowait())
            except queue.Empty:
                break
        found = next((c for c in reversed(idle) if c.fits(n_ctx, n_seq, n_batch)), None)
        for context in idle[-IDLE_CONTEXTS:]:
            if context is not found:
                self._idle.put(context)
        if found is None:
            return Context(self._llama, self._model, self._vocab_size, n_ctx, n_seq, n_batch)
        self._llama.llama_memory_clear(found.memory, True)
        return found

    def give_back(self, context: Context) -> None:
        """Keep a context no session uses any more (called from weakref callbacks)."""
        if context.cells * self._bytes_per_cell <= IDLE_CONTEXT_BYTES:
            self._idle.put(context)
        if self._idle.qsize() > IDLE_CONTEXTS:
            with contextlib.suppress(queue.Empty):
                self._idle.get_nowait()  # the oldest: freed when dropped
