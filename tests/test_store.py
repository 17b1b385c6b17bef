"""The SQLite run log: round trips, migrations, run lookup, bad paths and concurrent writers."""

import csv
import io
import json
import math
import re
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from sampler.errors import InvalidInputError
from sampler.runlog import store as store_module
from sampler.runlog.export import export_run
from sampler.runlog.store import CSV_COLUMNS, MIGRATIONS, STEP_STATS, RunStore

ROOT = Path(__file__).resolve().parents[1]


def make_completion(row: int, n_steps: int = 3, extra: dict | None = None) -> dict:
    rng = np.random.default_rng(row)
    steps = []
    for _ in range(n_steps):
        step = {name: float(rng.random() * 3) for name in STEP_STATS}
        step["kept_tokens"] = int(rng.integers(1, 50))
        step["token"] = int(rng.integers(0, 1000))
        step["base_argmax"] = int(rng.integers(0, 1000))
        steps.append(step)
    completion = {
        "prompt": f"prompt, \"quoted\"\nline {row}", "sample": row % 4, "temperature": 0.7,
        "mode": "sample", "params": {"top_k": 40, "order": ["top_k", "temperature"]},
        "text": f"text {row} ü", "token_ids": [s["token"] for s in steps],
        "finish_reason": "length", "prompt_tokens": 5, "steps": steps,
    }
    if extra is not None:
        completion["extra"] = extra
    return completion


def new_run(store: RunStore, total_rows: int = 3) -> str:
    return store.create_run("sweep", "toy", "f00d", {"seed": 1, "temps": [0.7]},
                            {"sampler": "0.1.0"}, total_rows)


def without_step_numbers(completion: dict) -> dict:
    return completion | {"steps": [{k: v for k, v in s.items() if k != "step"}
                                   for s in completion["steps"]]}


@pytest.fixture
def store(tmp_path):
    with RunStore(tmp_path / "runs.db") as opened:
        yield opened


def test_connection_settings(store):
    assert store._conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store._conn.execute("PRAGMA busy_timeout").fetchone()[0] == 10_000
    assert store._conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1


def test_round_trip_create_add_list_get(store):
    run = new_run(store)
    given = {0: make_completion(0, extra={"first_step_top": [{"token": 3, "prob": 0.5}]}),
             1: make_completion(1, n_steps=0), 2: make_completion(2)}
    for row in (2, 0, 1):  # stored out of order, read back by row_index
        store.add_completion(run, row, given[row])
    assert store.done_rows(run) == {0, 1, 2}
    got = store.completions(run)
    assert [c["row_index"] for c in got] == [0, 1, 2]
    for c in got:
        expected = given[c["row_index"]] | {"row_index": c["row_index"]}
        expected.setdefault("extra", {})
        assert without_step_numbers(c) == expected
        assert [s["step"] for s in c["steps"]] == list(range(len(c["steps"])))
    assert "steps" not in store.completions(run, with_steps=False)[0]

    listed = store.list_runs()
    assert listed == [{"id": run, "created_at": listed[0]["created_at"], "kind": "sweep",
                       "model": "toy", "status": "running", "rows_done": 3, "total_rows": 3}]
    store.finish_run(run)
    info = store.get_run(run)
    assert info["status"] == "complete" and info["rows_done"] == 3
    assert info["config"] == {"seed": 1, "temps": [0.7]}
    assert info["versions"] == {"sampler": "0.1.0"}
    assert info["fingerprint"] == "f00d" and info["created_at"].startswith(run[:4])


def test_run_id_shape(store):
    run = new_run(store)
    date, clock, suffix = run.split("-")
    assert len(date) == 8 and len(clock) == 6 and len(suffix) == 4
    assert int(suffix, 16) >= 0 and (date + clock).isdigit()
    assert len({new_run(store) for _ in range(30)}) == 30


def test_export_jsonl_and_csv_round_trip(store):
    run = new_run(store)
    given = [make_completion(row, n_steps=row + 1) for row in range(3)]
    for row, completion in enumerate(given):
        store.add_completion(run, row, completion)

    out = io.StringIO()
    assert export_run(store, run, "jsonl", out) == 3
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [line["run_id"] for line in lines] == [run] * 3
    for row, line in enumerate(lines):
        assert without_step_numbers(line) == given[row] | {
            "run_id": run, "row_index": row, "extra": {}}

    out = io.StringIO()
    assert export_run(store, run, "csv", out) == 1 + 2 + 3
    records = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert tuple(records[0]) == CSV_COLUMNS
    expected = [(row, step_index, step) for row, c in enumerate(given)
                for step_index, step in enumerate(c["steps"])]
    for record, (row, step_index, step) in zip(records, expected, strict=True):
        assert record["run_id"] == run and int(record["row_index"]) == row
        assert record["prompt"] == given[row]["prompt"]
        assert int(record["sample"]) == given[row]["sample"]
        assert float(record["temperature"]) == 0.7 and record["mode"] == "sample"
        assert int(record["step"]) == step_index and int(record["token"]) == step["token"]
        for name in STEP_STATS:
            assert float(record[name]) == step[name]  # exact: csv keeps repr() digits
        assert int(record["base_argmax"]) == step["base_argmax"]


