"""The one exception type for bad user input.

Library functions raise :class:`InvalidInputError` (a ``ValueError``) with a single-line message
that names the bad value and what is allowed; the CLI prints that line and exits with code 2.
Any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

__all__ = ["InvalidInputError", "check_unicode"]


class InvalidInputError(ValueError):
    """Bad input from a user: the message is one line naming the value and what is allowed."""


def check_unicode(what: str, text: str) -> str:
    """``text``, or a one-line error if it holds a lone surrogate (``"\\ud800"``).

    JSON's ``\\ud800`` escape decodes to one; it is no character, and fails much later, when
    the text is encoded to be stored or printed.
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        bad = text[error.start : error.end].encode("unicode_escape").decode("ascii")
        raise InvalidInputError(
            f"{what} holds {bad}, a lone surrogate (half of a pair, no character): give "
            "valid Unicode text"
        ) from None
    return text
