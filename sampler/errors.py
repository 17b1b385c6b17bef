"""The exception types for bad user input and for a run log that cannot be used as asked.

Library functions raise :class:`InvalidInputError` (a ``ValueError``) with a single-line message
that names the bad value and what is allowed; the CLI prints that line and exits with code 2.
Any other exception is a bug and keeps its traceback.

A run log that is damaged, locked by another process or on a full disk raises a
:class:`RunLogError` subclass: still one line naming the file, so the CLI treats it the same,
while the server can answer each with its own status.
"""

from __future__ import annotations

__all__ = [
    "InvalidInputError",
    "RunLogDamagedError",
    "RunLogError",
    "RunLogFullError",
    "RunLogLockedError",
]


class InvalidInputError(ValueError):
    """Bad input from a user: the message is one line naming the value and what is allowed."""


class RunLogError(InvalidInputError):
    """The run log file cannot be read or written as asked; the message names the file."""

    def with_hint(self, hint: str) -> RunLogError:
        """The same error (same type) with ``hint`` appended to its one line."""
        return type(self)(f"{self}; {hint}")


class RunLogDamagedError(RunLogError):
    """The run log's tables or stored values are not what sampler writes (a damaged file)."""


class RunLogLockedError(RunLogError):
    """Another process held the run log's lock for longer than the bounded wait."""


class RunLogFullError(RunLogError):
    """The run log could not grow: its disk (or SQLite's page limit) is full."""