def test_export_unknown_format(store):
    run = new_run(store)
    with pytest.raises(InvalidInputError, match=r"export format 'xml' is unknown; .*jsonl, csv"):
        export_run(store, run, "xml", io.StringIO())


def test_numpy_values_and_nan_are_stored(store):
    run = new_run(store)
    completion = make_completion(0)
    completion["token_ids"] = np.array(completion["token_ids"], dtype=np.int64)
    completion["steps"][0] |= {"token": np.int64(5), "surprisal": np.float32(0.25),
                               "kl_final_base": float("nan"), "kept_tokens": np.int32(3)}
    completion["params"]["top_p"] = np.float64(0.9)
    store.add_completion(run, 0, completion)
    (got,) = store.completions(run)
    first = got["steps"][0]
    assert first["token"] == 5 and first["surprisal"] == 0.25 and first["kept_tokens"] == 3
    assert first["kl_final_base"] is None  # SQLite stores NaN as NULL
    assert got["params"]["top_p"] == 0.9 and isinstance(got["token_ids"][0], int)
    assert not any(isinstance(v, float) and math.isnan(v) for v in first.values())


def test_duplicate_completion_is_ignored(store):
    run = new_run(store)
    store.add_completion(run, 0, make_completion(0, n_steps=4))
    store.add_completion(run, 0, make_completion(9, n_steps=7) | {"text": "second"})
    (got,) = store.completions(run)
    assert got["text"] == "text 0 ü" and len(got["steps"]) == 4
    assert store._conn.execute("SELECT count(*) FROM steps").fetchone()[0] == 4


def test_completion_for_unknown_run_or_missing_fields(store):
    with pytest.raises(InvalidInputError, match="run 'nope' is not in DB"):
        store.add_completion("nope", 0, make_completion(0))
    run = new_run(store)
    broken = make_completion(0)
    del broken["text"], broken["steps"]
    with pytest.raises(InvalidInputError, match="lacks text, steps"):
        store.add_completion(run, 0, broken)
    with pytest.raises(InvalidInputError, match="run 'nope' is not in DB"):
        store.finish_run("nope")


def test_steps_table_has_a_column_for_every_step_statistic(store):
    from dataclasses import fields

    from sampler.engine.stats import StepStats

    columns = [row["name"] for row in store._conn.execute("PRAGMA table_info(steps)")]
    names = [f.name for f in fields(StepStats)]
    assert set(names) <= set(columns), set(names) - set(columns)
    assert set(names) <= set(CSV_COLUMNS)  # and the CSV export writes every one


def test_runlog_imports_point_one_way():
    """store never imports export, and the run log imports nothing from the layers above it."""
    import ast

    above = ("sampler.generation", "sampler.experiments", "sampler.report", "sampler.cli")
    imported = {}
    for path in (ROOT / "sampler" / "runlog").glob("*.py"):
        tree = ast.parse(path.read_text())
        imported[path.stem] = {
            node.module if isinstance(node, ast.ImportFrom) else alias.name
            for node in ast.walk(tree) if isinstance(node, ast.Import | ast.ImportFrom)
            for alias in node.names
        }
    assert "sampler.runlog.export" not in imported["store"]
    assert "sampler.runlog.store" in imported["export"]
    for module, names in imported.items():
        assert not [n for n in names if n and n.startswith(above)], module


def test_migrations_recorded_and_reopen_applies_nothing(tmp_path):
    path = tmp_path / "runs.db"
    RunStore(path).close()
    with sqlite3.connect(path) as conn:
        first = conn.execute("SELECT name, applied_at FROM schema_migrations "
                             "ORDER BY name").fetchall()
    assert [name for name, _ in first] == [name for name, _ in MIGRATIONS]
    with RunStore(path) as reopened:
        again = reopened._conn.execute("SELECT name, applied_at FROM schema_migrations "
                                       "ORDER BY name").fetchall()
    assert [tuple(row) for row in again] == first


def test_future_migration_applied_once_on_reopen(tmp_path, monkeypatch):
    path = tmp_path / "runs.db"
    with RunStore(path) as old:
        run = new_run(old)
        old.add_completion(run, 0, make_completion(0))
    future = ("099_run_notes", """
        ALTER TABLE runs ADD COLUMN notes TEXT;
        CREATE TRIGGER notes_default AFTER INSERT ON runs BEGIN
            UPDATE runs SET notes = 'new; run' WHERE id = NEW.id;
        END;""")
    monkeypatch.setattr(store_module, "MIGRATIONS", [*MIGRATIONS, future])
    for _ in range(2):
        with RunStore(path) as new:
            rows = new._conn.execute("SELECT name FROM schema_migrations "
                                     "WHERE name = '099_run_notes'").fetchall()
            assert len(rows) == 1
            assert new.get_run(run)["notes"] is None and new.done_rows(run) == {0}
    with RunStore(path) as new:
        assert new.get_run(new_run(new))["notes"] == "new; run"  # the trigger body stayed whole
    monkeypatch.setattr(store_module, "MIGRATIONS", MIGRATIONS)
    with pytest.raises(InvalidInputError, match="migration '099_run_notes' unknown"):
        RunStore(path)


