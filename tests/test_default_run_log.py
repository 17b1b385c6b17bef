"""The run log used when no ``--db`` is given: ``runs/sampler.db``, or ``$SAMPLER_DB``."""

from pathlib import Path

import pytest
from test_store import new_run

from sampler.errors import InvalidInputError
from sampler.runlog.store import RunStore, default_db_path


def test_open_default_creates_only_runs_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SAMPLER_DB", raising=False)
    assert default_db_path() == Path("runs/sampler.db")
    with pytest.raises(InvalidInputError, match="folder runs for database"):
        RunStore("runs/sampler.db")
    with RunStore.open_default() as opened:
        new_run(opened)
    assert (tmp_path / "runs" / "sampler.db").is_file()


def test_sampler_db_names_the_default_run_log_wherever_the_command_runs(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from sampler.cli import cli

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


def test_sampler_db_in_a_missing_folder_tree_is_one_error_line(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from sampler.cli import cli

    monkeypatch.setenv("SAMPLER_DB", str(tmp_path / "no" / "such" / "x.db"))
    result = CliRunner().invoke(cli, ["runs"])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "SAMPLER_DB" in lines[0], lines
    assert not (tmp_path / "no").exists()
