"""A damaged run log, or one another process keeps locked: one `error:` line naming the file.

Each case was a traceback before (sqlite3.OperationalError, json.JSONDecodeError, TypeError);
the oracle is the file itself: the message names it and what is wrong with it, and a refused
command leaves it byte for byte as it was.
"""

import gc
import hashlib
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from test_bad_input import one_error_line, run_cli

from sampler.errors import RunLogDamagedError, RunLogLockedError
from sampler.runlog import connection
from sampler.runlog.store import RunStore

MARKOV = "synthetic:markov?vocab=300&sharpness=2.0&seed=1"
SWEEP = ["sweep", "--model", MARKOV, "--prompt", "kalo", "--temperatures", "0.5,1",
         "--samples", "2", "--max-new-tokens", "4", "--seed", "3"]
GENERATE = ["generate", "--model", MARKOV, "--prompt", "kalo", "--max-new-tokens", "3"]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def logged_run(db: Path, delete_rows: tuple[int, ...] = ()) -> str:
    """A 4-row sweep in ``db`` (rows ``delete_rows`` removed, as an interrupted one), its id."""
    result = run_cli(*SWEEP, "--db", str(db))
    assert result.exit_code == 0, result.output
    gc.collect()  # the command's store, held in a reference cycle, closes now, not mid-test
    with RunStore(db) as store:
        run_id = store.get_run("latest")["id"]
        for row in delete_rows:
            store._conn.execute("DELETE FROM completions WHERE row_index = ?", (row,))
    return run_id


def damage(db: Path, *statements: str) -> None:
    conn = sqlite3.connect(db)
    with conn:
        for statement in statements:
            conn.execute(statement)
    conn.close()  # the last connection: the WAL is written back, the file holds the damage


DAMAGES = {
    "dropped-table": ("DROP TABLE steps",),
    "dropped-column": ("ALTER TABLE completions DROP COLUMN token_ids",),
    "config-not-json": ("UPDATE runs SET config = '{\"seed\": 3,'",),
    "config-not-object": ("UPDATE runs SET config = '[1, 2]'",),
    "null-token-ids": ("UPDATE completions SET token_ids = NULL WHERE row_index = 1",),
    "text-token-ids": ("UPDATE completions SET token_ids = '[\"a\"]' WHERE row_index = 1",),
}
# What each command says, per damage; None: the command reads nothing damaged and succeeds.
TABLE = "table steps is missing"
COLUMN = "table completions lacks column token_ids"
CONFIG = "run {run}'s config is '{{\"seed\": 3,', not JSON"
CONFIG_LIST = "run {run}'s config is [1, 2], not a JSON dict"
NULL_IDS = "row 1 of run {run}: token_ids is NULL, not JSON"
TEXT_IDS = 'row 1 of run {run}: token_ids ["a"] are not all integers'
EXPECTED = {
    "runs": [TABLE, COLUMN, None, None, None, None],
    "export": [TABLE, COLUMN, None, None, NULL_IDS, TEXT_IDS],
    "export-csv": [TABLE, COLUMN, None, None, None, None],
    "report": [TABLE, COLUMN, CONFIG, CONFIG_LIST, NULL_IDS, TEXT_IDS],
    "generate": [TABLE, COLUMN, None, None, None, None],
    "resume": [TABLE, COLUMN, CONFIG, CONFIG_LIST, NULL_IDS, TEXT_IDS],
}


def command(name: str, run_id: str) -> list[str]:
    return {
        "runs": ["runs"],
        "export": ["export", run_id],
        "export-csv": ["export", run_id, "--format", "csv"],
        "report": ["report", run_id],
        "generate": GENERATE,
        "resume": ["sweep", "--resume", run_id],
    }[name]


