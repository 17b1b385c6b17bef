"""One rule for the defaults (sampler/engine/defaults.py), used by every command.

Temperature 1.0, seed 0 (``--seed random`` draws one and says it), the model's own chat
template (``--raw``/``--no-chat-template`` turn it off). Each command is checked by what it
does: its output with no flag equals its output with the rule's value given explicitly, and
differs from the output under the command's old default, so the check fails on the old rule.
"""

import json
import re
import urllib.request

import pytest
from click.testing import CliRunner

from sampler.cli import cli
from sampler.engine.defaults import DEFAULT_SEED, DEFAULT_TEMPERATURE

MARKOV = "synthetic:markov?vocab=50&sharpness=2&seed=1"


def run(*args: str):
    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code == 0, result.output
    return result


def test_the_rule_is_temperature_one_and_seed_zero():
    from sampler.engine.stages import SETTINGS

    # the oracle: the rule as the docs state it; τ = 1 is the temperature stage's "off"
    assert (DEFAULT_TEMPERATURE, DEFAULT_SEED) == (1.0, 0) == (SETTINGS["temperature"].off, 0)


def test_generate_defaults_to_temperature_one_and_seed_zero():
    base = ["generate", "--model", MARKOV, "--prompt", "kalo", "--max-new-tokens", "12",
            "--no-log", "--json"]
    plain = json.loads(run(*base).stdout)
    assert (plain["temperature"], plain["seed"]) == (1.0, 0)
    assert plain == json.loads(run(*base, "-t", "1", "--seed", "0").stdout)
    assert json.loads(run(*base).stdout) == plain  # the same command, the same text


@pytest.mark.parametrize(
    ("command", "old_temperature"),
    [
        (["compare", "--model", MARKOV, "--prompt", "kalo", "--samples", "3",
          "--max-new-tokens", "12", "--no-log"], "0.8"),
        (["chain", "3", "1", "0.2", "--json"], "0.5"),  # chain was 1.0 already
        (["divergence", "--model", MARKOV, "--text", "kalo mesu", "--vs", "top_k=2",
          "--json"], "0.5"),
    ],
    ids=["compare", "chain", "divergence"],
)
def test_single_temperature_commands_default_to_one(command, old_temperature):
    plain = run(*command).stdout
    assert plain == run(*command, "-t", "1").stdout
    assert plain != run(*command, "-t", old_temperature).stdout


def test_explore_defaults_to_temperature_one_and_seed_zero(tmp_path):
    def page(*extra: str) -> bytes:
        out = tmp_path / f"p{len(list(tmp_path.iterdir()))}.html"
        run("explore", "--model", MARKOV, "--prompt", "kalo", "--steps", "12", "--out",
            str(out), *extra)
        return out.read_bytes()

    plain = page()
    assert plain == page("-t", "1", "--seed", "0")
    assert plain != page("-t", "0")  # explore's old default: greedy


def test_compare_and_explore_default_to_seed_zero(tmp_path):
    compare = ["compare", "--model", MARKOV, "--prompt", "kalo", "--samples", "3",
               "--max-new-tokens", "12", "--no-log"]
    assert run(*compare).stdout == run(*compare, "--seed", "0").stdout
    assert run(*compare).stdout != run(*compare, "--seed", "1").stdout


def test_sweep_without_a_seed_logs_seed_zero(tmp_path):
    db = str(tmp_path / "r.db")
    run("sweep", "--model", MARKOV, "--prompt", "kalo", "--temperatures", "1", "--samples", "1",
        "--max-new-tokens", "2", "--db", db)
    from sampler.runlog.store import RunStore

    with RunStore(db) as store:
        assert store.get_run("latest")["config"]["seed"] == 0


def test_seed_random_draws_a_seed_says_it_and_it_repeats():
    base = ["generate", "--model", MARKOV, "--prompt", "kalo", "--max-new-tokens", "12",
            "--no-log", "--json"]
    drawn = run(*base, "--seed", "random")
    seed = int(re.fullmatch(r"seed (\d+) \(drawn: --seed \1 repeats this\)\n", drawn.stderr)[1])
    document = json.loads(drawn.stdout)
    assert document["seed"] == seed
    assert json.loads(run(*base, "--seed", str(seed)).stdout) == document


@pytest.mark.parametrize("value", ["-1", "abc", "1.5", "9223372036854775808", ""])
@pytest.mark.parametrize("command", ["generate", "compare", "explore", "verify", "sweep"])
def test_a_bad_seed_is_one_error_line(command, value):
    args = {"generate": ["--prompt", "x"], "compare": ["--prompt", "x"], "verify": [],
            "explore": ["--prompt", "x", "--out", "x.html"], "sweep": ["--prompt", "x"]}[command]
    result = CliRunner().invoke(cli, [command, *args, "--model", MARKOV, "--seed", value]
                                if command != "verify" else [command, "--seed", value])
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        f"error: --seed {value!r} is not allowed: give an integer 0..9223372036854775807 "
        "or 'random'"
    ]


# --- the chat template: the model's own, in every command and in serve's page ---------------


@pytest.fixture(scope="module")
def chat_encoded(tiny_model_dir):
    """The tiny model's prompt ids, by transformers' own apply_chat_template (the oracle)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)

    def encode(prompt: str, chat: bool) -> list[int]:
        if chat:
            prompt = tokenizer.apply_chat_template(
                [{"role": "user", "content": prompt}], add_generation_prompt=True, tokenize=False
            )
        return tokenizer(prompt, add_special_tokens=False)["input_ids"]

    return encode


def test_generate_and_compare_use_the_chat_template_unless_raw(tiny_model_dir, chat_encoded,
                                                               tmp_path):
    base = ["generate", "--model", str(tiny_model_dir), "--prompt", "w5 w6",
            "--max-new-tokens", "2", "--no-log", "--json"]
    chat, plain = chat_encoded("w5 w6", True), chat_encoded("w5 w6", False)
    assert len(chat) != len(plain)
    assert json.loads(run(*base).stdout)["prompt_tokens"] == len(chat)
    for flag in ("--raw", "--no-chat-template"):
        assert json.loads(run(*base, flag).stdout)["prompt_tokens"] == len(plain)
    db = str(tmp_path / "r.db")
    from sampler.runlog.store import RunStore

    for flag, expected in (([], chat), (["--raw"], plain)):
        run("compare", "--model", str(tiny_model_dir), "--prompt", "w5 w6", "--samples", "1",
            "--max-new-tokens", "2", "--db", db, *flag)
        with RunStore(db) as store:
            rows = store.completions("latest", with_steps=False)
        assert {row["prompt_tokens"] for row in rows} == {len(expected)}


def _page_data(url: str) -> dict:
    html = urllib.request.urlopen(url + "/", timeout=30).read().decode("utf-8")
    return json.loads(re.search(r'id="sampler-data"[^>]*>(.*?)</script>', html, re.S)[1])


def test_serve_page_and_api_start_with_the_models_own_chat_default(tiny_model_dir, chat_encoded):
    from sampler.serve import api
    from sampler.serve.server import serving
    from sampler.sources import load_source
    from sampler.sources.synthetic_spec import parse_synthetic

    source = load_source(str(tiny_model_dir), quiet=True)
    with serving(source, None) as (url, _app):
        assert _page_data(url)["chat"] is True  # the page's box starts checked
    with serving(parse_synthetic(MARKOV), None) as (url, _app):
        assert _page_data(url)["chat"] is False  # no template: nothing to apply
    answer = api.next_token(source, {"prompt": "w5 w6"})  # no "chat": the model's default
    assert answer["history"] == chat_encoded("w5 w6", True)
