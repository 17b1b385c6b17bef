"""The one exception type for bad user input.

Library functions raise :class:`InvalidInputError` (a ``ValueError``) with a single-line message
that names the bad value and what is allowed; the CLI prints that line and exits with code 2.
Any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations


class InvalidInputError(ValueError):
    """Bad input from a user: the message is one line naming the value and what is allowed."""