@pytest.mark.parametrize("name", list(EXPECTED))
@pytest.mark.parametrize("damaged", list(DAMAGES))
def test_a_damaged_run_log_is_one_line_naming_the_file_and_the_damage(tmp_path, damaged, name):
    db = tmp_path / "runs.db"
    run_id = logged_run(db, delete_rows=(3,))  # a row left for --resume to generate
    damage(db, *DAMAGES[damaged])
    before = digest(db)
    result = run_cli(*command(name, run_id), "--db", str(db))
    expected = EXPECTED[name][list(DAMAGES).index(damaged)]
    if expected is None:
        assert result.exit_code == 0, (result.output, result.exception)
        return
    one_error_line(result, f"run log {db} is damaged: {expected.format(run=run_id)}",
                   "it was left as it is")
    assert digest(db) == before


def test_a_step_without_its_token_is_named(tmp_path):
    db = tmp_path / "runs.db"
    run_id = logged_run(db)
    damage(db, "UPDATE steps SET token = NULL WHERE row_index = 2 AND step = 1")
    with RunStore(db) as store, pytest.raises(RunLogDamagedError) as caught:
        store.completions(run_id)
    assert str(caught.value).startswith(
        f"run log {db} is damaged: step 1 of row 2 of run {run_id} has token None, not a token id"
    )


def test_a_migration_onto_a_dropped_table_is_damage_and_rolled_back(tmp_path):
    db = tmp_path / "runs.db"
    logged_run(db)
    damage(db, "DROP TABLE steps", "DELETE FROM schema_migrations WHERE name = '007_dry_telemetry'")
    before = digest(db)
    message = f"run log {db} is damaged: table steps is missing"
    with pytest.raises(RunLogDamagedError, match=message):
        RunStore(db)
    assert digest(db) == before


# --- a lock another process holds ----------------------------------------------------------

HOLDER = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
if sys.argv[2] == "exclusive":  # no reader gets in either (the sqlite3 shell's .dump does this)
    conn.execute("PRAGMA locking_mode = EXCLUSIVE")
    conn.execute("BEGIN EXCLUSIVE")
else:  # an ordinary writer in the middle of a long transaction
    conn.execute("BEGIN IMMEDIATE")
conn.execute("UPDATE runs SET model = model")
print("locked", flush=True)
sys.stdin.read()  # until the test closes stdin
conn.execute("ROLLBACK")
"""


@pytest.fixture
def short_wait(monkeypatch):
    # the bounded wait is 10 s in use; a test need not sit through it to see what follows
    monkeypatch.setattr(connection, "BUSY_TIMEOUT_S", 0.3)


def hold_lock(db: Path, how: str) -> subprocess.Popen:
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(db), how], text=True,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert holder.stdout.readline().strip() == "locked"
    return holder


@pytest.mark.parametrize(
    ("how", "names"),
    [("exclusive", ["runs", "export", "report", "generate", "resume", "sweep"]),
     ("writer", ["generate", "resume", "sweep"])],  # readers read past an ordinary writer
)
def test_a_locked_run_log_says_another_process_is_writing_to_it(tmp_path, short_wait, how, names):
    db = tmp_path / "runs.db"
    run_id = logged_run(db, delete_rows=(3,))
    before = digest(db)
    holder = hold_lock(db, how)
    try:
        for name in names:
            args = SWEEP if name == "sweep" else command(name, run_id)
            result = run_cli(*args, "--db", str(db))
            line = result.stderr.strip().splitlines()[-1]
            assert result.exit_code == 2 and "Traceback" not in result.stderr, result.stderr
            assert line.startswith(f"error: run log {db} is locked: another process is writing "
                                   "to it and kept it locked for 0.3 s"), (name, line)
    finally:
        holder.stdin.close()
        assert holder.wait(timeout=60) == 0
    assert digest(db) == before
    resumed = run_cli("sweep", "--resume", run_id, "--db", str(db))  # nothing was lost
    assert resumed.exit_code == 0, resumed.output
    with RunStore(db) as store:
        assert store.get_run(run_id)["status"] == "complete" and store.done_rows(run_id) == {
            0, 1, 2, 3}


def test_the_locked_error_is_a_library_type(tmp_path, short_wait):
    db = tmp_path / "runs.db"
    logged_run(db)
    holder = hold_lock(db, "exclusive")
    try:
        with pytest.raises(RunLogLockedError, match=str(db)):
            RunStore(db)
    finally:
        holder.stdin.close()
        holder.wait(timeout=60)
