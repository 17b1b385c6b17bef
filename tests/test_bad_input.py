"""Adversarial input through the command line: one `error:` line, exit 2, nothing damaged.

Each test here reproduces a failure found by feeding the CLI bad input (a traceback, a hang, a
corrupted file); the fix made it one line naming the bad value and what is allowed.
"""

import hashlib
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from sampler.cli import cli
from sampler.runlog.store import RunStore

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


# --- arguments that are not UTF-8 ----------------------------------------------------------

BAD_UTF8 = "ka\udcfflo"  # what Python makes of the bytes b"ka\xfflo" in argv


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["generate", "--model", MARKOV, "--no-log", "--prompt", BAD_UTF8], "--prompt"),
        (["generate", "--model", MARKOV, "--no-log", "--prompt", "kalo", "--stop", BAD_UTF8],
         "--stop"),
        (["generate", "--model", MARKOV, "--no-log", f"--prompt={BAD_UTF8}"], "--prompt"),
        (["analyze", "--model", MARKOV, "--text", BAD_UTF8], "--text"),
        (["softmax", "--labels", BAD_UTF8 + ",b", "1", "2"], "--labels"),
    ],
)
def test_an_argument_that_is_not_utf8_is_named(args, named):
    result = run_cli(*args)
    one_error_line(result, named, "not valid UTF-8", r"ka\xfflo")


# --- integers too large for a C long or SQLite, and a negative limit -----------------------


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["generate", "--model", MARKOV, "--no-log", "--prompt", "kalo",
          "--top-k", "99999999999999999999"], "--top-k"),
        (["generate", "--model", MARKOV, "--prompt", "kalo", "--seed", "99999999999999999999"],
         "--seed"),
        (["runs", "--limit", "9999999999999999999999"], "--limit"),
        (["runs", "--limit", "-1"], "--limit"),
        (["runs", "--limit", "0"], "--limit"),
    ],
)
def test_out_of_range_integers(args, named):
    one_error_line(run_cli(*args), named)


# --- unwritable output ---------------------------------------------------------------------


def _logged_run(db: Path) -> None:
    result = run_cli("generate", "--model", MARKOV, "--prompt", "kalo", "-t", "0.5",
                     "--max-new-tokens", "3", "--db", str(db))
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("fmt", ["md", "html"])
def test_report_into_a_read_only_folder(tmp_path, fmt):
    _logged_run(tmp_path / "log.db")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)  # root ignores the bits, so they are what the check reads
    result = run_cli("report", "latest", "--db", str(tmp_path / "log.db"), "--format", fmt,
                     "--out", str(locked))
    one_error_line(result, str(locked), "not writable")
    assert list(locked.iterdir()) == []


def test_report_write_failure_is_one_line(tmp_path, monkeypatch):
    _logged_run(tmp_path / "log.db")

    def refuse(*_args, **_kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("tempfile.mkstemp", refuse)
    result = run_cli("report", "latest", "--db", str(tmp_path / "log.db"), "--format", "html",
                     "--out", str(tmp_path / "out"))
    one_error_line(result, "Permission denied", str(tmp_path / "out"))


def test_softmax_plot_into_a_read_only_folder(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    result = run_cli("softmax", "--plot", str(locked / "sheet.png"))
    one_error_line(result, str(locked), "not writable")
    assert result.stdout == "" and list(locked.iterdir()) == []


def test_softmax_plot_write_failure_is_one_line(tmp_path, monkeypatch):
    def refuse(*_args, **_kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("tempfile.mkstemp", refuse)
    result = run_cli("softmax", "--plot", str(tmp_path / "sheet.svg"))
    one_error_line(result, "Permission denied", "sheet.svg")


# --- extreme logits ------------------------------------------------------------------------


def test_extreme_logits_give_no_warning_and_finite_or_documented_log_softmax(recwarn):
    import json
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = run_cli("softmax", "1e308", "-1e308", "-t", "1", "-t", "4", "--json")
    assert result.exit_code == 0, result.output
    assert "Warning" not in result.stderr
    rows = {row["temperature"]: row for row in json.loads(result.output)["rows"]}
    assert rows[1.0]["log_probs"] == [0.0, None]  # -2e308 is below float64: -inf, documented
    assert rows[4.0]["log_probs"] == [0.0, -5e307]  # representable: finite


# --- sizes that cannot fit, checked before a run is recorded -------------------------------


def _runs_in(db: Path) -> list[dict]:
    if not db.exists():
        return []
    with RunStore(db) as store:
        return store.list_runs()


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["generate", "--prompt", "kalo", "--samples", "20000", "--max-new-tokens", "1"],
         ["20000 rows", "at most 10000"]),
        (["generate", "--prompt", "kalo", "--max-new-tokens", "1000000000"],
         ["1000000000 token steps", "at most"]),
        (["sweep", "--prompt", "kalo", "--temperatures", "0.5,1", "--samples", "6000",
          "--max-new-tokens", "1"], ["12000 rows", "at most 10000"]),
        (["compare", "--prompt", "kalo", "--samples", "10000", "--max-new-tokens", "1"],
         ["10001 rows", "at most 10000"]),
        (["generate", "--prompt", "kalo " * 30_000], ["characters", "at most 100000"]),
    ],
    ids=["generate-rows", "generate-tokens", "sweep-rows", "compare-rows", "prompt-size"],
)
def test_a_run_too_large_is_refused_before_it_is_recorded(tmp_path, args, fragments):
    db = tmp_path / "log.db"
    result = run_cli(*args, "--model", MARKOV, "--db", str(db))
    one_error_line(result, *fragments)
    assert _runs_in(db) == []


