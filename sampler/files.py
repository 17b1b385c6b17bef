"""Writing output files safely: atomically, with ordinary permissions, or a one-line error."""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from sampler.errors import InvalidInputError

__all__ = [
    "atomic_writer",
    "check_writable_folder",
    "make_folder",
    "read_lines",
    "read_only",
    "safe_file_name",
]


def safe_file_name(name: str, fallback: str = "run") -> str:
    """``name`` as one file name that stays in the folder it is joined to.

    Only letters, digits, ``-`` and ``_`` are kept, every other run of characters becomes one
    ``_`` (so no ``/``, no ``..``, nothing absolute), and it is at most 100 characters: a run id
    read from a run log someone else wrote cannot place a report outside its folder.

    >>> safe_file_name("20261125-130501-3fa2"), safe_file_name("../../escaped-report")
    ('20261125-130501-3fa2', 'escaped-report')
    >>> safe_file_name("/etc/passwd"), safe_file_name("..")
    ('etc_passwd', 'run')
    """
    safe = re.sub(r"[^A-Za-z0-9_-]+", "_", name).strip("_")[:100]
    return safe or fallback


def read_lines(path: str | os.PathLike[str], what: str) -> list[str]:
    """The lines of UTF-8 text file ``path`` (line ends removed), or a one-line error
    ``cannot read {what} 'path': reason``."""
    file = Path(path)
    try:
        return file.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        reason = getattr(error, "strerror", None) or "not UTF-8 text"
        raise InvalidInputError(f"cannot read {what} {str(file)!r}: {reason}") from None


def read_only(path: Path) -> bool:
    """Whether ``path`` cannot or should not be written: no access, or no write bit at all.

    Root ignores permission bits, so ``os.access`` alone says "writable"; the bits decide too,
    so a folder made read-only is refused for every user alike.
    """
    return not os.access(path, os.W_OK) or (path.stat().st_mode & 0o222) == 0


def check_writable_folder(folder: str | os.PathLike[str]) -> None:
    """Refuse, in one line, a folder that cannot take new files (or its nearest existing parent).

    A folder that does not exist yet is judged by the nearest folder above it that does, where
    it would be created.
    """
    target = Path(folder)
    existing = target
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if existing.is_dir() and read_only(existing):
        raise InvalidInputError(
            f"folder {str(existing)!r} is not writable: make it writable (chmod u+w) or "
            f"choose another place than {str(target)!r}"
        )


def make_folder(folder: Path, what: str) -> None:
    """Create ``folder`` and its missing parents; a failure is one line naming ``what`` folder
    it was (``"report"``, ``"export"``) and the system's reason."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise InvalidInputError(
            f"cannot create {what} folder {str(folder)!r}: {error.strerror}"
        ) from None


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


@contextmanager
def atomic_writer(path: str | os.PathLike[str]) -> Iterator[BinaryIO]:
    """Open a temporary file beside ``path`` and move it into place only on success.

    A crash or an exception while writing leaves any existing file at ``path`` untouched.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> target = pathlib.Path(tempfile.mkdtemp()) / "note.txt"
    >>> with atomic_writer(target) as stream:
    ...     _ = stream.write(b"hello")
    >>> target.read_text()
    'hello'
    """
    target = Path(path)
    check_writable_folder(target.parent)
    try:
        handle, temporary = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    except OSError as error:
        raise _unwritable(target, error) from None
    try:
        with os.fdopen(handle, "wb") as stream:
            yield stream
        # mkstemp makes the file private (0600); a report should get the user's usual mode.
        os.chmod(temporary, 0o666 & ~_umask())
        os.replace(temporary, target)
    except OSError as error:
        Path(temporary).unlink(missing_ok=True)
        raise _unwritable(target, error) from None
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _unwritable(target: Path, error: OSError) -> InvalidInputError:
    reason = error.strerror or str(error)
    return InvalidInputError(
        f"cannot write {str(target)!r}: {reason}; choose a writable folder (nothing was written)"
    )
