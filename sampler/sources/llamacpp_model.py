"""A GGUF model run by llama.cpp as a logit source: logits only, our engine samples.

Through llama-cpp-python's low-level API: one context per batch with ``n_seq_max`` rows and a
unified KV cache (kept by the source for its next batch, cleared in between:
:mod:`sampler.sources.llamacpp_contexts`), each distinct prompt prefilled once and copied to
every row that uses it (``llama_memory_seq_cp``), then one ``llama_decode`` per step with one
token per row. ``advance`` copies the logits llama.cpp writes out before the next decode
overwrites them; ``advance_view`` lends them in place to a caller done with them by then.
Nothing here imports torch or transformers: tokens and the chat template come from the GGUF
file.
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
from sampler.sources.llamacpp_contexts import UBATCH, ContextPool, context_params, threads
from sampler.sources.llamacpp_text import GGUFText

__all__ = [
    "LlamaCppSession",
    "LlamaCppSource",
    "context_params",
    "import_llama_cpp",
    "load_gguf_source",
]

INSTALL_HINT = "pip install -e '.[llamacpp]'"
# Rows per context: llama.cpp's LLAMA_MAX_SEQ (256 sequences) less the session's spare one.
MAX_SEQUENCES = 255
_quiet_log: Any = None  # the no-op log callback; kept alive as long as llama.cpp may call it
_threads = threads  # the name scripts/bench_generate.py imported


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


class LlamaCppSession:
    """Up to :data:`MAX_SEQUENCES` rows extended together in one llama.cpp context.

    The context holds every row's prompt and ``reserve`` more tokens per row; when the rows
    outgrow it, their KV state is copied whole into a context twice as large. The context
    comes from the source's :class:`~sampler.sources.llamacpp_contexts.ContextPool` and goes
    back to it when the session is collected.
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
        # llama.cpp reserves a pass of one output per sequence, the spare's included, and a
        # batch must hold that many
        longest = max(rows + 1, *(len(p) for p in distinct))
        # Past one pass, a whole number of passes: llama.cpp splits a batch into passes of
        # UBATCH tokens whatever its size, and prompts of other lengths can then share a kept
        # context (ContextPool: same pass size, a batch at least as large).
        self._batch_size = longest if longest <= UBATCH else -(-longest // UBATCH) * UBATCH
        self._new_context(self._used + rows * self.reserve)
        memory = self._context.memory
        self.first_logits = np.empty((rows, source.vocab_size), dtype=np.float32)
        for prompt, users in distinct.items():
            self._decode([(token, index, users[0]) for index, token in enumerate(prompt)], False)
            self.first_logits[users] = self._context.logits(1)[0]
            for row in users[1:]:
                self._llama.llama_memory_seq_cp(memory, users[0], row, -1, -1)

    def _new_context(self, cells: int) -> None:
        n_ctx = -(-cells // self.page) * self.page
        contexts = self._source.contexts
        # one sequence more than rows: the spare keeps a rewound row's dropped cells (rewind)
        self._context = contexts.take(n_ctx, len(self._positions) + 1, self._batch_size)
        # Given back once: by _grow when it is replaced, else when the session is collected.
        self._give_back = weakref.finalize(self, contexts.give_back, self._context)

    def _decode(self, entries: Sequence[tuple[int, int, int]], every: bool) -> None:
        """Decode ``(token, position, sequence)`` entries, with logits for ``every`` entry
        (a step) or for the last one only (a prefill)."""
        self._context.decode(entries, every)

    def _grow(self) -> None:
        """Move every row's KV state into a context twice as large (exact: a copy of it)."""
        llama, old, give_back_old = self._llama, self._context.pointer, self._give_back
        states = []
        for row in range(len(self._positions)):
            size = llama.llama_state_seq_get_size(old, row)
            buffer = (ctypes.c_uint8 * size)()
            llama.llama_state_seq_get_data(old, buffer, size, row)
            states.append((buffer, size))
        self._used = int(self._positions.sum())  # copied rows no longer share their prompts
        self._new_context(max(2 * self._context.cells, self._used + 2 * len(states)))
        for row, (buffer, size) in enumerate(states):
            if llama.llama_state_seq_set_data(self._context.pointer, buffer, size, row) != size:
                raise InvalidInputError("llama.cpp could not move a row into a larger context")
        give_back_old()

    def rewind(self, row: int, position: int) -> None:
        """Drop row ``row``'s KV cells from ``position`` on (``llama_memory_seq_rm``); the next
        :meth:`advance` decodes its token at ``position``."""
        # The dropped cells go to the spare sequence rather than back to the pool: llama.cpp
        # fills a freed cell first, so another row's next token would land there, before its
        # own earlier cells, and flash attention's float16 sums over a row's cells in another
        # order move its logits by up to ~0.5: the row would draw otherwise than alone. The
        # spare's cells are never attended to (no row is that sequence) and count as used.
        memory, spare = self._context.memory, len(self._positions)
        self._llama.llama_memory_seq_cp(memory, row, spare, position, -1)
        if not self._llama.llama_memory_seq_rm(memory, row, position, -1):
            raise InvalidInputError(f"llama.cpp could not drop row {row}'s cache from {position}")
        self._positions[row] = position

    def advance_view(self, tokens: np.ndarray) -> np.ndarray:
        """:meth:`advance`'s logits as a read-only view of llama.cpp's buffer, which the next
        ``advance`` overwrites: for a caller done with them by then (no copy made)."""
        rows = len(self._positions)
        if self._used + rows > self._context.cells:
            self._grow()
        self._context.step(tokens, self._positions)
        self._positions += 1
        self._used += rows
        return self._context.logits(rows)

    def advance(self, tokens: np.ndarray) -> np.ndarray:
        """Append one token per row; return the next logits ``[B, V]`` float32 (a copy)."""
        return self.advance_view(tokens).copy()


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
        self.contexts = ContextPool(llama, model, self.vocab_size, self.cache_bytes_per_token)

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
