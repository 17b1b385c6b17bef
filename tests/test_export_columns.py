"""What `sampler export` writes of the columns later migrations added: phrase-ban rewinds
(009), grammar telemetry (010) and `generate --logprobs`, and old runs exporting as before.

The oracle is the run log itself, read with sqlite3 queries written here (SQLite's JSON
functions on the stored text), never the export code; for old runs, the committed dump of a
run log written by sampler 0.1.0, loaded into a database sampler has not opened.
"""

import csv
import io
import json
import math
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner
from test_bad_input import one_error_line

from sampler.cli import cli
from sampler.runlog.export import export_run
from sampler.runlog.schema import CSV_COLUMNS, STEP_STATS
from sampler.runlog.store import RunStore

SHARP = "synthetic:markov?vocab=30&sharpness=3&seed=1"
PHRASE = "tagi vafi"  # the greedy row of "kalo" on SHARP writes it (tests/test_phrase_bans.py)
FIXTURE = Path(__file__).parent / "fixtures" / "runlog_v0.1.0.sql"
COMPARE = "20261125-162422-46b1"  # the fixture's compare (tests/test_run_kinds.py)
GRAMMAR = (
    "grammar_allowed", "grammar_removed_mass", "grammar_kl", "grammar_top1_illegal",
    "grammar_forced",
)
ADDED = ("rewinds", "rewound_tokens", "raw_logprob", "processed_logprob")


def run_cli(*args: str):
    return CliRunner().invoke(cli, [str(a) for a in args])


def exported(db: Path, fmt: str) -> str:
    result = run_cli("export", "latest", "--db", db, "--format", fmt)
    assert result.exit_code == 0, result.output
    return result.stdout


def csv_lines(db: Path) -> list[dict]:
    lines = list(csv.DictReader(io.StringIO(exported(db, "csv"))))
    assert lines and tuple(lines[0]) == CSV_COLUMNS
    return lines


def query(db: Path, sql: str) -> list[tuple]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def cell(value) -> str:
    """How Python's csv module writes a stored value: repr digits for floats, '' for NULL."""
    return "" if value is None else str(value)


@pytest.fixture(scope="module")
def banned_run(tmp_path_factory) -> Path:
    """Greedy rows that rewind and τ = 1 rows that may not, each with its log-probabilities."""
    db = tmp_path_factory.mktemp("banned") / "log.db"
    result = run_cli("generate", "--model", SHARP, "--prompt", "kalo", "-t", "0", "-t", "1",
                     "--samples", "2", "--max-new-tokens", "12", "--ban-phrase", PHRASE,
                     "--logprobs", "processed", "--top-logprobs", "2", "--db", db, "--json")
    assert result.exit_code == 0, result.output
    return db


def test_csv_has_each_rows_rewinds_as_the_run_log_holds_them(banned_run):
    expected = {
        row: (count, dropped)
        for row, count, dropped in query(
            banned_run,
            "SELECT row_index, json_array_length(rewinds), "
            "(SELECT sum(json_extract(r.value, '$.dropped')) FROM json_each(rewinds) r) "
            "FROM completions",
        )
    }
    assert expected[0][0] > 0  # the greedy rows did rewind: the test sees real rewinds
    lines = csv_lines(banned_run)
    assert len(lines) == query(banned_run, "SELECT count(*) FROM steps")[0][0]
    for line in lines:
        count, dropped = expected[int(line["row_index"])]
        assert (line["rewinds"], line["rewound_tokens"]) == (str(count), str(dropped or 0))


def test_csv_has_each_steps_log_probabilities(banned_run):
    stored = {
        (row, int(step)): (raw, processed)
        for row, step, raw, processed in query(
            banned_run,
            "SELECT c.row_index, e.key, json_extract(e.value, '$.raw_logprob'), "
            "json_extract(e.value, '$.processed_logprob') "
            "FROM completions c, json_each(c.extra, '$.logprobs.content') e",
        )
    }
    lines = csv_lines(banned_run)
    assert len(stored) == len(lines)  # one entry a step, the rewound ones cut with their steps
    for line in lines:
        raw, processed = stored[int(line["row_index"]), int(line["step"])]
        # exact: both sides are the same float64 written with repr digits
        assert float(line["raw_logprob"]) == raw and float(line["processed_logprob"]) == processed


