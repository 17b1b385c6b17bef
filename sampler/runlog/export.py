"""Writing a logged run out: JSONL (one completion a line) or CSV (one step a line)."""

from __future__ import annotations

import csv
from typing import TextIO

from sampler.errors import InvalidInputError
from sampler.json_values import to_json
from sampler.runlog.schema import CSV_COLUMNS, CSV_OF_COMPLETION, CSV_OF_STEP, EXPORT_FORMATS
from sampler.runlog.store import RunStore

__all__ = ["export_run"]


def export_run(store: RunStore, run_id: str, fmt: str, stream: TextIO) -> int:
    """Write run ``run_id`` (an id, a unique prefix or ``latest``) to ``stream``.

    Returns the number of records written.

    ``jsonl``: one completion a line, steps included, and ``logprobs`` when the run recorded
    them (``generate --logprobs``; the same object ``generate --json`` printed). ``csv``: a
    header, then one line a step (:data:`~sampler.runlog.schema.CSV_COLUMNS`).
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
    columns = ", ".join(
        [*(f"c.{name}" for name in CSV_OF_COMPLETION), *(f"s.{name}" for name in CSV_OF_STEP)]
    )
    for row in store.rows_for_export(run_id, columns):
        writer.writerow(tuple(row))
        count += 1
    return count
