"""A run log on a full disk: one `error:` line, and nothing already written is lost or half-kept.

SQLite's ``PRAGMA max_page_count`` makes a database refuse to grow with exactly the error a
full disk gives (``SQLITE_FULL``, "database or disk is full"): a portable full disk, set per
connection by wrapping the store's ``open_connection``. The oracles are an uninterrupted run
on the same config (same tokens after ``--resume``) and the file's own tables (nothing of a
refused session in them).
"""

import sqlite3
from pathlib import Path

import pytest
from test_bad_input import run_cli

from sampler.errors import RunLogFullError
from sampler.runlog import store as store_module
from sampler.runlog.store import RunStore
from sampler.sources.synthetic_spec import parse_synthetic

ROOT = Path(__file__).resolve().parents[1]
SYNTHETIC = str(ROOT / "configs" / "synthetic.toml")  # 2 prompts x 5 temperatures x 8 samples


@pytest.fixture
def disk_limit(monkeypatch):
    """Call with a number of pages: every run log opened after it may grow by that much."""
    limit = {}
    opened = store_module.open_connection

    def open_limited(path: Path) -> sqlite3.Connection:
        conn = opened(path)
        if "pages" in limit:
            pages = conn.execute("PRAGMA page_count").fetchone()[0]
            conn.execute(f"PRAGMA max_page_count = {pages + limit['pages']}")
        return conn

    monkeypatch.setattr(store_module, "open_connection", open_limited)

    def set_limit(pages: int | None) -> None:
        limit.pop("pages", None)
        if pages is not None:
            limit["pages"] = pages

    return set_limit


def pages(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        return conn.execute("PRAGMA page_count").fetchone()[0]


def tokens_by_row(db: Path, run_id: str) -> dict[int, tuple]:
    with RunStore(db) as store:
        return {c["row_index"]: (c["prompt"], c["temperature"], c["sample"],
                                 tuple(c["token_ids"]), tuple(s["token"] for s in c["steps"]))
                for c in store.completions(run_id)}


def stored_counts(db: Path) -> tuple[int, int, int]:
    with sqlite3.connect(db) as conn:
        return tuple(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
                     for table in ("runs", "completions", "steps"))


def error_line(result) -> str:
    """The last stderr line of a failed command (a sweep prints progress before it)."""
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("error: ") and sum("error" in line for line in lines) == 1, lines
    return lines[-1]


def test_a_sweep_onto_a_full_disk_keeps_its_rows_and_resumes_to_the_same_tokens(
    tmp_path, disk_limit
):
    reference = tmp_path / "reference.db"
    assert run_cli("sweep", "--config", SYNTHETIC, "--db", str(reference)).exit_code == 0
    with RunStore(reference) as store:
        expected = tokens_by_row(reference, store.get_run("latest")["id"])
    assert len(expected) == 80

    full = tmp_path / "full.db"
    RunStore(full).close()  # an empty run log; then room for about a third of the sweep
    disk_limit((pages(reference) - pages(full)) // 3)
    result = run_cli("sweep", "--config", SYNTHETIC, "--db", str(full))
    line = error_line(result)
    with RunStore(full) as store:
        run = store.get_run("latest")
        kept = tokens_by_row(full, run["id"])
        assert store._conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert line == (f"error: run log {full} cannot grow: the disk is full (database or disk is "
                    "full); free some space or choose a path on another disk; the rows stored "
                    f"before stay: `sampler sweep --resume {run['id']}` finishes the run")
    assert run["status"] == "running" and 0 < len(kept) < 80
    assert kept == {row: expected[row] for row in kept}  # whole rows, as drawn uninterrupted

    resumed = run_cli("sweep", "--resume", run["id"], "--db", str(full))
    assert error_line(resumed).startswith(f"error: run log {full} cannot grow")  # still full
    assert len(tokens_by_row(full, run["id"])) > len(kept)  # yet it stored what fitted

    disk_limit(None)  # space freed
    resumed = run_cli("sweep", "--resume", run["id"], "--db", str(full))
    assert resumed.exit_code == 0, resumed.output
    assert tokens_by_row(full, run["id"]) == expected
    with RunStore(full) as store:
        assert store.get_run(run["id"])["status"] == "complete"


def test_a_run_that_cannot_even_start_is_one_line_and_leaves_no_run(tmp_path, disk_limit):
    db = tmp_path / "runs.db"
    RunStore(db).close()
    disk_limit(0)  # a 20 kB config needs overflow pages
    with RunStore(db) as store, pytest.raises(RunLogFullError) as caught:
        store.create_run("sweep", "toy", "f00d", {"prompt": "x" * 20_000}, {}, 1)
    assert str(caught.value) == (
        f"run log {db} cannot grow: the disk is full (database or disk is full); "
        "free some space or choose a path on another disk")
    assert stored_counts(db) == (0, 0, 0)


# --- a server session is saved whole or not at all -----------------------------------------

MARKOV = "synthetic:markov?vocab=300&sharpness=2.0&seed=1"
SESSION = {"generations": [
    {"prompt": "kalo mesu", "rows": [{"seed": seed, "temperature": 1.0} for seed in range(4)],
     "max_new_tokens": 40},
    {"prompt": "puzo hena", "rows": [{"seed": 9}], "forced": [5, 6], "max_new_tokens": 40},
]}


def test_a_session_onto_a_full_disk_saves_nothing(tmp_path, disk_limit):
    from sampler.serve.sessions import save_session

    db = tmp_path / "runs.db"
    RunStore(db).close()
    disk_limit(2)  # 5 rows of 40 steps need about 10 pages more
    with RunStore(db) as store, pytest.raises(RunLogFullError) as caught:
        save_session(parse_synthetic(MARKOV), store, SESSION)
    assert str(caught.value) == (
        f"run log {db} cannot grow: the disk is full (database or disk is full); free some "
        "space or choose a path on another disk; nothing of the run was saved")
    assert stored_counts(db) == (0, 0, 0)
    disk_limit(None)
    with RunStore(db) as store:
        saved = save_session(parse_synthetic(MARKOV), store, SESSION)
    assert saved["rows"] == 5 and stored_counts(db)[:2] == (1, 5)


def test_post_api_runs_onto_a_full_disk_is_an_error_and_leaves_no_run(tmp_path, disk_limit):
    pytest.importorskip("starlette")
    from starlette.testclient import TestClient

    from sampler.serve.app import make_app

    db = tmp_path / "runs.db"
    RunStore(db).close()
    disk_limit(2)
    client = TestClient(make_app(parse_synthetic(MARKOV), str(db)),
                        base_url="http://127.0.0.1:8765")
    response = client.post("/api/runs", json=SESSION)
    # the status is the server's mapping of RunLogFullError; the message is the library's
    assert response.status_code >= 400 and "the disk is full" in response.json()["error"]
    assert client.get("/api/runs").json() == [] and stored_counts(db) == (0, 0, 0)
