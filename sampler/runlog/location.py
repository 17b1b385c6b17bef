"""Where the run log is: ``--db``, else ``$SAMPLER_DB``, else one log per user.

The per-user log is ``$XDG_DATA_HOME/sampler/sampler.db`` (``~/.local/share/sampler/sampler.db``
when ``XDG_DATA_HOME`` is not set), so ``sampler runs`` shows the same runs from any folder and
no command leaves a ``runs/`` folder wherever it happens to be run. Commands that only read
(``runs``, ``export``, ``report``, ``--run`` of ``analyze`` and ``divergence``, ``sweep
--resume``) never create a log: a missing one is an error naming the path.

>>> str(run_log_path("mine.db"))
'mine.db'
"""

from __future__ import annotations

import os
from pathlib import Path

from sampler.errors import InvalidInputError

__all__ = ["FOLDER_LOG", "default_db_path", "prepare_run_log", "run_log_path"]

# Where sampler logged before the per-user default: a user's old runs may still be there.
FOLDER_LOG = Path("runs") / "sampler.db"


def default_db_path() -> Path:
    """The run log used when no ``--db`` is given: ``$SAMPLER_DB`` when set, else
    ``$XDG_DATA_HOME/sampler/sampler.db`` (``~/.local/share/sampler/sampler.db``)."""
    named = os.environ.get("SAMPLER_DB")
    if named:
        return Path(named).expanduser()
    data = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(data).expanduser() / "sampler" / "sampler.db"


def run_log_path(db: str | os.PathLike[str] | None) -> Path:
    """The run log a command uses: ``db`` (its ``--db``) when given, else the default."""
    return Path(db) if db else default_db_path()


def prepare_run_log(db: str | os.PathLike[str] | None, create: bool) -> Path:
    """The path of the run log ``db`` (``None``: the default), ready for ``RunStore`` to open.

    Parameters
    ----------
    db
        The path the user gave, or ``None`` for :func:`default_db_path`.
    create
        Whether a log that does not exist is made (commands that record runs). The per-user
        default's folders are made as needed; a ``--db`` or ``$SAMPLER_DB`` file's folder
        must exist (or, for ``$SAMPLER_DB``, only its last folder is made). Without
        ``create``, a missing log raises :class:`~sampler.errors.InvalidInputError` and
        nothing is made.
    """
    path = run_log_path(db)
    if not create and not path.exists():
        raise InvalidInputError(_missing_message(path, db))
    if db:
        return path
    per_user = not os.environ.get("SAMPLER_DB")
    try:
        path.parent.mkdir(parents=per_user, exist_ok=True)
    except OSError as exc:
        raise InvalidInputError(
            f"folder {path.parent} for the run log cannot be created ({exc.strerror}); pass "
            "--db PATH or set SAMPLER_DB to a file in a folder that exists"
        ) from exc
    return path


def _missing_message(path: Path, db: object) -> str:
    where = "" if db else " (the default: --db PATH or SAMPLER_DB choose another)"
    message = f"no run log at {path}{where}: generate, compare and sweep record runs there"
    if not db and FOLDER_LOG.is_file() and FOLDER_LOG.resolve() != path.resolve():
        message += f"; this folder has {FOLDER_LOG}, the old default: pass --db {FOLDER_LOG}"
    return message
