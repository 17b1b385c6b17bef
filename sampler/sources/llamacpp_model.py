"""A GGUF model run by llama.cpp as a logit source: logits only, our engine samples.

Through llama-cpp-python's low-level API: one context per batch with ``n_seq_max`` rows and a
unified KV cache, each distinct prompt prefilled once and copied to every row that uses it
(``llama_memory_seq_cp``), then one ``llama_decode`` per step with one token per row. The
logits llama.cpp writes are copied out before the next decode overwrites them. Nothing here
imports torch or transformers: tokens and the chat template come from the GGUF file.
"""

from __future__ import annotations

import ctypes
import weakref
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sampler.errors import InvalidInputError
from sampler.sources.gguf_path import check_gguf_file
from sampler.sources.llamacpp_text import GGUFText

__all__ = ["LlamaCppSession", "LlamaCppSource", "import_llama_cpp", "load_gguf_source"]

INSTALL_HINT = "pip install -e '.[llamacpp]'"
# llama.cpp's LLAMA_MAX_SEQ: a context holds at most this many sequences.
MAX_SEQUENCES = 256
# Tokens llama.cpp computes in one pass (it splits a larger batch into passes of this size).
# With flash attention on, a pass of 64 tokens or more takes another attention kernel on the
# CPU, whose rounding differs: a row's logits in a step of 64+ rows moved by up to 0.55 from
# the row alone (measured on the native and the generic build alike), so a row's tokens
# depended on its batch. Passes of at most 32 keep every row bit-identical to the row alone
# (tests/test_llamacpp_source.py checks 80 rows), at the cost of one more pass per 32 rows.
UBATCH = 32
_quiet_log: Any = None  # the no-op log callback; kept alive as long as llama.cpp may call it


def import_llama_cpp() -> Any:
    """The ``llama_cpp`` module, its backend initialised and its log silenced (once)."""
    global _quiet_log
    try:
        import llama_cpp
    except ImportError:
        raise InvalidInputError(
            f"the llama.cpp backend needs llama-cpp-python, which is not installed: {INSTALL_HINT}"
        ) from None
    if _quiet_log is None:
        _quiet_log = llama_cpp.llama_log_callback(lambda level, text, data: None)
        llama_cpp.llama_log_set(_quiet_log, ctypes.c_void_p())
        llama_cpp.llama_backend_init()
    return llama_cpp


def _threads() -> int:
    # the engine's rule: the process's cores, or SAMPLER_THREADS (a Ray actor's share of a node)
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
    params.n_threads = params.n_threads_batch = _threads()
    params.no_perf = True
    return params


