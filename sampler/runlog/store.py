"""The run log: one SQLite database of runs, their completions and every step's statistics.

Each finished completion is written with all its steps in one short transaction, so a run
killed at any moment holds only whole rows and ``resume`` just skips :meth:`RunStore.done_rows`;
a run saved whole (:meth:`RunStore.add_run`) is one transaction, stored entirely or not at all.
The schema changes only by appending named :data:`MIGRATIONS`; opening a database applies the
ones it lacks. Several processes may write to one database at once (WAL, a 10 s busy timeout).

>>> import pathlib, tempfile
>>> with tempfile.TemporaryDirectory() as tmp, RunStore(pathlib.Path(tmp) / "r.db") as store:
...     run = store.create_run("sweep", "toy", "f00d", {"seed": 0}, {"sampler": "0.1"}, 1)
...     step = dict.fromkeys(STEP_STATS, 0.5) | {"token": 7}
...     store.add_completion(run, 0, {"prompt": "Hi", "sample": 0, "temperature": 0.7,
...         "mode": "sample", "params": {"top_k": 5}, "text": " yo", "token_ids": [7],
...         "finish_reason": "length", "prompt_tokens": 1, "steps": [step]})
...     store.finish_run(run)
...     print(store.get_run("latest")["status"], store.done_rows(run))
complete {0}
"""

from __future__ import annotations

import secrets
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from pathlib import Path

from sampler.errors import InvalidInputError
from sampler.runlog.codec import (
    completion_rows,
    decode_completion,
    decode_run,
    decode_step,
    dumps,
)
from sampler.runlog.connection import (
    check_tables,
    migrate,
    now,
    open_connection,
    sqlite_errors,
    write_transaction,
)
from sampler.runlog.location import default_db_path, prepare_run_log
from sampler.runlog.schema import CSV_COLUMNS, EXPORT_FORMATS, MIGRATIONS, STEP_STATS, insert_rows

__all__ = [
    "CSV_COLUMNS",
    "EXPORT_FORMATS",
    "MIGRATIONS",
    "STEP_STATS",
    "RunStore",
    "default_db_path",
    "open_run_log",
]

_ROWS_DONE = "(SELECT count(*) FROM completions c WHERE c.run_id = r.id) AS rows_done"
_UNKNOWN_RUN = "run '{}' is not in DB; `sampler runs` lists the runs"


def open_run_log(db: str | Path | None, create: bool) -> RunStore:
    """The run log ``db`` (``None``: the default), as
    :func:`~sampler.runlog.location.prepare_run_log` finds or refuses it."""
    return RunStore(prepare_run_log(db, create))


