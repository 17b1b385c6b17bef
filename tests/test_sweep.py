"""`sampler sweep`, `compare`, `runs`, `export`, `report`, `analyze` on the synthetic source.

Synthetic Markov logits are a pure function of the context, so every expectation here is
exact; the same code paths serve the real model.
"""

import csv
import io
import json
import math
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.special
import scipy.stats
from click.testing import CliRunner
from conftest import kill_once
from test_summary import hand_summary

from sampler.cli import cli
from sampler.runlog.schema import CSV_OF_ROW_JSON
from sampler.runlog.store import RunStore
from sampler.sources.synthetic_spec import parse_synthetic

MARKOV = "synthetic:markov?vocab=300&sharpness=2.0&seed=1"


def sweep_args(db: Path, *extra: str) -> list[str]:
    return ["sweep", "--model", MARKOV, "--prompt", "kalo mesu", "--prompt", "puzo hena",
            "--temperatures", "0,0.7,1.5", "--samples", "3", "--max-new-tokens", "12",
            "--seed", "5", "--db", str(db), *extra]


def run_cli(*args: str):
    return CliRunner().invoke(cli, list(args))


def rows_of(db: Path, run_id: str) -> list[tuple]:
    with RunStore(db) as store:
        return [(c["row_index"], c["temperature"], c["sample"], tuple(c["token_ids"]), c["text"],
                 tuple(s["token"] for s in c["steps"])) for c in store.completions(run_id)]


def test_sweep_logs_every_row_and_prints_the_table(tmp_path):
    result = run_cli(*sweep_args(tmp_path / "log.db"))
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[1].split()[:3] == ["τ", "entropy", "distinct-2"]
    assert [line.split()[0] for line in lines[2:5]] == ["0", "0.7", "1.5"]
    run_id = lines[-1].split()[2]
    stored = rows_of(tmp_path / "log.db", run_id)
    assert len(stored) == 2 * 3 * 3 and [r[0] for r in stored] == list(range(18))
    with RunStore(tmp_path / "log.db") as store:
        run = store.get_run(run_id)
        assert run["status"] == "complete" and run["config"]["seed"] == 5
        assert run["versions"]["numpy"] and run["fingerprint"] == run["model"]


def test_config_file_and_overrides(tmp_path):
    config = tmp_path / "sweep.toml"
    config.write_text(f'model = "{MARKOV}"\nprompts = ["kalo"]\ntemperatures = [0.5, 1.0]\n'
                      "samples = 2\nmax_new_tokens = 5\n")
    result = run_cli("sweep", "--config", str(config), "--samples", "3", "--db",
                     str(tmp_path / "log.db"))
    assert result.exit_code == 0, result.output
    with RunStore(tmp_path / "log.db") as store:
        run = store.get_run("latest")
        assert run["config"]["samples"] == 3 and run["config"]["temperatures"] == [0.5, 1.0]
        assert run["total_rows"] == 6


def test_resume_after_sigkill_ends_with_the_uninterrupted_rows(tmp_path):
    reference = tmp_path / "reference.db"
    # Many one-row batches: the sweep takes seconds, so the kill lands in its middle.
    extra = ["--batch-size", "1", "--max-new-tokens", "40", "--samples", "20"]
    assert run_cli(*sweep_args(reference, *extra)).exit_code == 0
    with RunStore(reference) as store:
        expected = rows_of(reference, store.get_run("latest")["id"])

    killed = tmp_path / "killed.db"
    command = [sys.executable, "-m", "sampler", *sweep_args(killed, *extra)]
    kill_once(command, killed, "SELECT COUNT(*) FROM completions", 4)
    with RunStore(killed) as store:
        run = store.get_run("latest")
        partial = len(store.done_rows(run["id"]))
    assert 0 < partial < len(expected), "the kill should land in the middle of the sweep"
    assert run["status"] == "running"

    resumed = run_cli("sweep", "--resume", run["id"], "--db", str(killed))
    assert resumed.exit_code == 0, resumed.output
    after = rows_of(killed, run["id"])
    assert [r[1:] for r in after] == [r[1:] for r in expected]  # same rows, same tokens
    assert len({r[0] for r in after}) == len(after)  # no duplicates
    with RunStore(killed) as store:
        assert store.get_run(run["id"])["status"] == "complete"