class LlamaCppSession:
    """Up to :data:`MAX_SEQUENCES` rows extended together in one llama.cpp context.

    The context holds every row's prompt and ``reserve`` more tokens per row; when the rows
    outgrow it, their KV state is copied whole into a context twice as large.
    """

    reserve = 128  # tokens per row a fresh context leaves room for beyond the prompts
    page = 256  # llama.cpp pads a context to a multiple of 256 cells anyway

    def __init__(self, source: LlamaCppSource, prompts: Sequence[Sequence[int]]) -> None:
        self._llama, self._source = source.llama, source
        rows = len(prompts)
        distinct: dict[tuple[int, ...], list[int]] = {}
        for row, prompt in enumerate(prompts):
            distinct.setdefault(tuple(int(t) for t in prompt), []).append(row)
        self._positions = np.array([len(p) for p in prompts], dtype=np.int64)
        self._used = sum(len(p) for p in distinct)  # cells: a shared prompt is stored once
        self._batch_size = max(rows, *(len(p) for p in distinct))
        self._new_context(self._used + rows * self.reserve)
        self._batch = self._llama.llama_batch_init(self._batch_size, 0, 1)
        weakref.finalize(self, self._llama.llama_batch_free, self._batch)
        memory = self._llama.llama_get_memory(self._context)
        self.first_logits = np.empty((rows, source.vocab_size), dtype=np.float32)
        for prompt, users in distinct.items():
            self._decode([(token, index, users[0]) for index, token in enumerate(prompt)], False)
            self.first_logits[users] = self._logits(1)[0]
            for row in users[1:]:
                self._llama.llama_memory_seq_cp(memory, users[0], row, -1, -1)

    def _new_context(self, cells: int) -> None:
        n_ctx = -(-cells // self.page) * self.page
        params = context_params(self._llama, n_ctx, len(self._positions), self._batch_size)
        context = self._llama.llama_init_from_model(self._source.model, params)
        if not context:
            raise InvalidInputError(
                f"llama.cpp cannot make a context of {n_ctx} tokens for "
                f"{len(self._positions)} rows (out of memory?): use fewer rows or tokens"
            )
        self._context = context
        # Freed once: by _grow when it is replaced, else when the session is collected.
        self._free_context = weakref.finalize(self, self._llama.llama_free, context)

    def _decode(self, entries: Sequence[tuple[int, int, int]], every: bool) -> None:
        """Decode ``(token, position, sequence)`` entries, with logits for ``every`` entry
        (a step) or for the last one only (a prefill)."""
        batch = self._batch
        last = len(entries) - 1
        for i, (token, position, sequence) in enumerate(entries):
            batch.token[i] = token
            batch.pos[i] = position
            batch.n_seq_id[i] = 1
            batch.seq_id[i][0] = sequence
            batch.logits[i] = every or i == last
        batch.n_tokens = len(entries)
        status = self._llama.llama_decode(self._context, batch)
        if status != 0:
            raise InvalidInputError(f"llama.cpp failed to decode a batch (llama_decode={status})")

    def _logits(self, rows: int) -> np.ndarray:
        # A view of llama.cpp's buffer, which the next decode overwrites: copy it.
        pointer = self._llama.llama_get_logits(self._context)
        shape = (rows, self._source.vocab_size)
        return np.ctypeslib.as_array(pointer, shape=shape).copy()

    def _grow(self) -> None:
        """Move every row's KV state into a context twice as large (exact: a copy of it)."""
        llama, old, free_old = self._llama, self._context, self._free_context
        states = []
        for row in range(len(self._positions)):
            size = llama.llama_state_seq_get_size(old, row)
            buffer = (ctypes.c_uint8 * size)()
            llama.llama_state_seq_get_data(old, buffer, size, row)
            states.append((buffer, size))
        self._used = int(self._positions.sum())  # copied rows no longer share their prompts
        capacity = llama.llama_n_ctx(old)
        self._new_context(max(2 * capacity, self._used + 2 * len(states)))
        for row, (buffer, size) in enumerate(states):
            if llama.llama_state_seq_set_data(self._context, buffer, size, row) != size:
                raise InvalidInputError("llama.cpp could not move a row into a larger context")
        free_old()

    def rewind(self, row: int, position: int) -> None:
        """Drop row ``row``'s KV cells from ``position`` on (``llama_memory_seq_rm``); the next
        :meth:`advance` decodes its token at ``position``."""
        memory = self._llama.llama_get_memory(self._context)
        if not self._llama.llama_memory_seq_rm(memory, row, position, -1):
            raise InvalidInputError(f"llama.cpp could not drop row {row}'s cache from {position}")
        self._positions[row] = position

    def advance(self, tokens: np.ndarray) -> np.ndarray:
        """Append one token per row; return the next logits ``[B, V]`` float32."""
        rows = len(self._positions)
        if self._used + rows > self._llama.llama_n_ctx(self._context):
            self._grow()
        ids = np.asarray(tokens, dtype=np.int64)
        self._decode([(int(ids[r]), int(self._positions[r]), r) for r in range(rows)], True)
        self._positions += 1
        self._used += rows
        return self._logits(rows)


class _Split:
    """More rows than one context holds: consecutive sessions, logits concatenated."""

    def __init__(self, parts: list[LlamaCppSession]) -> None:
        self.parts = parts
        self.first_logits = np.concatenate([p.first_logits for p in parts])

    def rewind(self, row: int, position: int) -> None:
        for part in self.parts:
            if row < len(part.first_logits):
                return part.rewind(row, position)
            row -= len(part.first_logits)

    def advance(self, tokens: np.ndarray) -> np.ndarray:
        bounds = np.cumsum([0] + [len(p.first_logits) for p in self.parts])
        pieces = zip(self.parts, bounds[:-1], bounds[1:], strict=True)
        return np.concatenate([part.advance(tokens[a:b]) for part, a, b in pieces])


class LlamaCppSource:
    """Next-token logits of a GGUF model, computed by llama.cpp.

    Parameters
    ----------
    path
        The ``.gguf`` file.
    name, fingerprint
        What the run log records.
    """

    def __init__(self, path: Path, name: str, fingerprint: str) -> None:
        self.llama = llama = import_llama_cpp()
        check_gguf_file(path)
        model = llama.llama_model_load_from_file(
            str(path).encode(), llama.llama_model_default_params()
        )
        if not model:
            raise InvalidInputError(
                f"llama.cpp cannot load {path}: a damaged file or an architecture it "
                "does not support"
            )
        self.model = model
        weakref.finalize(self, llama.llama_model_free, model)
        self.text = GGUFText(llama, model)
        self.name, self.fingerprint = name, fingerprint
        self.vocab_size = self.text.vocab_size
        self.eos_token_ids = self.text.eos_token_ids()
        self.context_limit = int(llama.llama_model_n_ctx_train(model)) or None
        self.is_chat = bool(self.text.chat_template)
        heads = max(int(llama.llama_model_n_head(model)), 1)
        head_dim = int(llama.llama_model_n_embd(model)) // heads
        # Keys and values of every layer, float16 (llama.cpp's default cache type).
        self.cache_bytes_per_token = (
            (2 * int(llama.llama_model_n_layer(model)) * int(llama.llama_model_n_head_kv(model)))
            * head_dim
            * 2
        )

    def encode(self, prompt: str, chat: bool) -> list[int]:
        """Token ids of ``prompt``; with ``chat``, as one user turn of the chat template."""
        if chat:
            if not prompt.strip():
                raise InvalidInputError(
                    "the prompt is empty: a chat model needs a message (or use --raw)"
                )
            return self.text.tokenize(self.text.render_chat(prompt), add_special=False)
        ids = self.text.tokenize(prompt, add_special=True)
        if not ids:
            raise InvalidInputError("the prompt is empty: give some text to continue")
        return ids

    def decode(self, token_ids: Sequence[int]) -> str:
        return self.text.detokenize(token_ids)

    def token_label(self, token_id: int) -> str:
        return self.text.label(token_id)

    def start(self, prompts: Sequence[Sequence[int]]) -> tuple[np.ndarray, Any]:
        if len(prompts) <= MAX_SEQUENCES:
            session = LlamaCppSession(self, prompts)
            return session.first_logits, session
        parts = [
            LlamaCppSession(self, prompts[i : i + MAX_SEQUENCES])
            for i in range(0, len(prompts), MAX_SEQUENCES)
        ]
        split = _Split(parts)
        return split.first_logits, split


def load_gguf_source(
    spec: str, cache_dir: str | None = None, progress: Callable[[str], None] = lambda m: None
) -> LlamaCppSource:
    """A llama.cpp source from a GGUF alias (fetched into the cache) or a ``.gguf`` path."""
    from sampler.sources.gguf_cache import ensure_gguf, file_fingerprint
    from sampler.sources.model_cache import ALIASES, cache_root

    if spec in ALIASES:
        import_llama_cpp()  # say what is missing before downloading anything
        path, fingerprint = ensure_gguf(spec, cache_root(cache_dir), progress)
        return LlamaCppSource(path, spec, fingerprint)
    path = Path(spec).expanduser()
    check_gguf_file(path)
    return LlamaCppSource(path, str(path.resolve()), file_fingerprint(path))
