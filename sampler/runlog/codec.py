"""Runs and completions as the run log's table rows, and back, refusing damaged stored values.

Writing turns numpy values into plain JSON and NaN into NULL; reading checks that each stored
value is what writing makes (a JSON object for a config, a list of integers for token ids),
so a file changed by hand fails as one line naming the run log and the value, not later as a
traceback in whatever reads it.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from sampler.engine.stats import TELEMETRY
from sampler.errors import InvalidInputError
from sampler.runlog.connection import damaged
from sampler.runlog.schema import COMPLETION_FIELDS, STEP_STATS

__all__ = [
    "completion_rows",
    "decode_completion",
    "decode_extra_and_rewinds",
    "decode_run",
    "decode_step",
    "dumps",
]


def dumps(value: Any) -> str:
    """``value`` as JSON text; numpy scalars and arrays become plain numbers and lists."""
    return json.dumps(
        value,
        ensure_ascii=False,
        default=lambda obj: obj.tolist() if hasattr(obj, "tolist") else str(obj),
    )


def _opt(kind: type, value: Any) -> Any:
    return None if value is None else kind(value)


def completion_rows(run_id: str, row_index: int, completion: dict) -> tuple[dict, list[dict]]:
    """The ``completions`` row and the ``steps`` rows that store ``completion``.

    Steps are numbered by their position; a stat missing from a step is stored as NULL and so
    is NaN (SQLite has no NaN).
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
            "params": dumps(c["params"]),
            "token_ids": dumps([int(t) for t in c["token_ids"]]),
            "prompt_tokens": _opt(int, c["prompt_tokens"]),
            "extra": dumps(c.get("extra") or {}),
            "rewinds": None if c.get("rewinds") is None else dumps(c["rewinds"]),
        }
    )
    steps = [
        key
        | {"step": index, "token": int(s["token"]), "base_argmax": _opt(int, s.get("base_argmax"))}
        | {name: _opt(int if name == "kept_tokens" else float, s.get(name)) for name in STEP_STATS}
        for index, s in enumerate(c["steps"])
    ]
    return row, steps


def _json(path: Path, text: Any, what: str, kind: type) -> Any:
    """Stored JSON ``text`` decoded, which must be a ``kind`` (dict or list)."""
    try:
        value = json.loads(text)
    except (TypeError, ValueError):  # NULL, a number column, text that is not JSON
        shown = "NULL" if text is None else repr(str(text)[:40])
        raise damaged(path, f"{what} is {shown}, not JSON") from None
    if not isinstance(value, kind):
        raise damaged(path, f"{what} is {json.dumps(value)[:40]}, not a JSON {kind.__name__}")
    return value


def decode_run(path: Path, row: sqlite3.Row) -> dict:
    """A stored run's fields, its ``config`` and ``versions`` decoded (JSON objects)."""
    run = dict(row)
    where = f"run {run['id']}'s"
    return run | {
        "config": _json(path, run["config"], f"{where} config", dict),
        "versions": _json(path, run["versions"], f"{where} versions", dict),
    }


def decode_completion(path: Path, row: sqlite3.Row) -> dict:
    """A stored completion (no steps) with the keys it was given, ``row_index`` and ``extra``."""
    where = f"row {row['row_index']} of run {row['run_id']}:"
    token_ids = _json(path, row["token_ids"], f"{where} token_ids", list)
    if not all(isinstance(token, int) for token in token_ids):
        raise damaged(path, f"{where} token_ids {json.dumps(token_ids)[:40]} are not all integers")
    record = {"row_index": row["row_index"]} | {k: row[k] for k in COMPLETION_FIELDS}
    record |= {
        "params": _json(path, row["params"], f"{where} params", dict),
        "token_ids": token_ids,
    }
    extra, rewinds = decode_extra_and_rewinds(path, row)
    record["extra"] = extra
    if rewinds is not None:
        record["rewinds"] = rewinds
    return record


def decode_extra_and_rewinds(path: Path, row: sqlite3.Row) -> tuple[dict, list[dict] | None]:
    """A stored completion's ``extra`` (``{}`` when none) and ``rewinds`` (``None``: no phrase
    was banned, or the row was logged before migration 009)."""
    where = f"row {row['row_index']} of run {row['run_id']}:"
    extra = _json(path, row["extra"], f"{where} extra", dict) if row["extra"] else {}
    if row["rewinds"] is None:
        return extra, None
    rewinds = _json(path, row["rewinds"], f"{where} rewinds", list)
    if not all(isinstance(r, dict) and type(r.get("dropped")) is int for r in rewinds):
        raise damaged(path, f"{where} rewinds {json.dumps(rewinds)[:40]} are not all rewinds")
    return extra, rewinds


def decode_step(path: Path, row: sqlite3.Row) -> dict:
    """One stored step; optional columns (base_argmax, a stage's telemetry) only when set."""
    if not isinstance(row["token"], int):
        where = f"step {row['step']} of row {row['row_index']} of run {row['run_id']}"
        raise damaged(path, f"{where} has token {row['token']!r}, not a token id")
    step = {"step": row["step"], "token": row["token"]}
    step |= {k: row[k] for k in STEP_STATS if k not in TELEMETRY or row[k] is not None}
    if row["base_argmax"] is not None:
        step["base_argmax"] = row["base_argmax"]
    return step
