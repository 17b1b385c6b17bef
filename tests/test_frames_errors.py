"""Bad input to the DataFrames and `export --format parquet`: one `error:` line, exit 2, and
no file written (or an earlier export left byte for byte as it was)."""

import hashlib
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from test_bad_input import one_error_line, run_cli
from test_frames import sweep

pytest.importorskip("pandas")
pytest.importorskip("pyarrow")

from sampler.errors import InvalidInputError, RunLogDamagedError
from sampler.runlog.frames import iter_step_frames, steps_frame
from sampler.runlog.store import RunStore


def export(db: Path, run: str = "latest", *options: str):
    return run_cli("export", run, "--format", "parquet", "--db", str(db), *options)


def files_under(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("missing", ["pandas", "pyarrow"])
def test_missing_packages_say_how_to_install_them(tmp_path, missing):
    db = tmp_path / "log.db"
    sweep(db)
    # the package is made unimportable in a fresh process, as on an install without the extra
    code = (f"import sys\nsys.modules[{missing!r}] = None\n"
            "from sampler.cli import cli\ncli.main(args=sys.argv[1:], prog_name='sampler')\n")
    done = subprocess.run(
        [sys.executable, "-c", code, "export", "latest", "--format", "parquet", "--out", "out",
         "--db", str(db)], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr == (f"error: DataFrames and Parquet need pandas and pyarrow ({missing} "
                           "is not installed); install them with: pip install -e '.[data]'\n")
    assert not (tmp_path / "out").exists()


def test_unknown_run(tmp_path):
    db = tmp_path / "log.db"
    sweep(db)
    one_error_line(export(db, "19990101", "--out", "out"), "run '19990101' is not in DB")
    assert not (tmp_path / "out").exists()


def test_output_folder_that_is_a_file(tmp_path):
    db = tmp_path / "log.db"
    sweep(db)
    (tmp_path / "out").write_text("notes")
    one_error_line(export(db, "latest", "--out", "out"), "export folder 'out' is a file")
    assert (tmp_path / "out").read_text() == "notes"


def test_parquet_needs_a_folder(tmp_path):
    db = tmp_path / "log.db"
    sweep(db)
    one_error_line(export(db, "latest"), "--format parquet writes two files: give --out DIR")


def test_out_is_refused_for_stream_formats(tmp_path):
    db = tmp_path / "log.db"
    sweep(db)
    result = run_cli("export", "latest", "--format", "csv", "--out", "out", "--db", str(db))
    one_error_line(result, "--out is for --format parquet; --format csv writes to stdout")
    assert result.stdout == "" and not (tmp_path / "out").exists()


DAMAGES = {
    # a step value that is not a number: found while the steps are streamed
    "step": ("UPDATE steps SET entropy_final = 'high' WHERE step = 2 AND row_index = 1",
             "column entropy_final holds 'high', not a double"),
    # a completion's token ids that are not JSON: found while the completions are read
    "completion": ("UPDATE completions SET token_ids = 'oops' WHERE row_index = 1",
                   "row 1 of run"),
}


@pytest.mark.parametrize("where", DAMAGES)
def test_damaged_run_log_leaves_no_new_folder(tmp_path, where):
    db = tmp_path / "log.db"
    sweep(db)
    statement, fragment = DAMAGES[where]
    with sqlite3.connect(db) as conn:
        conn.execute(statement)
    conn.close()
    line = one_error_line(export(db, "latest", "--out", "made/out"), "is damaged", fragment)
    assert str(db) in line
    assert not (tmp_path / "made").exists()  # the folders this export made are gone again


def test_damaged_run_log_keeps_an_earlier_export(tmp_path):
    db = tmp_path / "log.db"
    sweep(db)
    assert export(db, "latest", "--out", "out").exit_code == 0
    before = files_under(tmp_path / "out")
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE steps SET token = 2.5 WHERE step = 0 AND row_index = 2")
    conn.close()
    one_error_line(export(db, "latest", "--out", "out"), "column token holds 2.5, not a int64")
    assert files_under(tmp_path / "out") == before  # no temporary file left, none replaced


def test_library_errors(tmp_path):
    db = tmp_path / "log.db"
    sweep(db)
    with RunStore(db) as store:
        with pytest.raises(InvalidInputError, match="step column 'entropy' is unknown; choose"):
            steps_frame(store, "latest", ["row_index", "entropy"])
        with pytest.raises(InvalidInputError, match="chunk_rows 0 is not a positive"):
            next(iter_step_frames(store, "latest", chunk_rows=0))
        store._conn.execute("UPDATE steps SET surprisal = x'00' WHERE step = 0")
        with pytest.raises(RunLogDamagedError, match="column surprisal holds b'\\\\x00'"):
            steps_frame(store, "latest")


@pytest.mark.parametrize("command", ["export", "report"])
def test_a_folder_that_cannot_be_created_is_one_line(tmp_path, monkeypatch, command):
    """export's and report's --out under a file: mkdir fails; one line naming the folder and
    the system's reason, and the file is untouched."""
    monkeypatch.chdir(tmp_path)
    db = tmp_path / "log.db"
    sweep(db)
    (tmp_path / "notes").write_text("notes")
    if command == "export":
        result = export(db, "latest", "--out", "notes/sub")
    else:
        result = run_cli("report", "latest", "--format", "md", "--out", "notes/sub",
                         "--db", str(db))
    kind = "export" if command == "export" else "report"
    one_error_line(result, f"cannot create {kind} folder 'notes/sub'", "Not a directory")
    assert (tmp_path / "notes").read_text() == "notes"
