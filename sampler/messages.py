"""What one-line error messages share: how they show a value, and the check that text is text.

Examples
--------
>>> shown("x" * 100)[-5:], shown(10**20000)
('xx...', '<an integer of about 20000 digits>')
>>> check_text("prompt", "kalo \\ud800")
Traceback (most recent call last):
...
sampler.errors.InvalidInputError: prompt has a lone surrogate '\\ud800' at character 5: \
give valid Unicode text
"""

from __future__ import annotations

from sampler.errors import InvalidInputError

__all__ = ["check_text", "shown"]


def shown(value: object) -> str:
    """``value`` as an error message shows it: its repr, cut at 60 characters; an integer of
    more than 30 digits as its start and length (one too long to print, over 4,300 digits, by
    its size alone)."""
    if isinstance(value, int) and value.bit_length() > 14_000:
        return f"<an integer of about {int(value.bit_length() * 0.30103)} digits>"
    text = repr(value)
    if isinstance(value, int) and len(text) > 30:
        return f"{text[:30]}…({len(text.lstrip('-'))} digits)"
    return text if len(text) <= 60 else text[:57] + "..."


def check_text(name: str, text: str) -> str:
    """``text`` if it is valid Unicode (encodable as UTF-8), else a one-line error.

    JSON may carry a lone surrogate (``"\\ud800"``), and Python's command line arguments do for
    bytes that are not UTF-8; no tokenizer, file or database takes one.
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        bad = text[error.start]
        raise InvalidInputError(
            f"{name} has a lone surrogate {bad!r} at character {error.start}: "
            "give valid Unicode text"
        ) from None
    return text
