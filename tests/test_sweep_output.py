"""What `sampler sweep` and `sampler compare` print: the 100-column table and its legend, one
sample text per temperature marked where it leaves greedy, plain progress lines in a pipe, and
`--json`.

The oracle for the divergence steps and the JSON is the run log read with plain sqlite3 and a
first-difference loop written here; the synthetic Markov source decodes a token as its word, so
the text before a marker is the words of the tokens before the step.
"""

import json
import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import import_llama_cpp_or_skip
from test_summary import hand_summary

from sampler.cli import cli
from sampler.sources.synthetic_spec import parse_synthetic

# sharpness 3, seed 5: prompt "kalo mesu" has a sample equal to greedy (τ 0.1), one leaving it
# late (τ 0.3, token 7) and some at token 2, so every kind of label is exercised.
MARKOV = "synthetic:markov?vocab=300&sharpness=3.0&seed=1"
TITLES = ["τ", "entropy", "distinct-2", "repetition", "greedy agreement", "perplexity"]


def sweep_args(db: Path, *extra: str) -> list[str]:
    return ["sweep", "--model", MARKOV, "--prompt", "kalo mesu", "--prompt", "puzo hena",
            "--temperatures", "0,0.1,0.3,0.6,1.5", "--samples", "2", "--max-new-tokens", "16",
            "--seed", "5", "--db", str(db), *extra]


def run_process(args: list[str], columns: int = 100) -> subprocess.CompletedProcess:
    """The CLI in its own process, stdout and stderr pipes (not terminals)."""
    env = dict(os.environ, COLUMNS=str(columns))
    return subprocess.run([sys.executable, "-m", "sampler", *args], capture_output=True,
                          text=True, env=env, timeout=300, check=False)


def logged_rows(db: Path) -> list[dict]:
    with sqlite3.connect(db) as conn:
        conn.row_factory = sqlite3.Row
        return [
            dict(row, token_ids=json.loads(row["token_ids"]), params=json.loads(row["params"]))
            for row in conn.execute("SELECT * FROM completions ORDER BY row_index")
        ]


def first_difference(a: list[int], b: list[int]) -> int | None:
    """Independent transcription: the first index where the lists differ, or where the shorter
    one ends; None when they are equal."""
    for index in range(max(len(a), len(b))):
        if index >= len(a) or index >= len(b) or a[index] != b[index]:
            return index
    return None


def strict_json(text: str):
    """json.loads that refuses NaN and Infinity, which no JSON parser but Python's accepts."""
    def refuse(name):
        raise ValueError(f"invalid JSON constant {name}")
    return json.loads(text, parse_constant=refuse)


def sample_blocks(stdout: str) -> list[tuple[str, str]]:
    """(label, text with its wrapping undone) of each sample after 'Sample texts'."""
    lines = stdout.split("Sample texts", 1)[1].splitlines()[2:]
    blocks: list[tuple[str, list[str]]] = []
    for line in lines:
        if not line:
            break
        if line.startswith("τ = "):
            blocks.append((line, []))
        else:
            blocks[-1][1].append(line.strip())
    return [(label, " ".join(parts)) for label, parts in blocks]


@pytest.fixture(scope="module")
def main_job(tmp_path_factory):
    db = tmp_path_factory.mktemp("sweep") / "log.db"
    result = run_process(sweep_args(db))
    assert result.returncode == 0, result.stderr
    return result, db


def test_the_table_fits_100_columns_with_a_legend_of_every_column(main_job):
    result, _ = main_job
    lines = result.stdout.splitlines()
    assert max(len(line) for line in lines) <= 100
    header = next(line for line in lines if line.startswith("τ "))
    assert re.split(r" {2,}", header.strip()) == TITLES
    for title in TITLES:  # the legend: one line per column, its title first
        assert any(line.startswith(title + "  ") and len(line) > len(title) + 10
                   for line in lines[lines.index(header) + 1:]), title
    assert "[low–high]" in result.stdout
    # two prompts: the short warning, kept
    assert "WARNING: only 2 prompts (fewer than 8)" in result.stdout
    assert "H final" not in result.stdout  # the full table is behind --all-columns