def test_jsonl_has_the_rewinds_and_logprobs_the_run_log_holds(banned_run):
    rows = dict(query(banned_run, "SELECT row_index, rewinds FROM completions"))
    logprobs = dict(query(banned_run, "SELECT row_index, json_extract(extra, '$.logprobs') "
                                      "FROM completions"))
    lines = [json.loads(line) for line in exported(banned_run, "jsonl").splitlines()]
    assert [line["row_index"] for line in lines] == sorted(rows)
    for line in lines:
        assert line["rewinds"] == json.loads(rows[line["row_index"]])
        assert line["logprobs"] == json.loads(logprobs[line["row_index"]])
        # entry i is step i's token (an EOS included, which token_ids leave out)
        assert [s["token"] for s in line["steps"]] == [
            e["id"] for e in line["logprobs"]["content"]]


def test_grammar_telemetry_in_csv_and_jsonl_is_what_the_steps_table_holds(tmp_path):
    db = tmp_path / "log.db"
    # a grammar needs a model's vocabulary; the store takes the steps such a run records
    grammar_steps = [
        dict.fromkeys(STEP_STATS, 0.25) | {"token": 7, "grammar_allowed": 3.0,
                                           "grammar_removed_mass": 0.5, "grammar_kl": math.log(2),
                                           "grammar_top1_illegal": 1.0, "grammar_forced": 0.0},
        dict.fromkeys(STEP_STATS, 0.25) | {"token": 8, "grammar_allowed": 1.0,
                                           "grammar_removed_mass": 0.125,
                                           "grammar_kl": -math.log(0.875),
                                           "grammar_top1_illegal": 0.0, "grammar_forced": 1.0},
    ]
    with RunStore(db) as store:
        run = store.create_run("generate", "toy", "f00d", {}, {}, 1)
        store.add_completion(run, 0, {
            "prompt": "Hi", "sample": 0, "temperature": 1.0, "mode": "sample", "params": {},
            "text": " yo", "token_ids": [7, 8], "finish_reason": "length", "prompt_tokens": 1,
            "steps": grammar_steps})
    stored = query(db, f"SELECT {', '.join(GRAMMAR)} FROM steps ORDER BY step")
    lines = csv_lines(db)
    assert [tuple(float(line[name]) for name in GRAMMAR) for line in lines] == stored
    assert all(line[name] == "" for line in lines for name in ADDED)  # none of these recorded
    (line,) = [json.loads(text) for text in exported(db, "jsonl").splitlines()]
    assert [tuple(step[name] for name in GRAMMAR) for step in line["steps"]] == stored
    assert "rewinds" not in line and "logprobs" not in line


def test_a_recorded_null_log_probability_is_minus_infinity_in_csv(tmp_path):
    # JSON has no -inf: the run log keeps the one a chain cut as null (models.md)
    db = tmp_path / "log.db"
    entry = {"id": 7, "token": "a", "bytes": [97], "logprob": None, "raw_logprob": -1.5,
             "processed_logprob": None, "top_logprobs": []}
    with RunStore(db) as store:
        run = store.create_run("generate", "toy", "f00d", {}, {}, 1)
        store.add_completion(run, 0, {
            "prompt": "Hi", "sample": 0, "temperature": 1.0, "mode": "sample", "params": {},
            "text": "a", "token_ids": [7], "finish_reason": "length", "prompt_tokens": 1,
            "steps": [dict.fromkeys(STEP_STATS, 0.5) | {"token": 7}], "rewinds": [],
            "extra": {"logprobs": {"mode": "processed", "top_logprobs": 0, "content": [entry]}}})
        out = io.StringIO()
        assert export_run(store, run, "csv", out) == 1
    (line,) = csv.DictReader(io.StringIO(out.getvalue()))
    assert (line["raw_logprob"], line["processed_logprob"]) == ("-1.5", "-inf")
    assert (line["rewinds"], line["rewound_tokens"]) == ("0", "0")  # bans that never fired


