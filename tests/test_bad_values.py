"""Values no command may choke on: numbers beyond int64 or float64, JSON nested thousands deep,
lone surrogates, lists too long, a logit-bias token the model does not have.

Each case was a traceback (or a minutes-long wait, or a run recorded before its error) found by
an adversarial pass over the command line; now it is one `error:` line, exit 2, nothing logged.
"""

import time

import pytest
from test_bad_input import MARKOV, _runs_in, one_error_line, run_cli

HUGE_INT = "1" + "0" * 400  # an integer beyond float64 (about 1.8e308): TOML and JSON allow it
SWEEP = ["sweep", "--model", MARKOV, "--prompt", "kalo", "--samples", "1", "--max-new-tokens",
         "2"]


def _sweep_with_config(tmp_path, text: str, *extra: str):
    config = tmp_path / "bad.toml"
    config.write_text(text, encoding="utf-8")
    db = tmp_path / "log.db"
    return run_cli(*SWEEP, "--config", str(config), "--db", str(db), *extra), db


# --- integers beyond int64 or float64 -----------------------------------------------------


def test_a_logit_bias_token_beyond_int64_is_named():
    result = run_cli("generate", "--model", MARKOV, "--no-log", "--prompt", "kalo",
                     "--logit-bias", "99999999999999999999=5")
    one_error_line(result, "logit_bias token 99999999999999999999", "integer id >= 0")


def test_a_logit_bias_beyond_float64_is_out_of_range():
    result = run_cli("generate", "--model", MARKOV, "--no-log", "--prompt", "kalo",
                     "--logit-bias", "9=1e999")
    one_error_line(result, "logit_bias[9]=inf", "-100 <= bias <= 100")


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        (f"top_p = {HUGE_INT}\n", ["top_p=1000", "(401 digits)", "beyond float64", "0 < top_p"]),
        (f"temperatures = [{HUGE_INT}]\n", ["temperature=1000", "beyond float64",
                                            "temperature >= 0"]),
        (f'[logit_bias]\n"{HUGE_INT}" = 1\n', ["logit_bias token 1000", "integer id >= 0"]),
        (f"[logit_bias]\n5 = {HUGE_INT}\n", ["logit_bias[5]=1000", "-100 <= bias <= 100"]),
        ("top_p = 100000000000000000000000\n",
         ["top_p=100000000000000000000000 is out of range", "0 < top_p <= 1"]),
    ],
    ids=["float-setting", "temperature", "bias-token", "bias-value", "top_p-1e23"],
)
def test_toml_numbers_beyond_float64_are_named(tmp_path, text, fragments):
    result, db = _sweep_with_config(tmp_path, text)
    one_error_line(result, "bad.toml", *fragments)
    assert _runs_in(db) == []


# --- JSON nested too deep, and lone surrogates -----------------------------------------------

DEEP = "[" * 100_000 + "]" * 100_000  # json.loads raises RecursionError on this


def test_deeply_nested_sequence_breakers():
    one_error_line(run_cli("chain", "--dry-sequence-breakers", DEEP),
                   "--dry-sequence-breakers", "not a JSON list of strings")


def test_deeply_nested_json_prompts_file(tmp_path):
    prompts = tmp_path / "deep.jsonl"
    prompts.write_text('{"prompt": ' + DEEP + "}\n", encoding="utf-8")
    result = run_cli(*SWEEP[:3], "--prompts", str(prompts), "--db", str(tmp_path / "log.db"))
    one_error_line(result, "deep.jsonl:1", '"prompt" string')
    assert _runs_in(tmp_path / "log.db") == []


def test_a_lone_surrogate_in_a_json_prompts_file(tmp_path):
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text('{"prompt": "fine"}\n{"prompt": "ka\\ud800lo"}\n', encoding="utf-8")
    db = tmp_path / "log.db"
    result = run_cli("sweep", "--model", MARKOV, "--prompts", str(prompts), "--samples", "1",
                     "--max-new-tokens", "2", "--db", str(db))
    one_error_line(result, "prompts.jsonl:2", "\\ud800", "lone surrogate", "valid Unicode")
    assert _runs_in(db) == []


