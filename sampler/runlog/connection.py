"""Opening a run log: whose database it is, its connection settings, migrations, write locks.

A database is set up (WAL, migrations) only once it is known to be a run log or empty; a file
that is damaged or belongs to another application is refused before anything is written to
it, so refusing it leaves it exactly as it was. :func:`sqlite_errors` turns the failures a
user can act on (a damaged file, a lock held by another process, a full disk) into one-line
:class:`~sampler.errors.RunLogError` subclasses naming the file.
"""

from __future__ import annotations

import contextlib
import errno
import shutil
import sqlite3
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

from sampler.errors import (
    InvalidInputError,
    RunLogDamagedError,
    RunLogFullError,
    RunLogLockedError,
)
from sampler.runlog.paths import NOT_SQLITE, READ_ONLY, check_database_path
from sampler.runlog.schema import TABLE_COLUMNS, sql_statements

__all__ = [
    "BUSY_TIMEOUT_S",
    "check_tables",
    "damaged",
    "migrate",
    "now",
    "open_connection",
    "sqlite_errors",
    "write_transaction",
]

# How long a write waits for another process's lock before giving up with RunLogLockedError.
# sampler's own writers hold it for one row (milliseconds), so waiting 10 s lets two sweeps
# share a log while a lock held longer (another program's open transaction) is soon reported.
BUSY_TIMEOUT_S = 10
LOCKED = (
    "run log {} is locked: another process is writing to it and kept it locked for {} s; "
    "wait for that process to finish, or choose another path"
)
DAMAGED = (
    "run log {} is damaged: {}; it was left as it is: restore it from a copy or choose "
    "another path for the run log"
)
FULL = (
    "the disk holding run log {} is full ({}); free some space or choose a path on another "
    "disk"
)
# Below this much free space an I/O error is taken for a full disk: SQLite reports a WAL
# index (-shm, 32 kB) it cannot allocate as SQLITE_IOERR_SHMSIZE, not SQLITE_FULL.
_NEARLY_FULL_BYTES = 1 << 20
FOREIGN = (
    "database {} holds another application's {}, not a sampler run log; it was left as it "
    "is: choose another path for the run log"
)
# The columns this project's schema_migrations has had since release 0.1.0.
_MIGRATION_COLUMNS = ["name", "applied_at"]
# SQLite's primary result codes (an extended code's low byte is its primary code)
_BUSY, _LOCKED, _FULL, _READONLY, _CORRUPT, _IOERR, _NOTADB = 5, 6, 13, 8, 11, 10, 26


def now() -> datetime:
    """The current UTC time (run ids and migration records use it)."""
    return datetime.now(UTC)


def damaged(path: Path, what: str) -> RunLogDamagedError:
    """The error for a run log whose tables or values are not what sampler writes."""
    return RunLogDamagedError(DAMAGED.format(path, what))


def _free_bytes(folder: Path) -> int:
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return _NEARLY_FULL_BYTES  # unknown: not taken for full


def _refusal(path: Path, error: sqlite3.DatabaseError) -> InvalidInputError | None:
    """The one-line error an SQLite failure means for the user, or ``None`` for a bug."""
    message = str(error).lower()
    code = (getattr(error, "sqlite_errorcode", None) or 0) & 0xFF
    if code in (_BUSY, _LOCKED) or "locked" in message:
        return RunLogLockedError(LOCKED.format(path, BUSY_TIMEOUT_S))
    if code == _FULL or "disk is full" in message:
        return RunLogFullError(FULL.format(path, error))
    if code == _READONLY or "readonly" in message:
        return InvalidInputError(READ_ONLY.format(path))
    if code == _NOTADB or "not a database" in message or "encrypted" in message:
        return InvalidInputError(NOT_SQLITE.format(path))
    if code == _IOERR or "disk i/o" in message:
        if _free_bytes(path.parent) < _NEARLY_FULL_BYTES:
            return RunLogFullError(FULL.format(path, error))
        return damaged(path, str(error))
    if code == _CORRUPT or "malformed" in message:
        return damaged(path, str(error))
    # a table or column dropped by hand: SQLite's own words name it
    for prefix, what in (("no such table: ", "table"), ("no such column: ", "column")):
        if message.startswith(prefix):
            return damaged(path, f"{what} {str(error)[len(prefix):]} is missing")
    return None


