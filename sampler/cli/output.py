"""Standard output that cannot take the output (closed, full, a closed pipe): one error line.

A command's output goes to ``sys.stdout`` through :class:`GuardedOutput`, which turns a failed
write or flush into :class:`OutputError`, so that the command line can tell it from any other
``OSError`` (a bug, which keeps its traceback) and say that the output could not be written.
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Any, TextIO

__all__ = ["GuardedOutput", "OutputError", "closed_stdout_message", "discard_stdout"]


class OutputError(Exception):
    """Writing the command's output to standard output failed."""

    def __init__(self, error: OSError) -> None:
        reason = error.strerror or str(error)
        super().__init__(
            f"cannot write the output to standard output: {reason}; give it a file with room "
            "or a pipe that reads it all (what a command records in the run log is kept)"
        )


class GuardedOutput:
    """``stream`` whose write and flush raise :class:`OutputError` instead of ``OSError``.

    Everything else (``encoding``, ``fileno``, ...) is the stream's own, so click writes to it
    as to the stream itself.
    """

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def write(self, text: str) -> int:
        try:
            return self.stream.write(text)
        except OSError as error:
            raise OutputError(error) from None

    def flush(self) -> None:
        try:
            self.stream.flush()
        except OSError as error:
            raise OutputError(error) from None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)


def closed_stdout_message() -> str:
    """The error for a standard output that was closed before the command started."""
    return (
        "standard output is closed (e.g. by >&-): the command has nowhere to write its "
        "output; give it a file (> out.txt) or /dev/null"
    )


def discard_stdout(stream: TextIO) -> None:
    """After an :class:`OutputError`: point the file behind ``stream`` at ``/dev/null``, so the
    interpreter's last flush at exit cannot fail again (with a second message)."""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, stream.fileno())
        os.close(null)
    sys.stdout = stream