class RunStore:
    """A run log in the SQLite file ``path``, whose folder must exist.

    Bad paths (missing folder, read-only file or folder, a file that is not SQLite, a damaged
    database, another application's database, one from a newer sampler) raise
    :class:`~sampler.errors.InvalidInputError` and leave the file as it was. A damaged file
    (also: a table or column dropped, a stored value that is not what sampler writes), a lock
    another process holds too long and a full disk raise the
    :class:`~sampler.errors.RunLogError` subclasses, from any method.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._conn = open_connection(self.path)
        try:
            # looked up here, not in connection.py, so a test can add a future migration
            migrate(self._conn, self.path, MIGRATIONS)
            check_tables(self._conn, self.path)
        except BaseException:
            self._conn.close()
            raise

    @classmethod
    def open_default(cls) -> RunStore:
        """Open :func:`~sampler.runlog.location.default_db_path`, made if needed."""
        return cls(prepare_run_log(None, create=True))

    def close(self) -> None:
        """Close the connection (safe to call twice)."""
        self._conn.close()

    def __enter__(self) -> RunStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _write(self) -> AbstractContextManager[sqlite3.Connection]:
        return write_transaction(self._conn, self.path)

    def _read(self) -> AbstractContextManager[None]:
        return sqlite_errors(self.path)

    def create_run(
        self, kind: str, model: str, fingerprint: str, config: dict, versions: dict, total_rows: int
    ) -> str:
        """Record a new run with status ``running``; return its id like ``20261125-130501-3fa2``.

        The id is the UTC start second plus 4 random hex digits: sortable, short to type.
        """
        run = {"kind": kind, "model": model, "fingerprint": fingerprint, "config": config}
        return self._insert_run(run | {"versions": versions, "total_rows": total_rows})

    def add_run(
        self,
        kind: str,
        model: str,
        fingerprint: str,
        config: dict,
        versions: dict,
        completions: Sequence[dict],
    ) -> str:
        """Record a whole run, ``complete``, with ``completions`` as rows 0, 1, ...; return its id.

        One transaction: on any error (a full disk, a bad completion) nothing of the run is
        stored.
        """
        run = {"kind": kind, "model": model, "fingerprint": fingerprint, "config": config}
        run |= {"versions": versions, "total_rows": len(completions), "status": "complete"}
        return self._insert_run(run, completions)

    def _insert_run(self, run: dict, completions: Sequence[dict] = ()) -> str:
        for _ in range(100):
            started = now()
            run_id = f"{started:%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"
            # built before the transaction: a completion lacking a field fails with no lock
            rows = [completion_rows(run_id, i, c) for i, c in enumerate(completions)]
            fields = run | {
                "id": run_id,
                "created_at": started.isoformat(),
                "config": dumps(run["config"]),
                "versions": dumps(run["versions"]),
                "total_rows": int(run["total_rows"]),
                "status": run.get("status", "running"),
            }
            try:
                with self._write() as conn:
                    insert_rows(conn, "runs", [fields])
                    for row, steps in rows:
                        if insert_rows(conn, "completions", [row]) and steps:
                            insert_rows(conn, "steps", steps)
            except sqlite3.IntegrityError as exc:
                if "runs.id" not in str(exc):
                    raise
                continue  # the same id was drawn in the same second: draw again
            return run_id
        raise RuntimeError("no free run id after 100 draws")

    def add_completion(self, run_id: str, row_index: int, completion: dict) -> None:
        """Store one completion and all its steps in one transaction.

        A ``(run_id, row_index)`` already stored is left as it is and the new one ignored
        (``INSERT OR IGNORE`` for the whole completion), so a resumed run never duplicates rows.
        Steps are numbered by their position; a stat missing from a step is stored as NULL and
        so is NaN (SQLite has no NaN).
        """
        row, steps = completion_rows(run_id, row_index, completion)
        try:
            with self._write() as conn:
                if insert_rows(conn, "completions", [row], "INSERT OR IGNORE") and steps:
                    insert_rows(conn, "steps", steps)
        except sqlite3.IntegrityError as exc:
            if "FOREIGN KEY" not in str(exc):
                raise
            raise InvalidInputError(_UNKNOWN_RUN.format(run_id)) from exc

    def finish_run(self, run_id: str) -> None:
        """Mark a run ``complete``."""
        with self._write() as conn:
            if not conn.execute(
                "UPDATE runs SET status = 'complete' WHERE id = ?", (run_id,)
            ).rowcount:
                raise InvalidInputError(_UNKNOWN_RUN.format(run_id))

    def resolve(self, run_id: str) -> str:
        """The full id of ``run_id``: an id, a unique prefix of one, or ``latest``."""
        with self._read():
            return self._resolve(run_id)

    def _resolve(self, run_id: str) -> str:
        if run_id == "latest":
            row = self._conn.execute(
                "SELECT id FROM runs ORDER BY created_at DESC, rowid DESC LIMIT 1"
            ).fetchone()
            if row is None:
                raise InvalidInputError(
                    f"run 'latest' is not in DB: {self.path} has no runs yet; "
                    "`sampler sweep` makes one"
                )
            return row[0]
        if self._conn.execute("SELECT 1 FROM runs WHERE id = ?", (run_id,)).fetchone():
            return run_id
        ids = (
            [
                row[0]
                for row in self._conn.execute(
                    "SELECT id FROM runs WHERE substr(id, 1, ?) = ? ORDER BY id LIMIT 4",
                    (len(run_id), run_id),
                )
            ]
            if run_id
            else []
        )
        if len(ids) == 1:
            return ids[0]
        if ids:
            raise InvalidInputError(
                f"run '{run_id}' is ambiguous (it starts {', '.join(ids[:3])}"
                f"{', ...' if len(ids) > 3 else ''}); type more of the id"
            )
        raise InvalidInputError(_UNKNOWN_RUN.format(run_id))

    def get_run(self, run_id: str) -> dict:
        """A run's fields (``config`` and ``versions`` decoded) and ``rows_done``."""
        with self._read():
            row = self._conn.execute(
                f"SELECT *, {_ROWS_DONE} FROM runs r WHERE id = ?", (self._resolve(run_id),)
            ).fetchone()
        return decode_run(self.path, row)

    def list_runs(self, limit: int = 50) -> list[dict]:
        """The newest ``limit`` runs, newest first, with ``rows_done`` of ``total_rows``."""
        with self._read():
            return [
                dict(row)
                for row in self._conn.execute(
                    f"SELECT id, created_at, kind, model, status, total_rows, {_ROWS_DONE} "
                    "FROM runs r ORDER BY created_at DESC, rowid DESC LIMIT ?",
                    (max(int(limit), 0),),
                )
            ]

    def done_rows(self, run_id: str) -> set[int]:
        """Row indices already stored for a run."""
        with self._read():
            return {
                row[0]
                for row in self._conn.execute(
                    "SELECT row_index FROM completions WHERE run_id = ?", (self._resolve(run_id),)
                )
            }

    def completions(self, run_id: str, with_steps: bool = True) -> list[dict]:
        """A run's completions by ``row_index``, with the keys given to :meth:`add_completion`.

        Each also has ``row_index``; ``extra`` is ``{}`` when none was given; each step also
        has ``step``, and ``base_argmax`` when it was stored.
        """
        return list(self.iter_completions(self.resolve(run_id), with_steps))

    def iter_completions(self, run_id: str, with_steps: bool) -> Iterator[dict]:
        """:meth:`completions` of the full id ``run_id``, one at a time (never all in memory)."""
        # a stored completion never changes and came with all its steps in one transaction, so
        # reading its steps by a second query is consistent without a long read transaction
        with self._read():
            for row in self._conn.execute(
                "SELECT * FROM completions WHERE run_id = ? ORDER BY row_index", (run_id,)
            ):
                record = decode_completion(self.path, row)
                extra = record.pop("extra")  # last, after the steps, as it was given
                if with_steps:
                    record["steps"] = [
                        decode_step(self.path, step)
                        for step in self._conn.execute(
                            "SELECT * FROM steps WHERE run_id = ? AND row_index = ? ORDER BY step",
                            (run_id, row["row_index"]),
                        )
                    ]
                yield record | {"extra": extra}

    def rows_for_export(
        self, run_id: str, completion_columns: Sequence[str], step_columns: Sequence[str]
    ) -> Iterator[tuple[sqlite3.Row, list[sqlite3.Row]]]:
        """Each completion with steps (``completion_columns``, ``extra``, ``rewinds``) and its
        steps' ``step_columns``, in row and step order, one completion at a time."""
        wanted = ", ".join(dict.fromkeys([*completion_columns, "extra", "rewinds"]))
        with self._read():  # consistent without a long read transaction: see iter_completions
            for row in self._conn.execute(
                f"SELECT {wanted} FROM completions WHERE run_id = ? ORDER BY row_index", (run_id,)
            ):
                steps = self._conn.execute(
                    f"SELECT {', '.join(step_columns)} FROM steps "
                    "WHERE run_id = ? AND row_index = ? ORDER BY step",
                    (run_id, row["row_index"]),
                ).fetchall()
                if steps:
                    yield row, steps
