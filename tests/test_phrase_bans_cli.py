"""Phrase bans through the command line and the run log: options, TOML key, bad input,
rewinds in --json, the run log and export, and a resumed run drawing what an uninterrupted
one drew."""

import json
import re
import sqlite3

import pytest
from click.testing import CliRunner
from test_bad_input import one_error_line

from sampler.cli import cli
from sampler.generation.phrase_bans import MAX_PHRASE_CHARS, MAX_PHRASES
from sampler.runlog.store import RunStore

SHARP = "synthetic:markov?vocab=30&sharpness=3&seed=1"
# phrases the greedy row of "kalo" on SHARP produces in a loop (tests/test_phrase_bans.py)
PHRASES = ["tagi vafi", "vafi tagi"]


def run_cli(*args: str):
    return CliRunner().invoke(cli, list(args))


def greedy_words() -> list[str]:
    result = run_cli("generate", "--model", SHARP, "--prompt", "kalo", "-t", "0",
                     "--max-new-tokens", "12", "--no-log", "--json")
    return json.loads(result.stdout)["text"].split()


def test_the_phrases_are_in_the_unbanned_row():
    text = " ".join(greedy_words())
    assert all(phrase in text for phrase in PHRASES)


def test_generate_json_shows_each_rewind_and_the_run_log_keeps_them(tmp_path):
    db = tmp_path / "log.db"
    phrases_file = tmp_path / "bans.txt"
    phrases_file.write_text(PHRASES[1] + "\n\n")
    result = run_cli("generate", "--model", SHARP, "--prompt", "kalo", "-t", "0",
                     "--max-new-tokens", "12", "--ban-phrase", PHRASES[0].upper(),
                     "--ban-phrases", str(phrases_file), "--db", str(db), "--json")
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    assert printed["rewinds"] and printed["rewinds"][0]["phrase"] == PHRASES[0].upper()
    assert not any(phrase in printed["text"] for phrase in PHRASES)
    with RunStore(db) as store:
        run = store.get_run("latest")
        assert run["config"]["ban_phrases"] == [PHRASES[0].upper(), PHRASES[1]]
        (stored,) = store.completions(run["id"])
        assert stored["rewinds"] == printed["rewinds"]
    exported = run_cli("export", run["id"], "--db", str(db), "--format", "jsonl")
    assert json.loads(exported.stdout)["rewinds"] == printed["rewinds"]
    with sqlite3.connect(db) as conn:
        count = conn.execute("SELECT json_array_length(rewinds) FROM completions").fetchone()
    assert count == (len(printed["rewinds"]),)


def test_rows_without_bans_store_no_rewinds(tmp_path):
    db = tmp_path / "log.db"
    result = run_cli("generate", "--model", SHARP, "--prompt", "kalo", "--max-new-tokens", "5",
                     "--db", str(db), "--json")
    assert "rewinds" not in json.loads(result.stdout)
    with RunStore(db) as store:
        (stored,) = store.completions("latest")
    assert "rewinds" not in stored


def test_compare_bans_phrases_in_every_row():
    result = run_cli("compare", "--model", SHARP, "--prompt", "kalo", "-t", "1.0",
                     "--samples", "3", "--max-new-tokens", "20", "--no-log", "--json",
                     *[arg for phrase in PHRASES for arg in ("--ban-phrase", phrase)])
    assert result.exit_code == 0, result.output
    texts = list(texts_in(json.loads(result.stdout)))
    assert len(texts) >= 4 and not any(p in text for p in PHRASES for text in texts)


