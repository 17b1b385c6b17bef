"""A run log on a full disk: one `error:` line, and nothing already written is lost or half-kept.

SQLite's ``PRAGMA max_page_count`` makes a database refuse to grow with exactly the error a
full disk gives (``SQLITE_FULL``, "database or disk is full"): a portable full disk, set per
connection by wrapping the store's ``open_connection``. The oracles are an uninterrupted run
on the same config (same tokens after ``--resume``) and the file's own tables (nothing of a
refused session in them).
"""

import contextlib
import gc
import os
import sqlite3
import subprocess
from pathlib import Path

import pytest
from test_bad_input import run_cli

from sampler.errors import RunLogFullError
from sampler.runlog import store as store_module
from sampler.runlog.store import RunStore
from sampler.sources.synthetic_spec import parse_synthetic

ROOT = Path(__file__).resolve().parents[1]
SYNTHETIC = str(ROOT / "configs" / "synthetic.toml")  # 2 prompts x 5 temperatures x 8 samples
MARKOV = "synthetic:markov?vocab=300&sharpness=2.0&seed=1"


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


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> tuple[Path, dict[int, tuple]]:
    """The synthetic sweep run uninterrupted: its run log and its rows' tokens."""
    db = tmp_path_factory.mktemp("reference") / "runs.db"
    assert run_cli("sweep", "--config", SYNTHETIC, "--db", str(db)).exit_code == 0
    with RunStore(db) as store:
        expected = tokens_by_row(db, store.get_run("latest")["id"])
    assert len(expected) == 80
    return db, expected


def full_disk_sweep(db: Path, expected: dict[int, tuple]) -> str:
    """Run the synthetic sweep onto a disk that fills up; check its message and kept rows."""
    line = error_line(run_cli("sweep", "--config", SYNTHETIC, "--db", str(db)))
    with RunStore(db) as store:
        run = store.get_run("latest")
        kept = tokens_by_row(db, run["id"])
        assert store._conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert line == (f"error: the disk holding run log {db} is full (database or disk is full); "
                    "free some space or choose a path on another disk; the rows stored before "
                    f"stay: `sampler sweep --resume {run['id']}` finishes the run")
    assert run["status"] == "running" and 0 < len(kept) < 80
    assert kept == {row: expected[row] for row in kept}  # whole rows, as drawn uninterrupted
    return run["id"]


def resume_to_the_end(db: Path, run_id: str, expected: dict[int, tuple]) -> None:
    resumed = run_cli("sweep", "--resume", run_id, "--db", str(db))
    assert resumed.exit_code == 0, resumed.output
    assert tokens_by_row(db, run_id) == expected
    with RunStore(db) as store:
        assert store.get_run(run_id)["status"] == "complete"


def test_a_sweep_onto_a_full_disk_keeps_its_rows_and_resumes_to_the_same_tokens(
    tmp_path, disk_limit, reference
):
    full = tmp_path / "full.db"
    RunStore(full).close()  # an empty run log; then room for about a third of the sweep
    disk_limit((pages(reference[0]) - pages(full)) // 3)
    run_id = full_disk_sweep(full, reference[1])
    kept = len(tokens_by_row(full, run_id))

    resumed = run_cli("sweep", "--resume", run_id, "--db", str(full))  # another third: full
    assert error_line(resumed).startswith(f"error: the disk holding run log {full} is full")
    assert len(tokens_by_row(full, run_id)) > kept  # yet it stored what fitted

    disk_limit(None)  # space freed
    resume_to_the_end(full, run_id, reference[1])


@pytest.fixture
def small_disk(tmp_path):
    """A real 256 kB file system (tmpfs; mounting needs root), and a function to enlarge it."""
    folder = tmp_path / "small"
    folder.mkdir()
    mount = ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(folder)]
    if os.geteuid() != 0 or subprocess.run(mount, capture_output=True).returncode != 0:
        pytest.skip("a small tmpfs needs root and mount")

    def grow(size: str) -> None:
        subprocess.run(["mount", "-o", f"remount,size={size}", str(folder)], check=True)

    try:
        yield folder, grow
    finally:
        gc.collect()  # close the commands' stores before the file system goes
        subprocess.run(["umount", "-l", str(folder)], check=False)


def test_a_sweep_onto_a_real_full_disk_resumes_once_there_is_space(small_disk, reference):
    folder, grow = small_disk
    run_id = full_disk_sweep(folder / "runs.db", reference[1])
    grow("8m")
    resume_to_the_end(folder / "runs.db", run_id, reference[1])


def test_a_run_log_on_a_disk_with_no_byte_left_is_a_full_disk_not_damage(small_disk):
    folder, _ = small_disk
    db = folder / "runs.db"
    assert run_cli("generate", "--model", MARKOV, "--prompt", "kalo", "--max-new-tokens", "3",
                   "--db", str(db)).exit_code == 0
    gc.collect()  # closed: the next command must make the WAL index (-shm) anew
    with (folder / "filler").open("wb", buffering=0) as filler, contextlib.suppress(OSError):
        while True:
            filler.write(b"\0" * 4096)  # until ENOSPC: not one page is left
    for args in (["runs"], ["export", "latest"], ["report", "latest"]):
        line = error_line(run_cli(*args, "--db", str(db)))
        assert line.startswith(f"error: the disk holding run log {db} is full ("), line


def test_a_run_that_cannot_even_start_is_one_line_and_leaves_no_run(tmp_path, disk_limit):
    db = tmp_path / "runs.db"
    RunStore(db).close()
    disk_limit(0)  # a 20 kB config needs overflow pages
    with RunStore(db) as store, pytest.raises(RunLogFullError) as caught:
        store.create_run("sweep", "toy", "f00d", {"prompt": "x" * 20_000}, {}, 1)
    assert str(caught.value) == (
        f"the disk holding run log {db} is full (database or disk is full); "
        "free some space or choose a path on another disk")
    assert stored_counts(db) == (0, 0, 0)


# --- a server session is saved whole or not at all -----------------------------------------

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
        f"the disk holding run log {db} is full (database or disk is full); free some "
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
    assert response.status_code >= 400 and "is full (database or disk is full)" in response.text
    assert client.get("/api/runs").json() == [] and stored_counts(db) == (0, 0, 0)
