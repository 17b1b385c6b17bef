"""The run log: one SQLite database of runs, their completions and every step's statistics.

Each finished completion is written with all its steps in one short transaction, so a run
killed at any moment holds only whole rows and ``resume`` just skips :meth:`RunStore.done_rows`.
The schema changes only by appending named :data:`MIGRATIONS`; opening a database applies the
ones it lacks. Several processes may write to one database at once (WAL, 30 s busy timeout).

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

import contextlib
import json
import secrets
import sqlite3
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sampler.errors import InvalidInputError
from sampler.runlog.paths import NOT_SQLITE, READ_ONLY, check_database_path
from sampler.runlog.schema import (
    COMPLETION_FIELDS,
    CSV_COLUMNS,
    EXPORT_FORMATS,
    MIGRATIONS,
    STEP_STATS,
    insert_rows,
    sql_statements,
    step_dict,
)

__all__ = [
    "CSV_COLUMNS",
    "EXPORT_FORMATS",
    "MIGRATIONS",
    "STEP_STATS",
    "RunStore",
    "default_db_path",
]

BUSY_TIMEOUT_S = 30
_ROWS_DONE = "(SELECT count(*) FROM completions c WHERE c.run_id = r.id) AS rows_done"
_UNKNOWN_RUN = "run '{}' is not in DB; `sampler runs` lists the runs"
_LOCKED = (
    f"database {{}} stayed locked by another process for {BUSY_TIMEOUT_S} s; "
    "wait for it to finish or choose another path"
)


def default_db_path() -> Path:
    """The run log used when no ``--db`` is given: ``runs/sampler.db`` under the working folder."""
    return Path("runs") / "sampler.db"


def _now() -> datetime:
    return datetime.now(UTC)


def _dumps(value: Any) -> str:
    # numpy scalars and arrays reach here from the generator; tolist() makes them plain JSON
    return json.dumps(
        value,
        ensure_ascii=False,
        default=lambda obj: obj.tolist() if hasattr(obj, "tolist") else str(obj),
    )


def _opt(kind: type, value: Any) -> Any:
    return None if value is None else kind(value)


class RunStore:
    """A run log in the SQLite file ``path``, whose folder must exist.

    Bad paths (missing folder, read-only file or folder, a file that is not SQLite, a database
    from a newer sampler) raise :class:`~sampler.errors.InvalidInputError`.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        check_database_path(self.path)
        self._conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        self._conn.row_factory = sqlite3.Row
        try:
            self._conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_S * 1000}")
            self._use_wal()
            # a commit per completion: NORMAL skips the fsync per commit; a power cut can lose
            # only the last rows, which resume then redoes
            self._conn.execute("PRAGMA synchronous = NORMAL")
            self._conn.execute("PRAGMA foreign_keys = ON")
            self._migrate()
        except sqlite3.DatabaseError as exc:
            self._conn.close()
            message = str(exc).lower()
            if "readonly" in message:
                raise InvalidInputError(READ_ONLY.format(self.path)) from exc
            if "not a database" in message or "encrypted" in message:
                raise InvalidInputError(NOT_SQLITE.format(self.path)) from exc
            raise
        except BaseException:
            self._conn.close()
            raise

    @classmethod
    def open_default(cls) -> RunStore:
        """Open :func:`default_db_path`, creating its ``runs/`` folder if needed."""
        path = default_db_path()
        try:
            path.parent.mkdir(exist_ok=True)
        except OSError as exc:
            raise InvalidInputError(
                f"folder {path.parent} for the run log cannot be created "
                f"({exc.strerror}); pass --db PATH instead"
            ) from exc
        return cls(path)

    def close(self) -> None:
        """Close the connection (safe to call twice)."""
        self._conn.close()

    def __enter__(self) -> RunStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _use_wal(self) -> None:
        # switching a new database to WAL needs an exclusive lock and SQLite answers "locked"
        # at once, without the busy handler, when another process opens it at the same moment
        deadline = time.monotonic() + BUSY_TIMEOUT_S
        while True:
            try:
                self._conn.execute("PRAGMA journal_mode = WAL")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc).lower():
                    raise
                if time.monotonic() > deadline:
                    raise InvalidInputError(_LOCKED.format(self.path)) from exc
            time.sleep(0.01)

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        # IMMEDIATE takes the write lock up front, so a busy database waits in the busy handler
        # instead of failing at the first write inside a read transaction
        try:
            self._conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc).lower():
                raise InvalidInputError(_LOCKED.format(self.path)) from exc
            raise
        try:
            yield self._conn
            self._conn.execute("COMMIT")
        except BaseException:
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
            raise

    def _applied(self) -> list[str]:
        if not self._conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'"
        ).fetchone():
            return []
        return [row[0] for row in self._conn.execute("SELECT name FROM schema_migrations")]

    def _migrate(self) -> None:
        known = {name for name, _ in MIGRATIONS}
        applied = self._applied()
        if unknown := [name for name in applied if name not in known]:
            raise InvalidInputError(
                f"database {self.path} has migration '{unknown[0]}' unknown to this sampler; "
                "upgrade sampler or choose another database path"
            )
        if known <= set(applied):
            return  # the common case takes no write lock
        with self._write() as conn:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations "
                "(name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)"
            )
            applied = self._applied()  # again under the lock: another process may have migrated
            for name, script in MIGRATIONS:
                if name not in applied:
                    for statement in sql_statements(script):
                        conn.execute(statement)
                    conn.execute(
                        "INSERT INTO schema_migrations VALUES (?, ?)", (name, _now().isoformat())
                    )

    def create_run(
        self, kind: str, model: str, fingerprint: str, config: dict, versions: dict, total_rows: int
    ) -> str:
        """Record a new run with status ``running``; return its id like ``20261125-130501-3fa2``.

        The id is the UTC start second plus 4 random hex digits: sortable, short to type.
        """
        for _ in range(100):
            now = _now()
            run_id = f"{now:%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"
            try:
                with self._write() as conn:
                    insert_rows(
                        conn,
                        "runs",
                        [
                            {
                                "id": run_id,
                                "created_at": now.isoformat(),
                                "kind": kind,
                                "model": model,
                                "fingerprint": fingerprint,
                                "config": _dumps(config),
                                "versions": _dumps(versions),
                                "total_rows": int(total_rows),
                                "status": "running",
                            }
                        ],
                    )
            except sqlite3.IntegrityError:
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
        if missing := [k for k in (*COMPLETION_FIELDS, "steps") if k not in completion]:
            raise InvalidInputError(
                f"completion {row_index} of run '{run_id}' lacks "
                f"{', '.join(missing)}; give every field"
            )
        c, key = completion, {"run_id": run_id, "row_index": int(row_index)}
        row = (
            key
            | {k: c[k] for k in COMPLETION_FIELDS}
            | {
                "sample": _opt(int, c["sample"]),
                "temperature": _opt(float, c["temperature"]),
                "params": _dumps(c["params"]),
                "token_ids": _dumps([int(t) for t in c["token_ids"]]),
                "prompt_tokens": _opt(int, c["prompt_tokens"]),
                "extra": _dumps(c.get("extra") or {}),
            }
        )
        steps = [
            key
            | {
                "step": index,
                "token": int(s["token"]),
                "base_argmax": _opt(int, s.get("base_argmax")),
            }
            | {
                name: _opt(int if name == "kept_tokens" else float, s.get(name))
                for name in STEP_STATS
            }
            for index, s in enumerate(c["steps"])
        ]
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
        run = dict(
            self._conn.execute(
                f"SELECT *, {_ROWS_DONE} FROM runs r WHERE id = ?", (self.resolve(run_id),)
            ).fetchone()
        )
        return run | {"config": json.loads(run["config"]), "versions": json.loads(run["versions"])}

    def list_runs(self, limit: int = 50) -> list[dict]:
        """The newest ``limit`` runs, newest first, with ``rows_done`` of ``total_rows``."""
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
        return {
            row[0]
            for row in self._conn.execute(
                "SELECT row_index FROM completions WHERE run_id = ?", (self.resolve(run_id),)
            )
        }

    def completions(self, run_id: str, with_steps: bool = True) -> list[dict]:
        """A run's completions by ``row_index``, with the keys given to :meth:`add_completion`.

        Each also has ``row_index``; ``extra`` is ``{}`` when none was given; each step also
        has ``step``, and ``base_argmax`` when it was stored.
        """
        return list(self.iter_completions(self.resolve(run_id), with_steps))

    def iter_completions(self, run_id: str, with_steps: bool) -> Iterator[dict]:
        # a stored completion never changes and came with all its steps in one transaction, so
        # reading its steps by a second query is consistent without a long read transaction
        for row in self._conn.execute(
            "SELECT * FROM completions WHERE run_id = ? ORDER BY row_index", (run_id,)
        ):
            record = {"row_index": row["row_index"]} | {k: row[k] for k in COMPLETION_FIELDS}
            record |= {
                "params": json.loads(row["params"]),
                "token_ids": json.loads(row["token_ids"]),
            }
            if with_steps:
                record["steps"] = [
                    step_dict(step)
                    for step in self._conn.execute(
                        "SELECT * FROM steps WHERE run_id = ? AND row_index = ? ORDER BY step",
                        (run_id, row["row_index"]),
                    )
                ]
            record["extra"] = json.loads(row["extra"]) if row["extra"] else {}
            yield record

    def rows_for_export(self, run_id: str, columns: str) -> Iterator[sqlite3.Row]:
        """Completion and step columns joined, one row a step, in row and step order."""
        return self._conn.execute(
            f"SELECT {columns} FROM completions c JOIN steps s USING (run_id, row_index) "
            "WHERE c.run_id = ? ORDER BY c.row_index, s.step",
            (run_id,),
        )
