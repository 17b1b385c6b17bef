"""Adversarial input through the command line: one `error:` line, exit 2, nothing damaged.

Each test here reproduces a failure found by feeding the CLI bad input (a traceback, a hang, a
corrupted file); the fix made it one line naming the bad value and what is allowed.
"""

import hashlib
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from sampler.cli import cli

MARKOV = "synthetic:markov?vocab=300&sharpness=2.0&seed=1"


def run_cli(*args: str):
    return CliRunner().invoke(cli, list(args))


def one_error_line(result, *fragments: str) -> str:
    """The single `error:` line of a failed command, checked to contain ``fragments``."""
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --- foreign and damaged databases (nothing may change) -------------------------------------


def _malformed(path: Path) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE t (x)")
        conn.executemany("INSERT INTO t VALUES (?)", [(i,) for i in range(1000)])
    data = path.read_bytes()
    path.write_bytes(data[:100] + b"\x5a" * (len(data) - 100))  # valid header, garbage after


def _foreign(table: str):
    def make(path: Path) -> None:
        with sqlite3.connect(path) as conn:
            if table == "runs":
                conn.execute("CREATE TABLE runs (id INTEGER PRIMARY KEY, name TEXT)")
                conn.execute("INSERT INTO runs VALUES (1, 'theirs')")
            else:
                conn.execute("CREATE TABLE schema_migrations (version VARCHAR PRIMARY KEY)")
                conn.execute("INSERT INTO schema_migrations VALUES ('20200101000000')")
        conn.close()

    return make


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (_malformed, "is damaged"),
        (_foreign("runs"), "another application's"),
        (_foreign("schema_migrations"), "another application's"),
    ],
    ids=["malformed", "foreign-runs", "foreign-schema_migrations"],
)
@pytest.mark.parametrize("command", [["runs"], ["export", "latest"], ["SWEEP"]])
def test_a_foreign_or_damaged_database_is_refused_untouched(tmp_path, make, message, command):
    db = tmp_path / "other.db"
    make(db)
    before = digest(db)
    if command == ["SWEEP"]:
        command = ["sweep", "--model", MARKOV, "--prompt", "kalo", "--temperatures", "0.5",
                   "--samples", "1", "--max-new-tokens", "3"]
    result = run_cli(*command, "--db", str(db))
    one_error_line(result, str(db), message)
    assert digest(db) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.db"]  # no -wal, no -shm


def test_dev_null_as_database(tmp_path):
    result = run_cli("runs", "--db", "/dev/null")
    one_error_line(result, "/dev/null", "not a regular file")