def test_compare_reports_divergence_and_agreement(tmp_path):
    result = run_cli("compare", "--model", MARKOV, "--prompt", "kalo mesu", "-t", "1.2",
                     "--samples", "3", "--max-new-tokens", "15", "--db", str(tmp_path / "c.db"))
    assert result.exit_code == 0, result.output
    assert result.output.startswith("greedy (τ=0)")
    assert result.output.count("── sample") == 3
    assert "leaves the greedy path at step" in result.output and "were the argmax" in result.output
    with RunStore(tmp_path / "c.db") as store:
        run = store.get_run("latest")
        # greedy at 0 and sample i at 1 + i: the run holds exactly its planned rows
        assert run["kind"] == "compare" and store.done_rows(run["id"]) == {0, 1, 2, 3}
        assert (run["status"], run["total_rows"]) == ("complete", 4)


def _report_cells(output: str) -> dict[str, dict[str, float]]:
    """The report's terminal table as {τ cell: {column title: number}}.

    Cells are separated by two or more spaces (titles like "H final" hold one); each "±"
    column is named after the column before it, so the lookup is by title, not position.
    """
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("τ"))
    titles = []
    for title in re.split(r" {2,}", lines[start].strip()):
        titles.append(f"{titles[-1]} ±" if title == "±" else title)
    table = {}
    for line in lines[start + 1 :]:
        if not line.strip():
            break
        cells = re.split(r" {2,}", line.strip())
        cells[1] = cells[1].split()[0]  # "12 (3 distinct)": the rows
        # "–" is an undefined value (NaN)
        table[cells[0]] = {
            t: math.nan if c == "–" else float(c)
            for t, c in zip(titles[1:], cells[1:], strict=True)
        }
    return table