def test_sample_texts_start_with_greedy_and_mark_where_each_leaves_it(main_job):
    result, db = main_job
    rows = [r for r in logged_rows(db) if r["prompt"] == "kalo mesu"]
    greedy = next(r for r in rows if r["temperature"] == 0 and r["sample"] == 0)
    decode = parse_synthetic(MARKOV).decode
    blocks = sample_blocks(result.stdout)
    assert "prompt: kalo mesu" in result.stdout
    assert blocks[0][0] == "τ = 0 (greedy)" and blocks[0][1] == greedy["text"]
    temperatures = [0.1, 0.3, 0.6, 1.5]
    assert len(blocks) == 1 + len(temperatures)
    seen = set()
    for (label, text), temperature in zip(blocks[1:], temperatures, strict=True):
        row = next(r for r in rows if r["temperature"] == temperature and r["sample"] == 0)
        step = first_difference(greedy["token_ids"], row["token_ids"])
        assert label.startswith(f"τ = {temperature:g} · sample 0 · ")
        if step is None:
            assert "same as greedy" in label and text == row["text"]
            seen.add("same")
            continue
        assert f"leaves greedy at token {step}" in label
        before, after = text.split("│")
        assert before.rstrip() == decode(row["token_ids"][:step])
        assert (before + after).replace("  ", " ").strip() == row["text"]
        seen.add("late" if step > 2 else "early")
    assert seen == {"same", "late", "early"}


def test_texts_wrap_to_the_terminal_width(tmp_path):
    result = run_process(sweep_args(tmp_path / "log.db", "--max-new-tokens", "40"), columns=60)
    assert result.returncode == 0, result.stderr
    texts = result.stdout.split("Sample texts", 1)[1].split("\n\n")[0].splitlines()
    assert max(len(line) for line in texts) <= 60
    assert sum(line.startswith("    ") for line in texts) > len(sample_blocks(result.stdout))


def test_piped_progress_is_plain_lines(main_job):
    result, _ = main_job
    lines = result.stderr.splitlines()
    assert lines[0].startswith("run ") and "\r" not in result.stderr
    assert "tokens" not in [line.strip() for line in lines]  # the old lone label
    progress = r"rows \d+/20 · tokens \d+/320 \(\d+%\) · [\d.]+ tokens/s · \d+:\d\d"
    assert all(re.fullmatch(f"(done: )?{progress}( · [\\d.]+ rows/s)?", line)
               for line in lines[1:]), lines
    assert lines[-1].startswith("done: rows 20/20 · tokens ")


def test_all_columns_prints_the_full_table(tmp_path):
    result = CliRunner().invoke(cli, sweep_args(tmp_path / "log.db", "--all-columns"))
    assert result.exit_code == 0, result.output
    assert "H final" in result.stdout and "self-BLEU4" in result.stdout
    assert "Sample texts" in result.stdout


def test_sweep_json_is_the_run_log(tmp_path):
    db = tmp_path / "log.db"
    result = run_process(sweep_args(db, "--json"))
    assert result.returncode == 0, result.stderr
    data = strict_json(result.stdout)  # one document: nothing else on stdout
    logged = logged_rows(db)
    with sqlite3.connect(db) as conn:
        assert data["run_id"] == conn.execute("SELECT id FROM runs").fetchone()[0]
    assert data["kind"] == "sweep" and data["status"] == "complete" and data["seed"] == 5
    assert [{k: r[k] for k in ("row_index", "prompt", "temperature", "sample", "text",
                               "token_ids", "finish_reason")} for r in logged] == [
        {k: v for k, v in row.items() if k != "divergence_step"} for row in data["rows"]]
    greedy = {r["prompt"]: r["token_ids"] for r in logged if r["temperature"] == 0
              and r["sample"] == 0}
    for row in data["rows"]:
        assert row["divergence_step"] == first_difference(greedy[row["prompt"]],
                                                          row["token_ids"])
    assert [s["temperature"] for s in data["samples"]] == [0, 0.1, 0.3, 0.6, 1.5]
    assert data["samples"][0]["is_greedy"] and data["sample_prompt"] == "kalo mesu"
    # the summary's means against the README definitions applied to the logged rows
    with sqlite3.connect(db) as conn:
        conn.row_factory = sqlite3.Row
        for row in logged:
            row["steps"] = [dict(s) for s in conn.execute(
                "SELECT * FROM steps WHERE row_index = ? ORDER BY step", (row["row_index"],))]
    hand = hand_summary(logged)
    for row in data["summary"]:
        expected = hand[row["temperature"]]
        for key in ("entropy_final", "distinct_2", "repetition", "greedy_agreement"):
            # the same float64 means of ≤ a few hundred logged values, summed in another
            # order: ≲ n u ≈ 1e-13 relative
            assert row[key] == pytest.approx(expected[key], rel=1e-12, abs=1e-12), key
            low, high = row[f"{key}_ci"]
            assert low <= row[key] <= high
    assert data["intervals"]["reliable"] is False and "2 prompts" in data["intervals"]["warning"]
    assert "run " in result.stderr and "done: rows 20/20" in result.stderr


