"""A run read one page of steps at a time (``sampler serve``'s ``GET /api/runs/RUN``).

A run's steps, in row and step order, are numbered from 0; a page is ``limit`` of them from
``offset``, with the completions they belong to (each carrying only its steps on the page, and
``first_step``, the number of its first one). A run of 256,000 steps was 79 MB in one answer;
a page is at most ``limit`` steps, read with SQLite's index on (run, row, step).

Examples
--------
>>> import pathlib, tempfile
>>> from sampler.runlog.store import STEP_STATS, RunStore
>>> with tempfile.TemporaryDirectory() as tmp, RunStore(pathlib.Path(tmp) / "r.db") as store:
...     run = store.create_run("sweep", "toy", "f00d", {}, {}, 1)
...     steps = [dict.fromkeys(STEP_STATS, 0.5) | {"token": t} for t in (7, 8, 9)]
...     store.add_completion(run, 0, {"prompt": "Hi", "sample": 0, "temperature": 0.7,
...         "mode": "sample", "params": {}, "text": " yo", "token_ids": [7, 8, 9],
...         "finish_reason": "length", "prompt_tokens": 1, "steps": steps})
...     page = run_page(store, run, offset=1, limit=5)
...     page["page"], [s["token"] for s in page["completions"][0]["steps"]]
({'offset': 1, 'limit': 5, 'steps': 3, 'next_offset': None}, [8, 9])
"""

from __future__ import annotations

from typing import Any

from sampler.runlog.codec import decode_completion, decode_step
from sampler.runlog.connection import sqlite_errors

__all__ = ["run_page"]


def run_page(store: Any, run_id: str, offset: int, limit: int) -> dict[str, Any]:
    """``{"run", "completions", "page"}``: steps ``offset .. offset + limit - 1`` of a run.

    ``page`` is ``{"offset", "limit", "steps": the run's step count, "next_offset"}``
    (``next_offset`` is ``None`` on the last page). The first page also carries the completions
    before the first step and the last page those after the last (completions without steps).
    A damaged, locked or full run log raises :class:`~sampler.errors.RunLogError`, as every
    read of :class:`~sampler.runlog.store.RunStore` does.
    """
    run = store.get_run(run_id)
    conn = store._conn  # the store's connection: this module is the run log's own
    with sqlite_errors(store.path):
        total = conn.execute(
            "SELECT count(*) FROM steps WHERE run_id = ?", (run["id"],)
        ).fetchone()[0]
        rows = conn.execute(
            "SELECT * FROM steps WHERE run_id = ? ORDER BY row_index, step LIMIT ? OFFSET ?",
            (run["id"], limit, offset),
        ).fetchall()
        last_page = offset + len(rows) >= total
        if rows:
            first = 0 if offset == 0 else rows[0]["row_index"]
            stop = 2**63 - 1 if last_page else rows[-1]["row_index"] + 1
        else:  # past the end, or a run without steps (its first rows then)
            first, stop = (0, limit) if offset == 0 else (0, 0)
        by_row: dict[int, list[dict]] = {}
        for row in rows:
            by_row.setdefault(row["row_index"], []).append(decode_step(store.path, row))
        completions = []
        for row in conn.execute(
            "SELECT * FROM completions WHERE run_id = ? AND row_index >= ? AND row_index < ? "
            "ORDER BY row_index",
            (run["id"], first, stop),
        ):
            record = decode_completion(store.path, row)
            steps = by_row.get(row["row_index"], [])
            first_step = steps[0]["step"] if steps else None
            extra = record.pop("extra")  # last, as RunStore.completions gives it
            completions.append(record | {"steps": steps, "first_step": first_step, "extra": extra})
    page = {
        "offset": offset,
        "limit": limit,
        "steps": total,
        "next_offset": None if last_page else offset + len(rows),
    }
    return {"run": run, "completions": completions, "page": page}
