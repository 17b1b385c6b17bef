"""Opening a run log: whose database it is, its connection settings, migrations, write locks.

A database is set up (WAL, migrations) only once it is known to be a run log or empty; a file
that is damaged or belongs to another application is refused before anything is written to
it, so refusing it leaves it exactly as it was.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

from sampler.errors import InvalidInputError
from sampler.runlog.paths import NOT_SQLITE, READ_ONLY, check_database_path
from sampler.runlog.schema import sql_statements

__all__ = ["BUSY_TIMEOUT_S", "migrate", "now", "open_connection", "write_transaction"]

BUSY_TIMEOUT_S = 30
LOCKED = (
    f"database {{}} stayed locked by another process for {BUSY_TIMEOUT_S} s; "
    "wait for it to finish or choose another path"
)
DAMAGED = (
    "database {} is damaged ({}); it was left as it is: restore it from a copy or choose "
    "another path for the run log"
)
FOREIGN = (
    "database {} holds another application's {}, not a sampler run log; it was left as it "
    "is: choose another path for the run log"
)
# The columns this project's schema_migrations has had since release 0.1.0.
_MIGRATION_COLUMNS = ["name", "applied_at"]


def now() -> datetime:
    """The current UTC time (run ids and migration records use it)."""
    return datetime.now(UTC)


def _refusal(path: Path, error: sqlite3.DatabaseError) -> InvalidInputError | None:
    """The one-line error an SQLite failure means for the user, or ``None`` for a bug."""
    message = str(error).lower()
    if "readonly" in message:
        return InvalidInputError(READ_ONLY.format(path))
    if "not a database" in message or "encrypted" in message:
        return InvalidInputError(NOT_SQLITE.format(path))
    if "malformed" in message or "disk i/o" in message or "corrupt" in message:
        return InvalidInputError(DAMAGED.format(path, str(error)))
    return None


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


def open_connection(path: Path) -> sqlite3.Connection:
    """A connection to the run log ``path``: checked, WAL, foreign keys on (not yet migrated).

    Raises :class:`~sampler.errors.InvalidInputError` for a bad path, a damaged file or a
    database of another application, each left untouched.
    """
    check_database_path(path)
    conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
    conn.row_factory = sqlite3.Row
    try:
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_S * 1000}")
        _check_owner(conn, path)
        _use_wal(conn, path)
        # a commit per completion: NORMAL skips the fsync per commit; a power cut can lose
        # only the last rows, which resume then redoes
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA foreign_keys = ON")
    except sqlite3.DatabaseError as exc:
        conn.close()
        if (refusal := _refusal(path, exc)) is not None:
            raise refusal from exc
        raise
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
                raise InvalidInputError(LOCKED.format(path)) from exc
        time.sleep(0.01)


@contextlib.contextmanager
def write_transaction(conn: sqlite3.Connection, path: Path) -> Iterator[sqlite3.Connection]:
    """One short write transaction, committed on success and rolled back on any exception."""
    # IMMEDIATE takes the write lock up front, so a busy database waits in the busy handler
    # instead of failing at the first write inside a read transaction
    try:
        conn.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as exc:
        if "locked" in str(exc).lower():
            raise InvalidInputError(LOCKED.format(path)) from exc
        raise
    try:
        yield conn
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
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
    applied = _applied(conn)
    if unknown := [name for name in applied if name not in known]:
        raise InvalidInputError(
            f"database {path} has migration '{unknown[0]}' unknown to this sampler; "
            "upgrade sampler or choose another database path"
        )
    if known <= set(applied):
        return  # the common case takes no write lock
    try:
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
    except sqlite3.DatabaseError as exc:
        if (refusal := _refusal(path, exc)) is not None:
            raise refusal from exc
        raise
