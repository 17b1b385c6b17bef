"""A row's text as it grows: a short decode window per token, stop strings, held-back text.

The generation loop (:mod:`sampler.generation.loop`) calls :func:`update_text` after each
token of a row when it watches text (stop strings, streaming) and :func:`finish_text` at the
row's end, which sets its final text and emits what was held back.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sampler.generation.generation_row import Completion
from sampler.sources.base import LogitSource

__all__ = ["TextCallback", "TextState", "finish_text", "text_state", "update_text"]

TextCallback = Callable[[int, str], None]


def _stop_at(text: str, stop: Sequence[str], start: int = 0) -> int | None:
    """Where the first stop string in ``text[start:]`` begins, or ``None``."""
    hits = [found for s in stop if s and (found := text.find(s, start)) >= 0]
    return min(hits) if hits else None


@dataclass
class TextState:
    """Where a row's incremental decoding stands (see :func:`update_text`)."""

    prefix: int = 0  # first token of the decode window
    read: int = 0  # tokens whose text is already in completion.text
    emitted: int = 0  # characters of completion.text already given to on_text
    on_text: TextCallback | None = None


def text_state(completion: Completion) -> TextState:
    """The decoding state of ``completion``'s row (made at its first token)."""
    # Kept on the completion itself (not a field: it is no part of the result) so the state
    # lives and dies with its row whatever the batch.
    return completion.__dict__.setdefault("_text_state", TextState())


def update_text(
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
    state = text_state(completion)
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
    held = completion.__dict__.get("_held_tokens")  # phrase bans may still rewind these
    if held and cut is None:
        end = min(end, len(text) - len(source.decode(ids[-held:])))
    if on_text is not None and end > state.emitted:
        on_text(index, text[state.emitted : end])
        state.emitted = end


def _stop_prefix(text: str, stop: Sequence[str]) -> int:
    """Length of the longest end of ``text`` that begins some stop string."""
    return max((k for s in stop for k in range(1, len(s)) if text.endswith(s[:k])), default=0)


def finish_text(
    source: LogitSource,
    completion: Completion,
    text_is_current: bool,
    index: int,
    on_finish: Callable[[int, Completion], None] | None,
) -> None:
    """At a row's end: its final text (``decode(token_ids)``, or the text cut at its stop
    string), what was held back given to its ``on_text``, then ``on_finish(index,
    completion)``. ``text_is_current``: the loop kept the row's text up to date."""
    if text_is_current:
        state = text_state(completion)
        if completion.finish_reason != "stop":
            # One full decode per row, at its end: the text is exactly decode(token_ids), and
            # what was held back (a split character, a possible stop string) is streamed now.
            completion.text = source.decode(completion.token_ids)
        if state.on_text is not None and len(completion.text) > state.emitted:
            state.on_text(index, completion.text[state.emitted :])
    else:
        completion.text = source.decode(completion.token_ids)
    if on_finish is not None:
        on_finish(index, completion)
