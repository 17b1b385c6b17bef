"""The run log's schema: column groups, the append-only named migrations, SQL helpers."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import fields

from sampler.engine.stats import StepStats

__all__ = [
    "COMPLETION_FIELDS",
    "CSV_COLUMNS",
    "EXPORT_FORMATS",
    "MIGRATIONS",
    "STEP_STATS",
    "TABLE_COLUMNS",
    "insert_rows",
    "sql_statements",
]

# One column per StepStats field, in its order; base_argmax (an optional token id, added by
# migration 002) is stored and read apart from the float-like statistics.
STEP_STATS = tuple(f.name for f in fields(StepStats) if f.name != "base_argmax")
COMPLETION_FIELDS = (
    "prompt",
    "sample",
    "temperature",
    "mode",
    "params",
    "text",
    "token_ids",
    "finish_reason",
    "prompt_tokens",
)
CSV_OF_COMPLETION = ("run_id", "row_index", "prompt", "sample", "temperature", "mode")
CSV_OF_STEP = ("step", "token", *STEP_STATS, "base_argmax")
# Read from JSON a row stores (completions.rewinds, extra's logprobs), after the columns above
# so that a reader of the older CSV finds every column where it was: a row's rewinds and the
# tokens they dropped (empty: no phrase banned), the step's token's raw and processed
# log-probabilities (empty: the run was made without generate --logprobs).
CSV_OF_ROW_JSON = ("rewinds", "rewound_tokens", "raw_logprob", "processed_logprob")
CSV_COLUMNS = (*CSV_OF_COMPLETION, *CSV_OF_STEP, *CSV_OF_ROW_JSON)
EXPORT_FORMATS = ("jsonl", "csv")
# The columns the migrations give each table and sampler reads: a table or column missing from
# a migrated run log means the file was changed by hand or damaged.
TABLE_COLUMNS = {
    "runs": (
        "id", "created_at", "kind", "model", "fingerprint", "config", "versions", "total_rows",
        "status",
    ),
    "completions": ("run_id", "row_index", *COMPLETION_FIELDS, "extra", "rewinds"),
    "steps": ("run_id", "row_index", "step", "token", *STEP_STATS, "base_argmax"),
}
_RUN_KINDS = """
-- steps reference completions without ON UPDATE CASCADE: both move, the check waits for COMMIT
PRAGMA defer_foreign_keys = ON;
-- greedy repeats at 1..samples-1 came only from an old `sweep --resume`: no plan has them
DELETE FROM completions WHERE row_index BETWEEN 1 AND (
    SELECT json_extract(runs.config, '$.samples') - 1 FROM runs
    WHERE runs.id = completions.run_id AND runs.kind = 'compare'
);
-- samples + i -> 1 + i in two passes through -1 - i, so no new index meets an old one still in
-- place, whatever order SQLite updates the rows in
UPDATE completions SET row_index = (
    SELECT json_extract(runs.config, '$.samples') FROM runs WHERE runs.id = completions.run_id
) - 1 - row_index
WHERE row_index > 0 AND run_id IN (SELECT id FROM runs WHERE kind = 'compare');
UPDATE steps SET row_index = (
    SELECT json_extract(runs.config, '$.samples') FROM runs WHERE runs.id = steps.run_id
) - 1 - row_index
WHERE row_index > 0 AND run_id IN (SELECT id FROM runs WHERE kind = 'compare');
UPDATE completions SET row_index = -row_index WHERE row_index < 0;
UPDATE steps SET row_index = -row_index WHERE row_index < 0;
UPDATE runs SET total_rows = 1 + json_extract(config, '$.samples') WHERE kind = 'compare';
-- `compare -t 0` logged temperatures [0, 0], which a config refuses as a duplicate
UPDATE runs SET config = json_set(config, '$.temperatures', json_array(0.0))
WHERE kind = 'compare' AND json_extract(config, '$.temperatures[1]') = 0;
"""
# Append-only: a released migration is never edited, a change is a new (name, script) at the end.
MIGRATIONS: list[tuple[str, str]] = [
    (
        "001_runs",
        """
