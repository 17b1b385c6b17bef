"""The run log used when no ``--db`` is given: ``$SAMPLER_DB``, else one per user under
``$XDG_DATA_HOME`` (``~/.local/share``); ``--db`` wins over both. Commands that only read never
create a log."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import data_home_of
from test_store import new_run

from sampler.cli import cli
from sampler.runlog.store import RunStore, default_db_path

MARKOV = "synthetic:markov?vocab=50&sharpness=2&seed=1"
GENERATE = ["generate", "--model", MARKOV, "--prompt", "kalo", "--max-new-tokens", "2"]


def one_error_line(result) -> str:
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    return lines[0]


def test_the_default_is_per_user_under_xdg_data_home(tmp_path):
    expected = data_home_of(tmp_path) / "sampler" / "sampler.db"  # set by conftest
    assert default_db_path() == expected
    assert CliRunner().invoke(cli, GENERATE).exit_code == 0
    assert expected.is_file()  # its folders were made
    listed = CliRunner().invoke(cli, ["runs"])
    assert listed.exit_code == 0 and "generate" in listed.output, listed.output
    assert list(tmp_path.iterdir()) == []  # nothing in the working folder


def test_without_xdg_data_home_the_default_is_under_home(tmp_path, monkeypatch):
    monkeypatch.delenv("XDG_DATA_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_db_path() == tmp_path / "home" / ".local" / "share" / "sampler" / "sampler.db"


def test_the_same_log_from_any_folder_in_real_processes(tmp_path):
    """Two folders, one log: what `generate` records in one, `runs` lists in the other."""
    env = dict(os.environ)
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    second.mkdir()
    command = [sys.executable, "-m", "sampler"]
    made = subprocess.run([*command, *GENERATE, "--json"], cwd=first, env=env,
                          capture_output=True, text=True, timeout=120)
    assert made.returncode == 0, made.stderr
    import json

    run_id = json.loads(made.stdout)["run_id"]
    listed = subprocess.run([*command, "runs"], cwd=second, env=env,
                            capture_output=True, text=True, timeout=120)
    assert listed.returncode == 0 and run_id in listed.stdout, listed
    assert list(first.iterdir()) == [] and list(second.iterdir()) == []


def test_sampler_db_names_the_default_run_log_wherever_the_command_runs(tmp_path, monkeypatch):
    elsewhere = tmp_path / "work"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    log = tmp_path / "logs" / "mine.db"
    monkeypatch.setenv("SAMPLER_DB", str(log))
    assert default_db_path() == log
    with RunStore.open_default() as opened:
        run = new_run(opened)
    listed = CliRunner().invoke(cli, ["runs"])
    assert listed.exit_code == 0, listed.output
    assert run in listed.output
    assert not (elsewhere / "runs").exists()  # nothing made in the working folder
    assert not data_home_of(tmp_path).exists()  # SAMPLER_DB wins over the per-user default


def test_db_wins_over_sampler_db(tmp_path, monkeypatch):
    monkeypatch.setenv("SAMPLER_DB", str(tmp_path / "env.db"))
    given = tmp_path / "given.db"
    assert CliRunner().invoke(cli, [*GENERATE, "--db", str(given)]).exit_code == 0
    assert given.is_file() and not (tmp_path / "env.db").exists()


def test_sampler_db_in_a_missing_folder_tree_is_one_error_line(tmp_path, monkeypatch):
    monkeypatch.setenv("SAMPLER_DB", str(tmp_path / "no" / "such" / "x.db"))
    line = one_error_line(CliRunner().invoke(cli, GENERATE))
    assert "SAMPLER_DB" in line, line
    assert not (tmp_path / "no").exists()


@pytest.mark.parametrize(
    "command", [["runs"], ["export", "latest"], ["report", "latest"],
                ["analyze", "--run", "latest"], ["sweep", "--resume", "latest"]]
)
@pytest.mark.parametrize("how", ["default", "SAMPLER_DB", "--db"])
def test_reading_a_missing_log_is_one_error_and_creates_nothing(tmp_path, monkeypatch,
                                                                command, how):
    target = {
        "default": data_home_of(tmp_path) / "sampler" / "sampler.db",
        "SAMPLER_DB": tmp_path / "env.db",
        "--db": tmp_path / "given.db",
    }[how]
    if how == "SAMPLER_DB":
        monkeypatch.setenv("SAMPLER_DB", str(target))
    extra = ["--db", str(target)] if how == "--db" else []
    line = one_error_line(CliRunner().invoke(cli, [*command, *extra]))
    assert line.startswith(f"error: no run log at {target}"), line
    assert list(tmp_path.iterdir()) == [] and not data_home_of(tmp_path).exists()


def test_a_missing_default_points_at_the_old_folder_log(tmp_path):
    """Before the per-user default, runs went to runs/sampler.db in the working folder."""
    Path("runs").mkdir()
    RunStore("runs/sampler.db").close()
    line = one_error_line(CliRunner().invoke(cli, ["runs"]))
    assert "pass --db runs/sampler.db" in line, line
    assert CliRunner().invoke(cli, ["runs", "--db", "runs/sampler.db"]).exit_code == 0


def test_serve_browses_the_default_run_log(tmp_path):
    """`sampler serve` with no --db shows the runs every other command recorded (a real
    process, the page's own GET /api/runs)."""
    pytest.importorskip("uvicorn")
    import json
    import socket
    import time
    import urllib.request

    env = dict(os.environ)
    command = [sys.executable, "-m", "sampler"]
    made = subprocess.run([*command, *GENERATE, "--json"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert made.returncode == 0, made.stderr
    run_id = json.loads(made.stdout)["run_id"]
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen([*command, "serve", "--model", MARKOV, "--port", str(port)],
                              cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True)
    try:
        line = server.stderr.readline()
        assert line.startswith("serving"), line
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/runs", timeout=10) as r:
                    listed = json.loads(r.read())
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        assert run_id in json.dumps(listed)
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert list(tmp_path.iterdir()) == []  # nothing in the working folder