def test_runs_export_and_report(tmp_path):
    db = tmp_path / "log.db"
    assert run_cli(*sweep_args(db)).exit_code == 0
    listing = run_cli("runs", "--db", str(db))
    assert "complete" in listing.output and "18/18" in listing.output
    # The oracle: the run log read with plain sqlite3, no sampler code.
    with sqlite3.connect(db) as conn:
        conn.row_factory = sqlite3.Row
        run_id = conn.execute("SELECT id FROM runs").fetchone()["id"]
        completions = {
            r["row_index"]: dict(r)
            for r in conn.execute("SELECT * FROM completions WHERE run_id = ?", (run_id,))
        }
        steps = {
            (r["row_index"], r["step"]): dict(r)
            for r in conn.execute("SELECT * FROM steps WHERE run_id = ?", (run_id,))
        }
    assert len(completions) == 18
    # A row that ends at EOS keeps the EOS draw as its last step (its statistics are those of a
    # real sampling step) but not in token_ids; EOS is the Markov source's last id (docs/models.md).
    eos = 299
    for row, completion in completions.items():
        tokens = json.loads(completion["token_ids"])
        ended = [eos] if completion["finish_reason"] == "eos" else []
        count = sum(1 for r, _ in steps if r == row)
        assert [steps[row, j]["token"] for j in range(count)] == tokens + ended
    assert any(c["finish_reason"] == "eos" for c in completions.values())

    csv_out = run_cli("export", "latest", "--format", "csv", "--db", str(db))
    assert csv_out.exit_code == 0, csv_out.output
    csv_rows = list(csv.DictReader(io.StringIO(csv_out.stdout)))
    assert len(csv_rows) == len(steps)  # one CSV line per stored step
    assert {(int(r["row_index"]), int(r["step"])) for r in csv_rows} == set(steps)
    for record in csv_rows:
        key = (int(record["row_index"]), int(record["step"]))
        stored = steps[key] | completions[key[0]]
        for column, text in record.items():
            if column in CSV_OF_ROW_JSON:  # a sweep bans no phrase, records no logprobs
                assert text == "", column  # (those columns: tests/test_export_columns.py)
                continue
            value = stored[column]
            if value is None:  # a stage's telemetry where the stage was off: an empty cell
                assert text == "", column
                continue
            # Python's csv writes repr(float): a float round-trips exactly.
            assert (text if isinstance(value, str) else type(value)(text)) == value, column

    jsonl = run_cli("export", "latest", "--format", "jsonl", "--db", str(db))
    records = [json.loads(line) for line in jsonl.stdout.splitlines()]
    assert sorted(r["row_index"] for r in records) == sorted(completions)
    for record in records:
        stored = completions[record["row_index"]]
        assert record["run_id"] == run_id
        assert record["token_ids"] == json.loads(stored["token_ids"])
        ended = [eos] if record["finish_reason"] == "eos" else []
        assert [s["token"] for s in record["steps"]] == record["token_ids"] + ended
        for column in ("prompt", "sample", "temperature", "mode", "text", "finish_reason"):
            assert record[column] == stored[column], column
        for step in record["steps"]:
            for column, value in step.items():
                assert value == steps[record["row_index"], step["step"]][column], column

    # The report's numbers against docs/experiments.md's definitions applied to the exported rows.
    table = run_cli("report", "latest", "--db", str(db))
    assert table.exit_code == 0, table.output
    cells = _report_cells(table.output)
    titles = {
        "length": "length", "entropy_final": "H final",
        "entropy_base": "H base", "surprisal": "surprisal",
        "ppl_base": "PPL base", "distinct_1": "dist-1", "distinct_2": "dist-2",
        "distinct_3": "dist-3", "self_bleu4": "self-BLEU4", "repetition": "rep-4",
        "greedy_agreement": "greedy agr.",
    }
    # nltk scores an empty hypothesis 0 where the report leaves it out (NaN): none here.
    assert all(record["token_ids"] for record in records)
    hand = hand_summary(records)
    assert list(cells) == ["0 (greedy)", "0.7", "1.5"]
    for label, temperature in zip(cells, (0.0, 0.7, 1.5), strict=True):
        assert cells[label]["rows"] == hand[temperature]["rows"] == 6
        for key, title in titles.items():
            # printed to 3 decimals (length to 1): within half a unit of the last digit
            half = 0.05 if key == "length" else 0.0005
            if math.isnan(hand[temperature][key]):
                assert math.isnan(cells[label][title]), (label, key)
                continue
            assert abs(cells[label][title] - hand[temperature][key]) <= half + 1e-9, (label, key)
    # Greedy rows: one-hot draws, and three identical samples per prompt, which count once:
    # one completion per prompt has no self-BLEU.
    assert hand[0.0]["entropy_final"] == 0 and math.isnan(hand[0.0]["self_bleu4"])

    out = tmp_path / "out"
    page = run_cli("report", "latest", "--format", "html", "--out", str(out), "--db", str(db))
    assert page.exit_code == 0, page.output
    assert [p.name for p in out.iterdir()] == ["report.html"]


def _teacher_forced_reference(context: list[int], targets: list[int], temperatures):
    """Entropy and surprisal [position, τ] with scipy, from the source's logits after each
    prefix (a fresh start per prefix: no session, no sampler math)."""
    source = parse_synthetic(MARKOV)
    entropy, surprisal = [], []
    for position, target in enumerate(targets):
        logits, _ = source.start([context + targets[:position]])
        x = logits[0].astype(np.float64)
        entropy.append([scipy.stats.entropy(scipy.special.softmax(x / t)) for t in temperatures])
        surprisal.append([-scipy.special.log_softmax(x / t)[target] for t in temperatures])
    return np.array(entropy), np.array(surprisal)