def test_damaged_logprobs_are_one_error_line_naming_the_row(tmp_path):
    db = tmp_path / "log.db"
    with RunStore(db) as store:
        run = store.create_run("generate", "toy", "f00d", {}, {}, 1)
        store.add_completion(run, 0, {
            "prompt": "Hi", "sample": 0, "temperature": 1.0, "mode": "sample", "params": {},
            "text": "a", "token_ids": [7], "finish_reason": "length", "prompt_tokens": 1,
            "steps": [dict.fromkeys(STEP_STATS, 0.5) | {"token": 7}],
            "extra": {"logprobs": {"content": "oops"}}})
    result = run_cli("export", run, "--db", db, "--format", "csv")
    one_error_line(result, f"run log {db} is damaged",
                   f"row 0 of run {run}: extra's logprobs content is not a list of entries")


@pytest.fixture
def old_run_log(tmp_path) -> Path:
    db = tmp_path / "old.db"
    conn = sqlite3.connect(db)
    conn.executescript(FIXTURE.read_text())
    conn.close()
    return db


def test_a_run_logged_before_the_migrations_exports_as_before(old_run_log):
    # the oracle: the 0.1.0 file read before sampler opens (and migrates) it
    old_columns = ("run_id", "row_index", "prompt", "sample", "temperature", "mode", "step",
                   "token", "entropy_base", "entropy_temp", "entropy_final", "surprisal",
                   "surprisal_base", "top1_prob", "kept_tokens", "kept_mass", "kl_final_base",
                   "base_argmax")
    runs = [run for (run,) in query(old_run_log, "SELECT id FROM runs ORDER BY created_at")]
    assert COMPARE in runs
    # migration 003 moves a 0.1.0 compare's sample i from row samples + i to 1 + i (3 samples)
    moved = {0: 0, 3: 1, 4: 2, 5: 3}

    def row_index(run: str, stored: int) -> int:
        return moved[stored] if run == COMPARE else stored

    expected, completions = {}, {}
    for run in runs:
        steps = query(old_run_log, f"SELECT {', '.join(old_columns)} FROM completions JOIN steps "
                                   f"USING (run_id, row_index) WHERE run_id = '{run}' "
                                   "ORDER BY row_index, step")
        expected[run] = [(r[0], str(row_index(run, r[1])), *map(cell, r[2:])) for r in steps]
        completions[run] = [
            (row_index(run, row), text, json.loads(ids))
            for row, text, ids in query(old_run_log, "SELECT row_index, text, token_ids FROM "
                                        f"completions WHERE run_id = '{run}' ORDER BY row_index")
        ]
    for run in runs:
        result = run_cli("export", run, "--db", old_run_log, "--format", "csv")
        assert result.exit_code == 0, result.output
        lines = list(csv.DictReader(io.StringIO(result.stdout)))
        assert [tuple(line[name] for name in old_columns) for line in lines] == expected[run]
        later = set(CSV_COLUMNS) - set(old_columns)  # telemetry, grammar, rewinds, logprobs
        assert later and all(line[name] == "" for line in lines for name in later)

        result = run_cli("export", run, "--db", old_run_log, "--format", "jsonl")
        assert result.exit_code == 0, result.output
        lines = [json.loads(text) for text in result.stdout.splitlines()]
        assert [(x["row_index"], x["text"], x["token_ids"]) for x in lines] == completions[run]
        assert not any({"rewinds", "logprobs"} & set(line) for line in lines)
        assert not any(set(GRAMMAR) & set(step) for line in lines for step in line["steps"])


def test_parquet_completions_have_the_rewinds_and_logprobs_as_stored(banned_run, tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    result = run_cli("export", "latest", "--db", banned_run, "--format", "parquet",
                     "--out", tmp_path / "out")
    assert result.exit_code == 0, result.output
    (path,) = (tmp_path / "out").glob("*-completions.parquet")
    table = pq.read_table(path).to_pylist()
    stored = query(banned_run, "SELECT row_index, rewinds, json_extract(extra, '$.logprobs') "
                               "FROM completions ORDER BY row_index")
    assert [(r["row_index"], json.loads(r["rewinds"]), json.loads(r["extra_logprobs"]))
            for r in table] == [(row, json.loads(rewinds), json.loads(logprobs))
                                for row, rewinds, logprobs in stored]