@pytest.mark.parametrize("command", [["chain"], ["generate", "--model", MARKOV, "--no-log",
                                                 "--prompt", "kalo", "--json"]])
def test_a_lone_surrogate_in_sequence_breakers(command):
    result = run_cli(*command, "--dry-sequence-breakers", '["\\n", "\\udfff"]')
    one_error_line(result, "dry_sequence_breakers", "\\udfff", "lone surrogate")


def test_a_lone_surrogate_in_a_toml_list_is_refused_by_toml_itself(tmp_path):
    result, _ = _sweep_with_config(tmp_path, 'stop = ["\\ud800"]\n')
    one_error_line(result, "not valid TOML", "Unicode scalar")


# --- lists too long, refused before they cost minutes ----------------------------------------


def test_a_hundred_thousand_temperatures_are_refused_at_once(tmp_path):
    values = ", ".join(str(index / 1000) for index in range(100_000))
    started = time.perf_counter()
    result, db = _sweep_with_config(tmp_path, f"temperatures = [{values}]\n")
    elapsed = time.perf_counter() - started
    one_error_line(result, "100000 temperatures are too many", "at most 10000")
    assert not db.exists()  # refused before the run log is even opened
    # not a timing assertion on the code's speed: the quadratic check took 90 s here, and any
    # linear one takes a small fraction of that on the slowest machine this suite runs on
    assert elapsed < 45


def test_duplicate_temperatures_are_still_found_in_a_long_list():
    from sampler.errors import InvalidInputError
    from sampler.softmax import check_temperatures

    with pytest.raises(InvalidInputError, match=r"temperature 3\.5 is given twice"):
        check_temperatures([*range(5000), 3.5, 7000.5, 3.5])
    assert check_temperatures(["0", 0.5, "inf"]) == [0.0, 0.5, float("inf")]


def test_the_temperature_flags_point_to_a_toml_list_for_long_lists():
    assert "temperatures = [...]" in run_cli("generate", "--help").output
    assert "temperatures = [...]" in run_cli("sweep", "--help").output


# --- a logit-bias token outside the model's vocabulary: refused before the run is recorded ----


@pytest.mark.parametrize("how", ["toml", "flag"])
def test_a_logit_bias_token_outside_the_vocabulary_records_no_run(tmp_path, how):
    if how == "toml":
        result, db = _sweep_with_config(tmp_path, "[logit_bias]\n5000 = 3\n")
    else:
        db = tmp_path / "log.db"
        result = run_cli(*SWEEP, "--logit-bias", "5000=3", "--db", str(db))
    one_error_line(result, "logit_bias token 5000", "outside the vocabulary", "ids 0..299")
    assert _runs_in(db) == []


@pytest.mark.parametrize("command", ["generate", "compare"])
def test_generate_and_compare_check_the_vocabulary_before_recording(tmp_path, command):
    db = tmp_path / "log.db"
    result = run_cli(command, "--model", MARKOV, "--prompt", "kalo", "--max-new-tokens", "2",
                     "--logit-bias", "300=1", "--db", str(db))
    one_error_line(result, "logit_bias token 300", "ids 0..299")
    assert _runs_in(db) == []


@pytest.mark.parametrize(("name", "content", "reason"), [
    ("latin1.txt", "caf\xe9\n".encode("latin-1"), "not UTF-8 text"),
    ("missing.txt", None, "No such file or directory"),
])
def test_an_unreadable_prompts_file_is_one_line(tmp_path, name, content, reason):
    prompts = tmp_path / name
    if content is not None:
        prompts.write_bytes(content)
    db = tmp_path / "log.db"
    result = run_cli(*SWEEP[:3], "--prompts", str(prompts), "--db", str(db))
    one_error_line(result, "cannot read prompts", name, reason)
    assert _runs_in(db) == []
