"""The run log as the server reaches it: opened per request, its failures mapped to HTTP.

The run log is the server's own (``--db``), not the request's: one that is damaged, locked by
another process, read-only or not a run log at all is the server's trouble (503), a full disk
is 507 (Insufficient Storage), and a run the log does not hold is the request's (404). The
messages are the run log's own (:class:`~sampler.errors.RunLogError` and its subclasses);
:func:`status_of` is the one place that maps them.

A write waits 10 s for another process's lock (the run log's busy timeout, right for two
sweeps sharing a log); a server answers at once instead. Before opening the log a request
looks, for :data:`LOCK_WAIT_S`, at whether it could read it (a save: write it); if another
process holds the lock, the answer is 503 with nothing read, run or written.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sampler.errors import InvalidInputError, RunLogError, RunLogFullError

__all__ = ["LOCK_WAIT_S", "RunLogUnavailableError", "opened", "status_of"]

LOCK_WAIT_S = 1  # sampler's own writers hold the lock for one row: milliseconds


class RunLogUnavailableError(Exception):
    """The run log cannot serve this request: ``status`` (503 or 507) and its one line."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def status_of(error: InvalidInputError) -> int:
    """The HTTP status of a run log's refusal: 507 for a full disk, else 503."""
    return 507 if isinstance(error, RunLogFullError) else 503


@contextlib.contextmanager
def opened(db: str, write: bool = False) -> Iterator[Any]:
    """The :class:`~sampler.runlog.store.RunStore` at ``db`` for one request.

    Raises :class:`RunLogUnavailableError` when another process holds its lock (within
    :data:`LOCK_WAIT_S`), when it cannot be opened (damaged, another application's, read-only,
    from a newer sampler) or when a read or write inside fails as a
    :class:`~sampler.errors.RunLogError`; any other
    :class:`~sampler.errors.InvalidInputError` (a run it does not hold) passes through.
    """
    from sampler.runlog.store import RunStore

    _check_lock(Path(db), write)
    try:
        store = RunStore(db)
    except InvalidInputError as error:  # the log's own refusal of the file, one line
        raise RunLogUnavailableError(status_of(error), str(error)) from None
    try:
        with store:
            yield store
    except RunLogError as error:
        raise RunLogUnavailableError(status_of(error), str(error)) from None


def _check_lock(path: Path, write: bool) -> None:
    """Refuse at once (503) if another process holds the lock a read (or write) needs."""
    from sampler.runlog.connection import LOCKED

    if not path.is_file():
        return  # a new log: RunStore makes it
    try:
        conn = sqlite3.connect(
            f"{path.resolve().as_uri()}?mode=rw", uri=True, timeout=LOCK_WAIT_S,
            isolation_level=None,
        )
    except sqlite3.Error:
        return  # RunStore says what is wrong with the file
    try:
        conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.OperationalError as error:
        if "locked" in str(error).lower():  # SQLite's "database is locked" (SQLITE_BUSY)
            raise RunLogUnavailableError(503, LOCKED.format(path, LOCK_WAIT_S)) from None
    except sqlite3.Error:
        pass  # damaged or not SQLite: RunStore refuses it with its own message
    finally:
        conn.close()  # rolls back: the look wrote nothing
