"""The interface every logit source implements, and the generation loop relies on."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

if TYPE_CHECKING:
    from sampler.engine.filters.dry import TokenTexts

__all__ = ["LogitSource", "Session", "dry_vocabulary", "text_tokens", "token_texts"]


class Session(Protocol):
    """One batch of sequences being extended, token by token (holds any KV cache)."""

    def advance(self, tokens: np.ndarray) -> np.ndarray:
        """Append one token per row (``[B]`` ints); return the next logits ``[B, V]`` float32."""
        ...

    def rewind(self, row: int, position: int) -> None:
        """Forget row ``row``'s positions from ``position`` on (its KV cache there); the next
        :meth:`advance` gives that row the token at ``position`` again. A ``position`` of -1
        (an empty prompt, every token dropped) returns the row to its start. Used by phrase
        bans (:mod:`sampler.generation.phrase_bans`)."""
        ...


class LogitSource(Protocol):
    """Turns token sequences into next-token logits.

    Attributes
    ----------
    name
        What the run log records (alias, folder or synthetic spec).
    fingerprint
        A revision or checksum that pins exactly which weights / table produced the logits.
    vocab_size
        Width of the logits.
    eos_token_ids
        Tokens that end a row.
    context_limit
        Longest sequence (prompt + generated) the source accepts, or ``None``.
    is_chat
        Whether prompts go through a chat template by default.
    cache_bytes_per_token
        Memory one token of one row holds while generating (KV cache); 0 if none. Optional:
        the generation loop treats a missing attribute as 0.
    """

    name: str
    fingerprint: str
    vocab_size: int
    eos_token_ids: frozenset[int]
    context_limit: int | None
    is_chat: bool

    def encode(self, prompt: str, chat: bool) -> list[int]:
        """Token ids of a prompt (through the chat template when ``chat``)."""
        ...

    def decode(self, token_ids: Sequence[int]) -> str:
        """Text of some token ids (special tokens skipped)."""
        ...

    def token_label(self, token_id: int) -> str:
        """A short printable label of one token, for tables and plots."""
        ...

    def start(self, prompts: Sequence[Sequence[int]]) -> tuple[np.ndarray, Session]:
        """Logits ``[B, V]`` for the token after each prompt, and the session to continue."""
        ...


def dry_vocabulary(source: LogitSource, params: Sequence[Any]) -> TokenTexts | None:
    """:func:`token_texts` of ``source`` if any of ``params`` runs DRY (its breakers are
    found in the vocabulary), else ``None``: the vocabulary is read only when needed."""
    return token_texts(source) if any("dry" in p.active_stages for p in params) else None


def token_texts(source: LogitSource) -> TokenTexts:
    """The source's vocabulary as DRY reads it, made once per source.

    A source with ``token_bytes`` and ``tokenize_bytes`` (the llama.cpp one, through
    llama.cpp's own detokenizer, as its DRY sampler does) gives exact bytes; any other source
    its ``decode`` of each token (UTF-8) and its ``encode`` without chat template.
    """
    cached = getattr(source, "_dry_token_texts", None)
    if cached is not None:
        return cached
    from sampler.engine.filters.dry import TokenTexts

    text = getattr(source, "text", None)
    if hasattr(text, "token_bytes") and hasattr(text, "tokenize_bytes"):
        texts = [text.token_bytes(i) for i in range(source.vocab_size)]
        vocabulary = TokenTexts(texts, text.tokenize_bytes)
    else:
        texts = [source.decode([i]).encode("utf-8") for i in range(source.vocab_size)]
        vocabulary = TokenTexts(
            texts, lambda data: source.encode(data.decode("utf-8", "replace"), chat=False)
        )
    with contextlib.suppress(AttributeError):  # a slotted source: built again next time
        setattr(source, "_dry_token_texts", vocabulary)  # noqa: B010
    return vocabulary


def use_chat(source: LogitSource, raw: bool) -> bool:
    """Whether prompts go through the chat template: the source's default, unless ``raw``."""
    return source.is_chat and not raw


def text_tokens(source: Any, text: str) -> list[int]:
    """The tokens of ``text`` alone, without BOS or chat template (KoboldCpp's
    TokenizeString): llama.cpp's tokenizer (``add_special=False``) for a GGUF, the tokenizer
    without special tokens for a transformers model, else the source's plain ``encode``."""
    if not text:
        return []
    gguf = getattr(source, "text", None)
    if hasattr(gguf, "tokenize"):
        return list(gguf.tokenize(text, add_special=False))
    tokenizer = getattr(source, "tokenizer", None)
    if tokenizer is not None:
        return list(tokenizer(text, add_special_tokens=False)["input_ids"])
    return list(source.encode(text, chat=False))
