"""What a run-log path must satisfy before SQLite opens it, each failure one clear line."""

from __future__ import annotations

from pathlib import Path

from sampler.errors import InvalidInputError
from sampler.files import read_only

__all__ = ["NOT_SQLITE", "READ_ONLY", "check_database_path"]

SQLITE_MAGIC = b"SQLite format 3\x00"
READ_ONLY = "database {} is read-only; make it writable (chmod u+w) or choose another path"
NOT_SQLITE = "database {} is not a SQLite database; choose another path for the run log"


def check_database_path(path: Path) -> None:
    """Refuse a missing folder, a read-only file or folder, a device, or a non-SQLite file."""
    folder = path.parent
    if not folder.is_dir():
        raise InvalidInputError(
            f"folder {folder} for database {path} does not exist; "
            "create it or choose another database path"
        )
    if path.exists():
        if not path.is_file() and not path.is_dir():  # a folder "cannot be read", below
            # /dev/null, a pipe or a socket: SQLite would fail on it at its first write
            raise InvalidInputError(
                f"database {path} is not a regular file; give the path of a run log file "
                "(a new one is created)"
            )
        if read_only(path):
            raise InvalidInputError(READ_ONLY.format(path))
        try:
            with path.open("rb") as file:
                head = file.read(len(SQLITE_MAGIC))
        except OSError as exc:
            raise InvalidInputError(
                f"database {path} cannot be read ({exc.strerror}); give a readable database file"
            ) from exc
        if head and head != SQLITE_MAGIC:
            raise InvalidInputError(NOT_SQLITE.format(path))
    if read_only(folder):
        raise InvalidInputError(
            f"database {path} is read-only: its folder {folder} is not writable and "
            "SQLite keeps its WAL files there; make the folder writable or choose another path"
        )