def test_prefix_and_latest_lookup(store):
    first, second = new_run(store), new_run(store)
    assert store.get_run("latest")["id"] == second
    assert store.list_runs()[0]["id"] == second and store.list_runs(limit=1)[0]["id"] == second
    unique = next(first[:k] for k in range(1, len(first) + 1) if first[:k] != second[:k])
    assert store.get_run(unique)["id"] == first
    assert store.resolve(first) == first
    common = first[:next((k for k in range(len(first)) if first[k] != second[k]), len(first))]
    if common:
        with pytest.raises(InvalidInputError, match=f"run '{common}' is ambiguous"):
            store.get_run(common)
    assert store.completions("latest") == [] and store.done_rows("latest") == set()


def test_unknown_run_message(store):
    with pytest.raises(InvalidInputError) as caught:
        store.get_run("20990101")
    assert str(caught.value) == "run '20990101' is not in DB; `sampler runs` lists the runs"
    with pytest.raises(InvalidInputError, match="run 'latest' is not in DB"):
        store.get_run("latest")
    new_run(store)
    with pytest.raises(InvalidInputError, match="run 'x' is not in DB"):
        export_run(store, "x", "jsonl", io.StringIO())


def test_missing_folder_is_not_created(tmp_path):
    folder = tmp_path / "nowhere"
    message = rf"folder {re.escape(str(folder))} for database .* does not exist; create it"
    with pytest.raises(InvalidInputError, match=message):
        RunStore(folder / "runs.db")
    assert not folder.exists()



def test_read_only_file(tmp_path):
    path = tmp_path / "runs.db"
    RunStore(path).close()
    path.chmod(0o444)
    try:
        # as root, the mode bits and not os.access() decide: the check uses both
        with pytest.raises(InvalidInputError, match=re.escape(f"database {path} is read-only")):
            RunStore(path)
    finally:
        path.chmod(0o644)


def test_read_only_folder(tmp_path):
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        with pytest.raises(InvalidInputError, match=r"is read-only: its folder .* not writable"):
            RunStore(folder / "runs.db")
    finally:
        folder.chmod(0o755)


def test_not_a_sqlite_file(tmp_path):
    path = tmp_path / "notes.db"
    path.write_text("just some notes, not a database\n")
    message = re.escape(f"database {path} is not a SQLite database")
    with pytest.raises(InvalidInputError, match=message):
        RunStore(path)
    with pytest.raises(InvalidInputError, match="cannot be read"):
        RunStore(tmp_path)


def test_closed_by_context_manager(tmp_path):
    with RunStore(tmp_path / "runs.db") as opened:
        pass
    with pytest.raises(sqlite3.ProgrammingError):
        opened.list_runs()
    opened.close()  # twice is fine


WRITER = """
import sys, time
sys.path.insert(0, sys.argv[5])
from sampler.runlog.store import STEP_STATS, RunStore
path, run, first, start_at = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
time.sleep(max(0.0, start_at - time.time()))
with RunStore(path) as store:
    if run == "new":
        run = store.create_run("sweep", "toy", "f00d", {}, {}, 50)
    for row in range(first, first + 50):
        steps = [dict.fromkeys(STEP_STATS, 0.5) | {"token": step} for step in range(20)]
        store.add_completion(run, row, {
            "prompt": "p", "sample": row, "temperature": 1.0, "mode": "sample", "params": {},
            "text": "t", "token_ids": list(range(20)), "finish_reason": "length",
            "prompt_tokens": 1, "steps": steps})
    store.finish_run(run)
"""


@pytest.mark.parametrize("shared_run", [True, False], ids=["one-run", "fresh-db-two-runs"])
def test_two_processes_write_at_once(tmp_path, shared_run):
    path = tmp_path / "runs.db"
    run = "new"
    if shared_run:
        with RunStore(path) as opened:
            run = new_run(opened, total_rows=100)
    start_at = time.time() + 1.5  # both start writing at the same moment, after imports
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(path), run, str(first),
                               str(start_at), str(ROOT)], stderr=subprocess.PIPE, text=True)
             for first in (0, 50)]
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    with RunStore(path) as opened:
        assert opened._conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert opened._conn.execute("SELECT count(*) FROM completions").fetchone()[0] == 100
        assert opened._conn.execute("SELECT count(*) FROM steps").fetchone()[0] == 2000
        runs = opened.list_runs()
        assert len(runs) == (1 if shared_run else 2)
        assert sum(r["rows_done"] for r in runs) == 100
        rows = set().union(*(opened.done_rows(r["id"]) for r in runs))
        assert rows == set(range(100))

