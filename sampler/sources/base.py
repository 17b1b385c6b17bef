"""The interface every logit source implements, and the generation loop relies on."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np

__all__ = ["LogitSource", "Session"]


class Session(Protocol):
    """One batch of sequences being extended, token by token (holds any KV cache)."""

    def advance(self, tokens: np.ndarray) -> np.ndarray:
        """Append one token per row (``[B]`` ints); return the next logits ``[B, V]`` float32."""
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
