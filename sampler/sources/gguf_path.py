"""Checking a local ``.gguf`` path before llama.cpp reads it: one line saying what is wrong."""

from __future__ import annotations

import errno
import stat
from pathlib import Path

from sampler.errors import InvalidInputError

__all__ = ["check_gguf_file"]

_FILE_KINDS = {
    stat.S_IFDIR: "a folder",
    stat.S_IFIFO: "a FIFO (named pipe)",
    stat.S_IFSOCK: "a socket",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
}


def check_gguf_file(path: Path) -> None:
    """Refuse, in one line, a path that is not a readable GGUF file, saying what it is instead
    (missing, a folder, a FIFO, a symlink loop, unreadable), before llama.cpp reads it.

    A FIFO or a device is refused from its type alone: opening a FIFO would wait for a writer.
    """
    shown = str(path)
    try:
        mode = path.stat().st_mode
    except OSError as error:
        if error.errno == errno.ENOENT and path.is_symlink():
            raise InvalidInputError(
                f"GGUF path {shown!r} is a symbolic link to {str(path.readlink())!r}, which "
                "does not exist"
            ) from None
        if error.errno == errno.ENOENT:
            raise InvalidInputError(f"GGUF file {shown!r} does not exist") from None
        if error.errno == errno.ELOOP:
            raise InvalidInputError(
                f"GGUF path {shown!r} is a loop of symbolic links: point it at a .gguf file"
            ) from None
        raise InvalidInputError(
            f"cannot read GGUF file {shown!r}: {error.strerror or error}"
        ) from None
    if not stat.S_ISREG(mode):
        kind = _FILE_KINDS.get(stat.S_IFMT(mode), "not a regular file")
        raise InvalidInputError(f"GGUF path {shown!r} is {kind}: give a .gguf file")
    try:
        with path.open("rb") as stream:
            magic = stream.read(4)
    except OSError as error:
        raise InvalidInputError(
            f"cannot read GGUF file {shown!r}: {error.strerror or error} (check its permissions)"
        ) from None
    if magic != b"GGUF":
        raise InvalidInputError(f"{str(path)!r} is not a GGUF file (it does not start with GGUF)")