def test_analyze_text_and_run(tmp_path):
    db = tmp_path / "log.db"
    assert run_cli(*sweep_args(db)).exit_code == 0
    text = run_cli("analyze", "--model", MARKOV, "--text", "kalo mesu puzo hena",
                   "--temperatures", "0.5,1,2", "--json")
    data = json.loads(text.output)
    ids = parse_synthetic(MARKOV).encode("kalo mesu puzo hena", chat=False)
    assert len(ids) == 4 and len(data["tokens"]) == 3  # the first token is context only
    entropy, surprisal = _teacher_forced_reference(ids[:1], ids[1:], [0.5, 1.0, 2.0])
    np.testing.assert_allclose(data["entropy"], entropy, atol=1e-9)
    np.testing.assert_allclose(data["surprisal"], surprisal, atol=1e-9)
    np.testing.assert_allclose(data["mean_entropy"], entropy.mean(axis=0), atol=1e-9)
    means = data["mean_entropy"]
    assert means[0] < means[1] < means[2]

    # A logged row: its prompt is the context, its generated tokens the targets.
    with sqlite3.connect(db) as conn:
        prompt, token_ids = conn.execute(
            "SELECT prompt, token_ids FROM completions WHERE row_index = 4"
        ).fetchone()
    context = parse_synthetic(MARKOV).encode(prompt, chat=False)  # the Markov source has no chat
    entropy, surprisal = _teacher_forced_reference(context, json.loads(token_ids), [0.5, 1.0])
    from_run = run_cli("analyze", "--run", "latest", "--row", "4", "--temperatures", "0.5,1",
                       "--db", str(db), "--plot", str(tmp_path / "a.png"))
    assert from_run.exit_code == 0, from_run.output
    lines = from_run.stdout.splitlines()
    assert lines[0].split()[0] == "τ"
    for line, tau, h, s in zip(lines[1:3], ("0.5", "1"), entropy.mean(axis=0),
                               surprisal.mean(axis=0), strict=True):
        assert line.split() == [tau, f"{h:.4f}", f"{s:.4f}"]
    assert (tmp_path / "a.png").read_bytes().startswith(b"\x89PNG")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--temperatures", "0,abc"], "temperature='abc' is not a number"),
        (["--temperatures", "0,-1"], "temperature=-1 is out of range"),
        (["--temperatures", "0.5,0.5"], "temperature 0.5 is given twice"),
        (["--samples", "0"], "samples=0 is invalid"),
        (["--top-p", "2"], "top_p=2.0 is out of range"),
        (["--resume", "nope"], "--resume takes the run's own settings"),
    ],
)
def test_sweep_bad_input(tmp_path, args, message):
    result = run_cli(*sweep_args(tmp_path / "log.db"), *args)
    assert result.exit_code == 2, result.output
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("temperatures = [0.5, 1.0\n", "is not valid TOML"),
        ("colour = 'red'\n", "unknown key 'colour'"),
        ("samples = 'four'\n", "samples must be an integer"),
        ("prompts = 'one'\n", "prompts must be a list"),
        ("temperatures = [0.5, -2]\n", "bad.toml: temperature=-2 is out of range"),
    ],
)
def test_bad_config_names_the_key_or_line(tmp_path, content, message):
    config = tmp_path / "bad.toml"
    config.write_text(content)
    result = run_cli("sweep", "--config", str(config), "--model", MARKOV, "--db",
                     str(tmp_path / "log.db"))
    assert result.exit_code == 2 and message in result.stderr, result.output


def test_toml_errors_give_the_line(tmp_path):
    config = tmp_path / "bad.toml"
    config.write_text('model = "x"\nsamples = = 3\n')
    result = run_cli("sweep", "--config", str(config), "--db", str(tmp_path / "log.db"))
    assert "line 2" in result.stderr


@pytest.mark.parametrize("where", ["missing-folder", "read-only"])
def test_bad_database_paths(tmp_path, where):
    if where == "missing-folder":
        db = tmp_path / "no" / "such" / "log.db"
    else:
        db = tmp_path / "ro.db"
        RunStore(db).close()
        db.chmod(0o444)
    result = run_cli(*sweep_args(db))
    assert result.exit_code == 2 and result.stderr.startswith("error: ")
    assert len(result.stderr.strip().splitlines()) == 1


def test_unknown_run_in_resume_report_and_export(tmp_path):
    db = tmp_path / "log.db"
    RunStore(db).close()
    for command in (["report", "zzz"], ["export", "zzz"], ["sweep", "--resume", "zzz"]):
        result = run_cli(*command, "--db", str(db))
        assert result.exit_code == 2 and "run 'zzz' is not in" in result.stderr


def test_two_sweeps_writing_to_one_database_at_once(tmp_path):
    db = tmp_path / "shared.db"
    RunStore(db).close()
    commands = [[sys.executable, "-m", "sampler", *sweep_args(db, "--seed", str(seed))]
                for seed in (1, 2)]
    processes = [subprocess.Popen(c, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                 for c in commands]
    for process in processes:
        assert process.wait(timeout=120) == 0, process.stderr.read()
    with RunStore(db) as store:
        runs = store.list_runs()
        assert len(runs) == 2 and all(r["rows_done"] == 18 for r in runs)
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
