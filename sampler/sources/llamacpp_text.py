"""Text in and out of a GGUF model's own vocabulary, through llama.cpp (no transformers).

Tokens come from ``llama_tokenize`` / ``llama_detokenize`` on the vocabulary stored in the
GGUF file. The chat template is the one in the model's metadata (``llama_model_chat_template``).
It is rendered with jinja2 the way transformers renders it, because llama.cpp's
``llama_chat_apply_template`` matches templates by pattern and writes only the messages it is
given: for SmolLM2 it would drop the default system message that the template itself adds, and
the two backends would then see different prompts. ``llama_chat_apply_template`` remains the
fallback for a template jinja2 cannot render.
"""

from __future__ import annotations

import ctypes
from collections.abc import Sequence
from typing import Any

from sampler.errors import InvalidInputError

__all__ = ["GGUFText"]


class GGUFText:
    """Tokenizer, detokenizer and chat template of one loaded llama.cpp model.

    Parameters
    ----------
    llama
        The ``llama_cpp`` module.
    model
        A model pointer from ``llama_model_load_from_file``.
    """

    def __init__(self, llama: Any, model: Any) -> None:
        self._llama = llama
        self.vocab = llama.llama_model_get_vocab(model)
        self.vocab_size = int(llama.llama_vocab_n_tokens(self.vocab))
        template = llama.llama_model_chat_template(model, None)
        self.chat_template = template.decode("utf-8") if template else None
        self._labels: dict[int, str] = {}
        self._template: Any = None  # the compiled chat template, made at its first use

    def eos_token_ids(self) -> frozenset[int]:
        """Every end-of-generation token of the vocabulary (EOS, EOT and the like)."""
        vocab, llama = self.vocab, self._llama
        named = {int(llama.llama_vocab_eos(vocab)), int(llama.llama_vocab_eot(vocab))}
        return frozenset(t for t in named if 0 <= t < self.vocab_size)

    def tokenize(self, text: str, add_special: bool) -> list[int]:
        """Token ids of ``text``; special-token text (``<|im_start|>``) is parsed as such.

        transformers' tokenizers match their added tokens in any text too, so both backends
        give the same ids.
        """
        data = text.encode("utf-8")
        capacity = len(data) + 8
        while True:
            buffer = (self._llama.llama_token * capacity)()
            count = self._llama.llama_tokenize(
                self.vocab, data, len(data), buffer, capacity, add_special, True
            )
            if count >= 0:
                return list(buffer[:count])
            capacity = -count  # too small: llama.cpp says how many it needs

    def render_chat(self, prompt: str) -> str:
        """``prompt`` as one user turn of the model's chat template, ready for the answer."""
        messages = [{"role": "user", "content": prompt}]
        try:
            return self._compiled_template().render(messages=messages, add_generation_prompt=True)
        except Exception:  # an unsupported template: llama.cpp's own pattern-based renderer
            return self._apply_template(messages)

    def _compiled_template(self) -> Any:
        """The chat template compiled by jinja2, once per model (compiling it took ~2 ms, more
        than the rest of a prompt's encoding); raises what jinja2 raises for a bad one."""
        if self._template is None:
            from jinja2.sandbox import ImmutableSandboxedEnvironment

            # transformers' settings for chat templates: the same text, byte for byte.
            environment = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
            self._template = environment.from_string(self.chat_template or "")
        return self._template

    def _apply_template(self, messages: list[dict[str, str]]) -> str:
        llama = self._llama
        chat = (llama.llama_chat_message * len(messages))(
            *[llama.llama_chat_message(m["role"].encode(), m["content"].encode()) for m in messages]
        )
        template = (self.chat_template or "").encode("utf-8")
        size = 2 * sum(len(m["content"]) for m in messages) + 1024
        while True:
            buffer = ctypes.create_string_buffer(size)
            needed = llama.llama_chat_apply_template(
                template, chat, len(messages), True, buffer, size
            )
            if needed < 0:
                raise InvalidInputError("the model's chat template is not supported: use --raw")
            if needed <= size:
                return buffer.raw[:needed].decode("utf-8", errors="replace")
            size = needed

    def detokenize(self, token_ids: Sequence[int]) -> str:
        """Text of ``token_ids``, special tokens left out (as transformers' ``decode``)."""
        if not token_ids:
            return ""
        tokens = (self._llama.llama_token * len(token_ids))(*[int(t) for t in token_ids])
        size = 8 * len(token_ids) + 64
        while True:
            buffer = ctypes.create_string_buffer(size)
            count = self._llama.llama_detokenize(
                self.vocab, tokens, len(token_ids), buffer, size, True, False
            )
            if count >= 0:
                return buffer.raw[:count].decode("utf-8", errors="replace")
            size = -count

    def token_bytes(self, token_id: int) -> bytes:
        """One token's text as bytes, special tokens as their text (what DRY matches)."""
        tokens = (self._llama.llama_token * 1)(int(token_id))
        size = 64
        while True:
            buffer = ctypes.create_string_buffer(size)
            count = self._llama.llama_detokenize(self.vocab, tokens, 1, buffer, size, False, True)
            if count >= 0:
                return buffer.raw[:count]
            size = -count

    def tokenize_bytes(self, data: bytes) -> list[int]:
        """Token ids of raw bytes, no special token added or parsed (DRY's breaker tails)."""
        capacity = len(data) + 8
        buffer = (self._llama.llama_token * capacity)()
        count = self._llama.llama_tokenize(
            self.vocab, data, len(data), buffer, capacity, False, False
        )
        return list(buffer[: max(count, 0)])

    def label(self, token_id: int) -> str:
        """The piece of one token, special tokens shown (as transformers' ``decode([id])``)."""
        token_id = int(token_id)
        if token_id not in self._labels:
            buffer = ctypes.create_string_buffer(256)
            count = self._llama.llama_token_to_piece(self.vocab, token_id, buffer, 256, 0, True)
            piece = buffer.raw[: max(count, 0)]
            self._labels[token_id] = piece.decode("utf-8", errors="replace")
        return self._labels[token_id]