CREATE TABLE runs (
    id TEXT PRIMARY KEY, created_at TEXT NOT NULL, kind TEXT NOT NULL, model TEXT NOT NULL,
    fingerprint TEXT NOT NULL, config TEXT NOT NULL, versions TEXT NOT NULL,
    total_rows INTEGER NOT NULL,
    status TEXT NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'complete'))
);
CREATE INDEX runs_by_created_at ON runs (created_at);
CREATE TABLE completions (
    run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    row_index INTEGER NOT NULL, prompt TEXT, sample INTEGER, temperature REAL, mode TEXT,
    params TEXT, text TEXT, token_ids TEXT, finish_reason TEXT, prompt_tokens INTEGER,
    extra TEXT,
    PRIMARY KEY (run_id, row_index)
);
CREATE TABLE steps (
    run_id TEXT NOT NULL, row_index INTEGER NOT NULL, step INTEGER NOT NULL, token INTEGER,
    entropy_base REAL, entropy_temp REAL, entropy_final REAL, surprisal REAL,
    surprisal_base REAL, top1_prob REAL, kept_tokens INTEGER, kept_mass REAL,
    kl_final_base REAL,
    PRIMARY KEY (run_id, row_index, step),
    FOREIGN KEY (run_id, row_index) REFERENCES completions (run_id, row_index) ON DELETE CASCADE
) WITHOUT ROWID;
""",
    ),
    # the loop records the base distribution's argmax per step; summaries use it for agreement
    ("002_steps_base_argmax", "ALTER TABLE steps ADD COLUMN base_argmax INTEGER;"),
    # Runs plan their rows by kind. A compare was logged as a sweep over temperatures (0, τ)
    # storing rows 0 (greedy) and samples + i (sample i); its plan is greedy at 0 and sample i
    # at 1 + i, so its total is 1 + samples.
    ("003_run_kinds", _RUN_KINDS),
    # Random streams are keyed by (seed, prompt, sample) since 004; the runs logged before drew
    # from (seed, sample) streams, and say so, so that resuming one draws as its first rows did.
    (
        "004_stream_keys",
        """UPDATE runs SET config = json_set(config, '$.stream', 'sample')
        WHERE json_extract(config, '$.stream') IS NULL;""",
    ),
    # What adaptive and stateful stages did at each step (StepStats' telemetry); NULL where
    # the stage was off, and for every step logged before.
    (
        "005_step_telemetry",
        """ALTER TABLE steps ADD COLUMN temperature_chosen REAL;
        ALTER TABLE steps ADD COLUMN mirostat_mu REAL;""",
    ),
    (
        "006_xtc_telemetry",
        """ALTER TABLE steps ADD COLUMN xtc_fired REAL;
        ALTER TABLE steps ADD COLUMN xtc_removed REAL;""",
    ),
    (
        "007_dry_telemetry",
        """ALTER TABLE steps ADD COLUMN dry_match REAL;
        ALTER TABLE steps ADD COLUMN dry_penalty REAL;""",
    ),
    (
        "008_adaptive_p_telemetry",
        """ALTER TABLE steps ADD COLUMN adaptive_average REAL;
        ALTER TABLE steps ADD COLUMN adapted_target REAL;""",
    ),
    # Each rewind a banned phrase caused (a JSON list of {step, phrase, position, token,
    # dropped}); NULL where no phrase was banned, and for every row logged before.
    ("009_phrase_ban_rewinds", "ALTER TABLE completions ADD COLUMN rewinds TEXT;"),
    # what a constraint's mask did at each step (sampler/engine/filters/grammar.py)
    (
        "010_grammar_telemetry",
        """ALTER TABLE steps ADD COLUMN grammar_allowed REAL;
        ALTER TABLE steps ADD COLUMN grammar_removed_mass REAL;
        ALTER TABLE steps ADD COLUMN grammar_kl REAL;
        ALTER TABLE steps ADD COLUMN grammar_top1_illegal REAL;
        ALTER TABLE steps ADD COLUMN grammar_forced REAL;""",
    ),
    # 1 where a row resampling as llama.cpp does drew again after the mask
    # (sampler/engine/resample.py); NULL elsewhere and for every step logged before
    ("011_grammar_resampled", "ALTER TABLE steps ADD COLUMN grammar_resampled REAL;"),
]


def sql_statements(script: str) -> Iterator[str]:
    """Split a script into statements (sqlite3.complete_statement keeps trigger bodies whole).

    executescript() is not used because it commits first, breaking the migration transaction.
    """
    buffer = ""
    for piece in script.split(";"):
        buffer += piece + ";"
        if sqlite3.complete_statement(buffer):
            if buffer.strip(" \t\n;"):
                yield buffer
            buffer = ""


def insert_rows(
    conn: sqlite3.Connection, table: str, rows: list[dict], verb: str = "INSERT"
) -> int:
    # named columns, never positional VALUES: a later migration may add columns to any table
    columns = ", ".join(rows[0])
    marks = ", ".join(f":{name}" for name in rows[0])
    return conn.executemany(f"{verb} INTO {table} ({columns}) VALUES ({marks})", rows).rowcount