@contextlib.contextmanager
def sqlite_errors(path: Path) -> Iterator[None]:
    """Raise the one-line error a user can act on for SQLite and disk failures inside.

    A damaged file, a lock held past :data:`BUSY_TIMEOUT_S` and a full disk (SQLite's
    ``SQLITE_FULL`` or ``ENOSPC``) become :class:`~sampler.errors.RunLogError` subclasses
    naming ``path``; any other failure is a bug and propagates unchanged.
    """
    try:
        yield
    except sqlite3.DatabaseError as exc:
        if (refusal := _refusal(path, exc)) is not None:
            raise refusal from exc
        raise
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise RunLogFullError(FULL.format(path, exc.strerror)) from exc
        raise


def _check_owner(conn: sqlite3.Connection, path: Path) -> None:
    """Refuse a database whose tables are not a run log's (read-only: runs before any write)."""
    tables = [row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    if not tables:
        return  # a new or empty database: the migrations make it a run log
    if "schema_migrations" not in tables:
        shown = ", ".join(sorted(tables)[:4]) + (", ..." if len(tables) > 4 else "")
        raise InvalidInputError(FOREIGN.format(path, f"tables ({shown})"))
    columns = [row[1] for row in conn.execute("PRAGMA table_info(schema_migrations)")]
    if columns != _MIGRATION_COLUMNS:
        raise InvalidInputError(
            FOREIGN.format(path, f"schema_migrations table (columns {', '.join(columns)})")
        )


def check_tables(conn: sqlite3.Connection, path: Path) -> None:
    """Refuse a migrated run log lacking a table or column sampler reads (read-only)."""
    with sqlite_errors(path):
        for table, needed in TABLE_COLUMNS.items():
            columns = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
            if not columns:
                raise damaged(path, f"table {table} is missing")
            if missing := [name for name in needed if name not in columns]:
                raise damaged(path, f"table {table} lacks column {', '.join(missing)}")


def open_connection(path: Path) -> sqlite3.Connection:
    """A connection to the run log ``path``: checked, WAL, foreign keys on (not yet migrated).

    Raises :class:`~sampler.errors.InvalidInputError` for a bad path, a damaged file or a
    database of another application, each left untouched.
    """
    check_database_path(path)
    conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
    conn.row_factory = sqlite3.Row
    try:
        with sqlite_errors(path):
            conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
            _check_owner(conn, path)
            _use_wal(conn, path)
            # a commit per completion: NORMAL skips the fsync per commit; a power cut can lose
            # only the last rows, which resume then redoes
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("PRAGMA foreign_keys = ON")
    except BaseException:
        conn.close()
        raise
    return conn


def _use_wal(conn: sqlite3.Connection, path: Path) -> None:
    # switching a new database to WAL needs an exclusive lock and SQLite answers "locked"
    # at once, without the busy handler, when another process opens it at the same moment
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    while True:
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc).lower():
                raise
            if time.monotonic() > deadline:
                raise
        time.sleep(0.01)


@contextlib.contextmanager
def write_transaction(conn: sqlite3.Connection, path: Path) -> Iterator[sqlite3.Connection]:
    """One short write transaction, committed on success and rolled back on any exception.

    SQLite failures a user can act on are raised as by :func:`sqlite_errors`.
    """
    with sqlite_errors(path):
        # IMMEDIATE takes the write lock up front, so a busy database waits in the busy
        # handler instead of failing at the first write inside a read transaction
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException:
            # SQLite may have rolled back already (a full disk does); a failing ROLLBACK must
            # not hide the error that caused it
            if conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            raise


def _applied(conn: sqlite3.Connection) -> list[str]:
    if not conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'"
    ).fetchone():
        return []
    return [row[0] for row in conn.execute("SELECT name FROM schema_migrations")]


def migrate(conn: sqlite3.Connection, path: Path, migrations: Sequence[tuple[str, str]]) -> None:
    """Apply the ``migrations`` the database lacks, all in one transaction."""
    known = {name for name, _ in migrations}
    with sqlite_errors(path):
        applied = _applied(conn)
    if unknown := [name for name in applied if name not in known]:
        raise InvalidInputError(
            f"database {path} has migration '{unknown[0]}' unknown to this sampler; "
            "upgrade sampler or choose another database path"
        )
    if known <= set(applied):
        return  # the common case takes no write lock
    with write_transaction(conn, path):
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations "
            "(name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)"
        )
        applied = _applied(conn)  # again under the lock: another process may have migrated
        for name, script in migrations:
            if name not in applied:
                for statement in sql_statements(script):
                    conn.execute(statement)
                conn.execute(
                    "INSERT INTO schema_migrations VALUES (?, ?)", (name, now().isoformat())
                )
