"""Output that cannot be written, or must not be: a full or closed standard output, a run id
that would lead a report out of its folder, JSON with infinities, plots of τ up to 1.8e308,
GGUF paths that are no file.

Each case was a traceback or a file written where the user did not ask, found by an
adversarial pass over the command line; now it is one `error:` line and exit 2 (or, where
the input was fine, a correct output).
"""

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from test_bad_input import MARKOV, _logged_run, _runs_in, one_error_line, run_cli

ROOT = Path(__file__).resolve().parents[1]


def run_sampler(*args: str, cwd: Path, **options) -> subprocess.CompletedProcess:
    """``python -m sampler ARGS`` in a real process (a real standard output)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "sampler", *args], cwd=cwd, env=env, stderr=subprocess.PIPE,
        text=True, check=False, **options,
    )


def single_error(done: subprocess.CompletedProcess, *fragments: str) -> None:
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1, (done.returncode, done.stderr)
    assert lines[0].startswith("error: "), lines
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


# --- standard output full, closed, or a closed pipe -------------------------------------------

needs_dev_full = pytest.mark.skipif(not Path("/dev/full").exists(), reason="no /dev/full")


@needs_dev_full
def test_softmax_into_a_full_device(tmp_path):
    with open("/dev/full", "w") as full:
        done = run_sampler("softmax", cwd=tmp_path, stdout=full)
    single_error(done, "cannot write the output to standard output", "No space left")


@needs_dev_full
def test_generate_streaming_into_a_full_device_keeps_the_run(tmp_path):
    db = tmp_path / "log.db"
    with open("/dev/full", "w") as full:
        done = run_sampler("generate", "--model", MARKOV, "--prompt", "kalo", "--max-new-tokens",
                           "20", "--db", str(db), cwd=tmp_path, stdout=full)
    single_error(done, "cannot write the output", "No space left", "run log is kept")
    # recorded before the first token; the row is stored when it ends (the text may fail first)
    (run,) = _runs_in(db)
    assert (run["status"], run["rows_done"]) in (("running", 0), ("complete", 1)), run


def test_export_with_standard_output_closed(tmp_path):
    _logged_run(tmp_path / "log.db")
    done = run_sampler("export", "latest", "--db", str(tmp_path / "log.db"), cwd=tmp_path,
                       preexec_fn=lambda: os.close(1))
    single_error(done, "standard output is closed", "> out.txt")


def test_export_into_a_pipe_closed_early(tmp_path):
    db = tmp_path / "log.db"
    result = run_cli("generate", "--model", MARKOV, "--prompt", "kalo", "--samples", "200",
                     "--max-new-tokens", "8", "--db", str(db))
    assert result.exit_code == 0, result.output
    reader, writer = os.pipe()
    os.close(reader)  # nobody reads: every write is EPIPE
    with os.fdopen(writer, "w") as pipe:
        done = run_sampler("export", "latest", "--db", str(db), cwd=tmp_path, stdout=pipe)
    single_error(done, "cannot write the output to standard output", "Broken pipe")


# --- a run id that leads out of the folder -----------------------------------------------------


def _rename_run(db: Path, new_id: str) -> None:
    with sqlite3.connect(db) as conn:
        (old,) = conn.execute("SELECT id FROM runs").fetchone()
        for table, column in (("runs", "id"), ("completions", "run_id"), ("steps", "run_id")):
            conn.execute(f"UPDATE {table} SET {column} = ? WHERE {column} = ?", (new_id, old))
    conn.close()


@pytest.mark.parametrize("fmt", ["md", "html"])
@pytest.mark.parametrize(
    ("run_id", "folder"),
    [("../../escaped-report", "escaped-report"), ("ABSOLUTE/report", "report"), ("..", "run")],
)
def test_a_run_id_never_leads_the_report_out_of_its_folder(
    tmp_path, monkeypatch, fmt, run_id, folder
):
    work = tmp_path / "deep" / "work"
    work.mkdir(parents=True)
    db = work / "log.db"
    _logged_run(db)
    # an absolute id, made under tmp_path so that a failing run writes nowhere else
    _rename_run(db, run_id.replace("ABSOLUTE", str(tmp_path / "absolute")))
    monkeypatch.chdir(work)
    before = set(tmp_path.rglob("*"))
    result = run_cli("report", "latest", "--db", str(db), "--format", fmt)
    assert result.exit_code == 0, result.output
    written = set(tmp_path.rglob("*")) - before
    reports = work / "reports"
    assert written and all(p == reports or reports in p.parents for p in written), written
    (made,) = reports.iterdir()
    assert made.name.endswith(folder), made


# --- JSON output with infinities -----------------------------------------------------------


def test_generate_json_at_infinite_temperature_is_valid_json():
    result = run_cli("generate", "--model", MARKOV, "--no-log", "--prompt", "kalo",
                     "--max-new-tokens", "2", "-t", "inf", "--json", "--seed", "1")
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout, parse_constant=pytest.fail)  # no Infinity, no NaN
    assert record["temperature"] is None and record["params"]["temperature"] is None


def test_export_jsonl_at_infinite_temperature_is_valid_json(tmp_path):
    db = tmp_path / "log.db"
    result = run_cli("generate", "--model", MARKOV, "--prompt", "kalo", "--max-new-tokens", "2",
                     "-t", "inf", "-t", "0.5", "--db", str(db))
    assert result.exit_code == 0, result.output
    result = run_cli("export", "latest", "--db", str(db))
    records = [json.loads(line, parse_constant=pytest.fail) for line in result.stdout.splitlines()]
    assert sorted(r["temperature"] is None for r in records) == [False, True]


def test_json_values_match_softmax_json():
    from sampler.json_values import json_safe

    assert json_safe({"a": [1.0, float("inf"), float("nan")], "b": (2, "x")}) == {
        "a": [1.0, None, None], "b": [2, "x"]}


# --- a report of temperatures up to 1.8e308 ----------------------------------------------------


@pytest.mark.parametrize("fmt", ["html", "md"])
def test_report_of_huge_temperatures(tmp_path, fmt):
    db = tmp_path / "log.db"
    result = run_cli("generate", "--model", MARKOV, "--prompt", "kalo", "--max-new-tokens", "3",
                     "-t", "0.5", "-t", "1e308", "-t", "1.7e308", "-t", "inf", "--db", str(db))
    assert result.exit_code == 0, result.output
    result = run_cli("report", "latest", "--db", str(db), "--format", fmt, "--out",
                     str(tmp_path / "out"))
    assert result.exit_code == 0, (result.output, result.exception)
    assert (tmp_path / "out" / f"report.{fmt}").stat().st_size > 0


def test_huge_temperatures_are_evenly_spaced_in_plots():
    from sampler.report.run_plots import _positions

    assert _positions([0.0, 0.5, 1.0, float("inf")]) == [0.0, 0.5, 1.0, 1.5]
    assert _positions([1e308, 0.5, float("inf"), 1.7e308]) == [1.0, 0.0, 3.0, 2.0]


# --- GGUF paths that are no file --------------------------------------------------------------


def _gguf_error(path: Path, *fragments: str) -> None:
    result = run_cli("generate", "--model", str(path), "--prompt", "kalo", "--no-log")
    one_error_line(result, str(path), *fragments)


def test_a_gguf_path_that_is_a_folder(tmp_path):
    (tmp_path / "model.gguf").mkdir()
    _gguf_error(tmp_path / "model.gguf", "is a folder")


def test_a_gguf_path_that_is_a_fifo(tmp_path):
    os.mkfifo(tmp_path / "model.gguf")  # opening it would wait for a writer for ever
    _gguf_error(tmp_path / "model.gguf", "is a FIFO")


def test_a_gguf_path_that_is_a_symlink_loop(tmp_path):
    (tmp_path / "model.gguf").symlink_to(tmp_path / "model.gguf")
    _gguf_error(tmp_path / "model.gguf", "loop of symbolic links")


def test_a_gguf_symlink_to_nothing(tmp_path):
    (tmp_path / "model.gguf").symlink_to(tmp_path / "gone.gguf")
    _gguf_error(tmp_path / "model.gguf", "symbolic link to", "gone.gguf", "does not exist")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a file whatever its mode")
def test_an_unreadable_gguf(tmp_path):
    model = tmp_path / "model.gguf"
    model.write_bytes(b"GGUF" + bytes(60))
    model.chmod(0)
    _gguf_error(model, "cannot read GGUF file", "Permission denied")


def test_an_unreadable_gguf_simulated(tmp_path, monkeypatch):
    model = tmp_path / "model.gguf"
    model.write_bytes(b"GGUF" + bytes(60))

    def refuse(self, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "open", refuse)
    _gguf_error(model, "cannot read GGUF file", "Permission denied")