def test_json_never_writes_infinity_or_nan(tmp_path):
    # τ = inf (a temperature, so a key of the summary) and one prompt (no interval: NaN)
    args = ["sweep", "--model", MARKOV, "--prompt", "kalo", "--temperatures", "0,inf",
            "--max-new-tokens", "4", "--samples", "1", "--db", str(tmp_path / "l.db"), "--json"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    data = strict_json(result.stdout)
    assert [row["temperature"] for row in data["summary"]] == [0, None]
    assert data["summary"][1]["entropy_final_ci"] == [None, None]


def test_compare_json_is_the_run_log(tmp_path):
    db = tmp_path / "c.db"
    args = ["compare", "--model", MARKOV, "--prompt", "kalo mesu", "-t", "1.2", "--samples",
            "3", "--max-new-tokens", "15", "--seed", "5", "--db", str(db), "--json"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    data = strict_json(result.stdout)
    logged = logged_rows(db)
    assert data["kind"] == "compare" and data["run_id"] and len(logged) == 4
    assert [(r["text"], r["token_ids"]) for r in data["rows"]] == [
        (r["text"], r["token_ids"]) for r in logged]
    steps = [first_difference(logged[0]["token_ids"], r["token_ids"]) for r in logged[1:]]
    assert [c["divergence_step"] for c in data["comparisons"]] == steps
    assert [r["divergence_step"] for r in data["rows"]] == [None, *steps]
    assert [s["temperature"] for s in data["summary"]] == [0, 1.2]
    unlogged = CliRunner().invoke(cli, [*args[:-3], "--no-log", "--json"])
    assert strict_json(unlogged.stdout)["run_id"] is None
    assert strict_json(unlogged.stdout)["rows"] == data["rows"]


def test_on_the_default_model_the_mark_falls_where_the_tokens_part(gguf, tmp_path):
    """SmolLM2 on llama.cpp: a token is part of a word, so the text before the mark must be
    exactly the decoding of the tokens greedy and the sample share."""
    import_llama_cpp_or_skip()
    db = tmp_path / "log.db"
    args = ["sweep", "--prompt", "Describe how bread is made.", "--temperatures", "0,0.7,1.5",
            "--samples", "2", "--max-new-tokens", "12", "--seed", "3", "--db", str(db)]
    result = CliRunner().invoke(cli, [*args, "--json"])
    assert result.exit_code == 0, result.output
    data = strict_json(result.stdout)
    logged = logged_rows(db)
    greedy = next(r for r in logged if r["temperature"] == 0 and r["sample"] == 0)
    assert data["model"] == "smollm2-135m-gguf" and data["samples"][0]["is_greedy"]
    marked = 0
    for sample in data["samples"][1:]:
        row = next(r for r in logged if r["row_index"] == sample["row_index"])
        step = first_difference(greedy["token_ids"], row["token_ids"])
        assert sample["divergence_step"] == step and sample["text"] == row["text"]
        if step is not None and sample["divergence_char"] is not None:
            shared = gguf.decode(greedy["token_ids"][:step])
            assert sample["text"][: sample["divergence_char"]] == shared
            marked += step > 0
    assert marked  # (seed 3) at least one sample shares a first token with greedy
    shown = CliRunner().invoke(cli, ["report", data["run_id"], "--db", str(db)])
    assert shown.exit_code == 0  # the run the JSON names is the logged one
