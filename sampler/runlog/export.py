"""Writing a logged run out: JSONL (one completion a line) or CSV (one step a line)."""

from __future__ import annotations

import csv
import math
import sqlite3
from pathlib import Path
from typing import TextIO

from sampler.errors import InvalidInputError
from sampler.json_values import to_json
from sampler.runlog.codec import decode_extra_and_rewinds
from sampler.runlog.connection import damaged
from sampler.runlog.schema import CSV_COLUMNS, CSV_OF_COMPLETION, CSV_OF_STEP, EXPORT_FORMATS
from sampler.runlog.store import RunStore

__all__ = ["export_run"]


def export_run(store: RunStore, run_id: str, fmt: str, stream: TextIO) -> int:
    """Write run ``run_id`` (an id, a unique prefix or ``latest``) to ``stream``.

    Returns the number of records written.

    ``jsonl``: one completion a line, steps included, and ``logprobs`` when the run recorded
    them (``generate --logprobs``; the same object ``generate --json`` printed), ``rewinds``
    when phrases were banned. ``csv``: a header, then one line a step
    (:data:`~sampler.runlog.schema.CSV_COLUMNS`): the row's columns, the step's, then the row's
    rewind count and dropped tokens and the step token's raw and processed log-probabilities,
    each empty where the run did not record it (every run logged before these existed).
    """
    if fmt not in EXPORT_FORMATS:
        raise InvalidInputError(
            f"export format '{fmt}' is unknown; use one of {', '.join(EXPORT_FORMATS)}"
        )
    run_id = store.resolve(run_id)
    count = 0
    if fmt == "jsonl":
        for record in store.iter_completions(run_id, with_steps=True):
            if "logprobs" in record["extra"]:  # recorded by generate --logprobs: as it printed
                record = record | {"logprobs": record["extra"]["logprobs"]}
                record["extra"] = {k: v for k, v in record["extra"].items() if k != "logprobs"}
            # to_json: a temperature of inf is null, as in every --json (JSON has no Infinity)
            stream.write(to_json({"run_id": run_id} | record, ensure_ascii=False) + "\n")
            count += 1
        return count
    writer = csv.writer(stream, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for completion, steps in store.rows_for_export(run_id, CSV_OF_COMPLETION, CSV_OF_STEP):
        extra, rewinds = decode_extra_and_rewinds(store.path, completion)
        counts = (
            (None, None)
            if rewinds is None
            else (len(rewinds), sum(rewind["dropped"] for rewind in rewinds))
        )
        entries = _logprob_entries(store.path, completion, extra)
        fixed = tuple(completion[name] for name in CSV_OF_COMPLETION)
        for step in steps:
            entry = entries[step["step"]] if step["step"] < len(entries) else {}
            logprobs = (_logprob(entry, "raw_logprob"), _logprob(entry, "processed_logprob"))
            writer.writerow((*fixed, *step, *counts, *logprobs))
            count += 1
    return count


def _logprob_entries(path: Path, completion: sqlite3.Row, extra: dict) -> list[dict]:
    """The row's ``logprobs`` entries, one a step (none: recorded without --logprobs)."""
    logprobs = extra.get("logprobs", {"content": []})
    entries = logprobs.get("content") if isinstance(logprobs, dict) else None
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        where = f"row {completion['row_index']} of run {completion['run_id']}"
        raise damaged(path, f"{where}: extra's logprobs content is not a list of entries")
    return entries


def _logprob(entry: dict, name: str) -> float | None:
    """``entry[name]``; a recorded ``null`` is −inf (JSON has no Infinity), so CSV says -inf."""
    if name not in entry:
        return None
    return -math.inf if entry[name] is None else entry[name]