def test_synthetic_sources_have_a_context_limit():
    from sampler import SamplingParams
    from sampler.errors import InvalidInputError
    from sampler.generation.generation_row import GenerationRow
    from sampler.generation.loop import generate
    from sampler.sources.synthetic_spec import parse_synthetic

    source = parse_synthetic(MARKOV)
    assert source.context_limit is not None
    with pytest.raises(InvalidInputError, match="exceeds the model's context"):
        generate(source, [GenerationRow("kalo", SamplingParams())], max_new_tokens=10**9)


def test_a_large_vocabulary_runs_in_batches_that_fit(monkeypatch):
    """100 rows of a 200,000-word vocabulary would need ~640 MB of working memory at once."""
    from sampler import SamplingParams
    from sampler.generation import loop
    from sampler.sources.synthetic_spec import parse_synthetic

    source = parse_synthetic("synthetic:zipf?vocab=200000")
    widths = []
    start = source.start
    monkeypatch.setattr(source, "start", lambda prompts: widths.append(len(prompts))
                        or start(prompts))
    rows = [loop.GenerationRow("kalo", SamplingParams(seed=1), sample) for sample in range(100)]
    completions = loop.generate(source, rows, max_new_tokens=2, stats=False)
    assert len(completions) == 100 and sum(widths) == 100
    assert max(widths) * source.vocab_size * loop.BYTES_PER_LOGIT <= loop.LOGITS_BUDGET_BYTES


def test_a_sweep_prompt_over_the_context_is_refused_before_it_is_recorded(tmp_path):
    db = tmp_path / "log.db"
    long_prompt = "kalo " * 9000  # more words than the synthetic context
    result = run_cli("sweep", "--model", MARKOV, "--prompt", long_prompt, "--temperatures",
                     "0.5", "--samples", "1", "--max-new-tokens", "2", "--db", str(db))
    one_error_line(result, "exceeds the model's context")
    assert _runs_in(db) == []


def test_verify_caps_draws_with_a_reason():
    one_error_line(run_cli("verify", "--draws", "100000000"), "draws=100000000", "at most 10000000")


def test_verify_shows_progress_on_stderr():
    result = run_cli("verify", "--draws", "1000", "--case", "cheat-sheet τ=1")
    assert result.exit_code == 0, result.output
    assert "draws" in result.stderr and "ok" in result.stdout


def test_ctrl_c_while_the_command_line_is_still_importing_is_aborted_not_a_traceback():
    # A KeyboardInterrupt raised inside `import sampler.cli`, as a Ctrl-C in the first tenths
    # of a second would: the console script must say "aborted" and exit 130.
    code = (
        "import builtins, sys\n"
        "real = builtins.__import__\n"
        "def interrupting(name, *args, **kwargs):\n"
        "    if name == 'sampler.cli':\n"
        "        raise KeyboardInterrupt\n"
        "    return real(name, *args, **kwargs)\n"
        "builtins.__import__ = interrupting\n"
        "sys.argv = ['sampler', '--version']\n"
        "import sampler_entry\n"
        "sampler_entry.main()\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert (done.returncode, done.stderr, done.stdout) == (130, "aborted\n", "")