def texts_in(value):
    """Every "text" string anywhere in a JSON document."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "text" and isinstance(item, str):
                yield item
            else:
                yield from texts_in(item)
    elif isinstance(value, list):
        for item in value:
            yield from texts_in(item)


def test_a_resumed_sweep_draws_what_an_uninterrupted_one_drew(tmp_path):
    config = tmp_path / "sweep.toml"
    config.write_text(f'model = "{SHARP}"\nprompts = ["kalo", "mesu"]\n'
                      "temperatures = [0.0, 1.0]\nsamples = 3\nmax_new_tokens = 30\n"
                      f"ban_phrases = {json.dumps(PHRASES)}\n")
    db = tmp_path / "log.db"
    assert run_cli("sweep", "--config", str(config), "--db", str(db)).exit_code == 0
    with RunStore(db) as store:
        run_id = store.get_run("latest")["id"]
        whole = [(c["token_ids"], c["rewinds"]) for c in store.completions(run_id)]
    assert sum(len(rewinds) for _, rewinds in whole) > 0
    with sqlite3.connect(db) as conn:  # as if killed after the first rows were committed
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("DELETE FROM completions WHERE row_index >= 4")
        conn.execute("UPDATE runs SET status = 'running'")
    resumed = run_cli("sweep", "--resume", run_id, "--db", str(db))
    assert resumed.exit_code == 0, resumed.output
    with RunStore(db) as store:
        assert [(c["token_ids"], c["rewinds"]) for c in store.completions(run_id)] == whole


BAD = [
    (["--ban-phrase", ""], "ban-phrase 1 is empty"),
    (["--ban-phrase", "x" * (MAX_PHRASE_CHARS + 1)], f"give at most {MAX_PHRASE_CHARS}"),
    (["--ban-phrases", "missing.txt"], "cannot read banned phrases"),
    (["--ban-phrases", "many.txt"], f"give at most {MAX_PHRASES}"),
    (["--ban-phrases", "blank.txt"], "has no phrases"),
]


@pytest.mark.parametrize("command", ["generate", "compare", "sweep"])
@pytest.mark.parametrize(("extra", "fragment"), BAD)
def test_bad_phrases_are_one_error_line_and_record_nothing(
    tmp_path, monkeypatch, command, extra, fragment
):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "many.txt").write_text("".join(f"p{i}\n" for i in range(MAX_PHRASES + 1)))
    (tmp_path / "blank.txt").write_text("\n  \n")
    db = tmp_path / "log.db"
    result = run_cli(command, "--model", SHARP, "--prompt", "kalo", "--max-new-tokens", "5",
                     "--db", str(db), *extra)
    one_error_line(result, fragment)
    assert not db.exists()


@pytest.mark.parametrize(
    ("value", "fragment"),
    [('"kobe"', "ban_phrases must be a list"), ('[""]', "ban phrase 1 is empty"),
     ("[1]", "must be a list of strings")],
)
def test_bad_toml_phrases_are_one_error_line(tmp_path, value, fragment):
    config = tmp_path / "sweep.toml"
    config.write_text(f'model = "{SHARP}"\nban_phrases = {value}\n')
    db = tmp_path / "log.db"
    one_error_line(run_cli("sweep", "--config", str(config), "--db", str(db)), fragment)
    assert not db.exists()


def test_resume_takes_no_phrases(tmp_path):
    result = run_cli("sweep", "--resume", "latest", "--ban-phrase", "kobe",
                     "--db", str(tmp_path / "log.db"))
    one_error_line(result, "--resume takes the run's own settings")


SENTENCE = r"[A-Za-z ,]{1,90}\."


@pytest.mark.parametrize("command", ["generate", "compare", "sweep"])
def test_bans_beside_a_grammar_give_rows_that_keep_both(tmp_path, gguf, command):
    db = tmp_path / "log.db"
    result = run_cli(command, "--model", "smollm2-135m-gguf", "--prompt",
                     "Write one sentence about the sea.",
                     *(["--temperatures", "0.8"] if command == "sweep" else ["-t", "0.8"]),
                     "--max-new-tokens", "24",
                     "--db", str(db), "--json", "--ban-phrase", "the", "--ban-phrase", "of ",
                     "--regex", SENTENCE)
    assert result.exit_code == 0, result.output
    texts = list(texts_in(json.loads(result.stdout)))
    assert texts
    for text in texts:  # no banned phrase, and a prefix of a legal sentence
        assert "the" not in text.lower() and "of " not in text.lower()
        assert re.fullmatch(SENTENCE[:-2] + r"(\.)?", text), text
    with RunStore(db) as store:
        run = store.get_run("latest")
        assert run["config"]["ban_phrases"] == ["the", "of "]
        assert run["config"]["grammar"] == SENTENCE
        stored = store.completions(run["id"])
    assert sum(len(c["rewinds"]) for c in stored) >= 1
