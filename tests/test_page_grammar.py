"""The grammar on the page's server side: ``/api/next-token``'s mask and constrained law,
generation and branches under a grammar, ``sampler explore``'s embedded masks, and every
error path's one-line message.

The mask's oracle is Python's ``re`` over each token's text (llama.cpp's own piece of the
SmolLM2 GGUF): for a regular expression made of one character class repeated (``[0-9]+``,
``[a-z ]{1,12}``), a text is a prefix of a match exactly when it matches with the lower bound
dropped, so a token is allowed after the written text ``w`` when ``w + text`` matches the class
within the upper bound, and the source's EOS tokens when ``w`` itself is a whole match. The
constrained law's oracle is :func:`sampler.distribution` restricted by that mask and
renormalised (numpy), never the server's own arithmetic.

Needs llguidance and the cached SmolLM2 (llama.cpp backend); skips locally without them.
"""

from __future__ import annotations

import base64
import json
import re

import numpy as np
import pytest

from sampler import SamplingParams, distribution
from sampler.engine.constraints.compile import MAX_GRAMMAR_CHARS
from sampler.errors import InvalidInputError
from sampler.serve import api, stream
from sampler.serve.explore import explore_page
from sampler.serve.grammar_mask import mask_from_json, mask_json
from sampler.serve.page import CHOICE_WORDS, CHOICES, engine_config

pytest.importorskip("llguidance")
starlette = pytest.importorskip("starlette")
from starlette.testclient import TestClient  # noqa: E402

from sampler.serve.app import make_app  # noqa: E402

PROMPT = "Write a number."
SCHEMA = json.dumps(
    {
        "type": "object",
        "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
        "required": ["name", "age"],
    }
)


@pytest.fixture(scope="module")
def texts(gguf):
    """Each token's text as llama.cpp spells it (None where its bytes are no UTF-8 text)."""
    out = []
    for token in range(gguf.vocab_size):
        try:
            out.append(gguf.text.token_bytes(token).decode("utf-8"))
        except UnicodeDecodeError:
            out.append(None)
    return out


def regex_oracle(texts, eos, written: str, character_class: str, upper: int | None) -> np.ndarray:
    """``[V]`` bool: the tokens ``re`` says keep ``written`` a prefix of a match of
    ``character_class`` repeated 1..``upper`` times (see the module docstring)."""
    bound = "*" if upper is None else f"{{0,{upper}}}"
    prefix = re.compile(f"{character_class}{bound}")
    mask = np.array([bool(t) and prefix.fullmatch(written + t) is not None for t in texts])
    whole = re.fullmatch(f"{character_class}{'+' if upper is None else f'{{1,{upper}}}'}", written)
    mask[list(eos)] = whole is not None
    return mask


def ask(gguf, grammar, syntax, forced=(), **settings):
    body = {
        "prompt": PROMPT,
        "chat": False,
        "forced": list(forced),
        "settings": {"grammar": grammar, "grammar_syntax": syntax, **settings},
    }
    return api.next_token(gguf, body)


@pytest.mark.parametrize(
    ("grammar", "written", "character_class", "upper"),
    [("[0-9]+", "", "[0-9]", None), ("[a-z ]{1,12}", " the cat", "[a-z ]", 12)],
)
def test_the_mask_is_the_tokens_re_allows(gguf, texts, grammar, written, character_class, upper):
    forced = gguf.encode(written, False) if written else []
    assert gguf.decode(forced) == written  # the written text is exactly these tokens
    answer = ask(gguf, grammar, "regex", forced)
    mask = mask_from_json(answer["grammar"], gguf.vocab_size)
    expected = regex_oracle(texts, gguf.eos_token_ids, written, character_class, upper)
    assert mask.sum() == answer["grammar"]["allowed"] == answer["stats"]["grammar_allowed"]
    assert np.array_equal(mask, expected), np.flatnonzero(mask != expected)[:10]


def test_the_law_draw_stats_and_trace_are_the_constrained_ones(gguf, texts):
    forced = gguf.encode(" the", False)
    answer = ask(gguf, "[a-z ]{1,12}", "regex", forced, temperature=0.8, top_k=40)
    row = np.frombuffer(base64.b64decode(answer["logits_float32_b64"]), "<f4")
    mask = regex_oracle(texts, gguf.eos_token_ids, " the", "[a-z ]", 12)
    # the oracle: the chain without the grammar on the logits with the forbidden ones at -inf
    # (the hf order puts the grammar before temperature and top-k, which it then precedes)
    masked = np.where(mask, row, -np.inf).astype(np.float32)
    params = SamplingParams(temperature=0.8, top_k=40)
    law = distribution(masked, params, history=[answer["history"]])
    for item in answer["top"]:
        assert item["final_p"] == pytest.approx(float(law[item["token"]]), abs=1e-6)
    assert mask[answer["draw"]["token"]]
    assert answer["stats"]["kept_tokens"] == int((law > 0).sum())
    allowed_mass = np.exp(row[mask].astype(np.float64) - row.max()).sum()
    total = np.exp(row.astype(np.float64) - row.max()).sum()
    assert answer["stats"]["grammar_kl"] == pytest.approx(-np.log(allowed_mass / total), rel=1e-9)
    assert [s["stage"] for s in answer["trace"]] == ["input", "grammar", "temperature", "top_k",
                                                     "final"]
    assert answer["trace"][1]["kept_tokens"] == int(mask.sum())


def test_a_json_schema_step_inside_a_string_sends_the_bitmask_and_few_tokens_a_list(gguf):
    inside = ask(gguf, SCHEMA, "json_schema", gguf.encode('{"name": "', False))["grammar"]
    after = ask(gguf, SCHEMA, "json_schema", gguf.encode('{"name": "Tom", "age": ', False))
    assert "bits_b64" in inside and inside["allowed"] > 40_000
    # 49,152 bits are 6,144 bytes, 8,192 characters of base64; the ids would be ~6 a token
    assert len(inside["bits_b64"]) == 8192
    assert "ids" in after["grammar"] and after["grammar"]["allowed"] < 20
    # an integer begins: a minus sign or a digit (SmolLM2 spells each digit alone)
    assert [gguf.token_label(t) for t in after["grammar"]["ids"]] == list("-0123456789")


def test_the_mask_encodings_round_trip_and_the_shorter_one_is_sent():
    rng = np.random.default_rng(3)
    for count in (0, 1, 50, 2000, 49_000):
        mask = np.zeros(49_152, dtype=bool)
        mask[rng.choice(49_152, count, replace=False)] = True
        sent = mask_json(mask)
        assert np.array_equal(mask_from_json(sent, 49_152), mask)
        ids = len(json.dumps(np.flatnonzero(mask).tolist(), separators=(",", ":")))
        assert ("ids" in sent) == (ids <= 8192), count


@pytest.mark.parametrize(
    ("settings", "forced_text", "message"),
    [
        ({"grammar": "[0-9]+", "grammar_syntax": "perl"}, "",
         "grammar_syntax='perl' is out of range: allowed one of gbnf, lark, regex, json_schema"),
        ({"grammar": "[0-9]+(", "grammar_syntax": "regex"}, "", "the regex grammar is invalid: "),
        ({"grammar": "root ::= missing", "grammar_syntax": "gbnf"}, "",
         "the gbnf grammar is invalid: Rule 'missing' not found"),
        ({"grammar": "{not json", "grammar_syntax": "json_schema"}, "",
         "the JSON schema is not JSON: "),
        ({"grammar": "[0-9]+", "grammar_syntax": "regex"}, " cat",
         "at position 0 of the written tokens is not allowed by the grammar there"),
        ({"grammar": "a" * (MAX_GRAMMAR_CHARS + 1), "grammar_syntax": "regex"}, "",
         "the regex grammar has 100,001 characters: allowed at most 100,000"),
    ],
)
def test_each_bad_grammar_is_a_400_with_its_one_line_message(gguf, settings, forced_text, message):
    client = TestClient(make_app(gguf, None), base_url="http://127.0.0.1:8765")
    forced = gguf.encode(forced_text, False) if forced_text else []
    body = {"prompt": PROMPT, "chat": False, "forced": forced, "settings": settings}
    response = client.post("/api/next-token", json=body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert message in error and "\n" not in error
    # a generation (and a branch's forced tokens) is refused the same way, row named
    body = {"prompt": PROMPT, "chat": False, "forced": forced, "rows": [settings],
            "max_new_tokens": 4}
    response = client.post("/api/generate", json=body)
    assert response.status_code == 400 and message in response.json()["error"]


def test_generation_stays_in_the_grammar_and_a_branch_continues_its_matcher(gguf, texts):
    rows = [{"temperature": 0, "grammar": "[a-z ]{1,12}", "grammar_syntax": "regex"},
            {"temperature": 1.5, "seed": 4, "grammar": "[a-z ]{1,12}", "grammar_syntax": "regex"}]
    body = {"prompt": PROMPT, "chat": False, "rows": rows, "max_new_tokens": 20}
    for completion in stream.prepare(gguf, body).run():
        assert re.fullmatch("[a-z ]{1,12}", completion.text), completion.text
    # a branch: " the" forced (written under the grammar); the rest stays within 12 characters
    forced = gguf.encode(" the", False)
    branch = stream.prepare(gguf, {**body, "forced": forced, "rows": rows[1:]}).run()[0]
    assert re.fullmatch("[a-z ]{0,8}", branch.text), branch.text


def test_explore_embeds_each_step_s_mask(gguf, texts):
    params = SamplingParams(temperature=0, grammar="[0-9]+", grammar_syntax="regex", seed=0)
    html = explore_page(gguf, PROMPT, steps=3, params=params, raw=True)
    data = json.loads(re.search(r'id="sampler-data">(.*?)</script>', html).group(1))
    written = ""
    for step in data["steps"]:
        mask = mask_from_json(step["view"]["grammar"], gguf.vocab_size)
        assert np.array_equal(mask, regex_oracle(texts, gguf.eos_token_ids, written, "[0-9]", None))
        written += step["text"]
    assert data["settings"]["grammar"] == "[0-9]+"


def test_the_syntax_choice_is_the_library_s_list_and_each_choice_is_accepted():
    config = engine_config()
    assert config["choices"]["grammar_syntax"] == ["gbnf", "lark", "regex", "json_schema"]
    assert config["choices"]["grammar_mode"] == ["auto", "mask", "resample"]
    # every choice has its words, and no words are left over from a value no longer offered
    assert set(CHOICE_WORDS) == {value for values in CHOICES.values() for value in values}
    for mode in CHOICES["grammar_mode"]:
        SamplingParams(grammar="a", grammar_syntax="regex", grammar_mode=mode)
    for syntax, example in zip(CHOICES["grammar_syntax"],
                               ['root ::= "a"', 'start: "a"', "a", "{}"], strict=True):
        SamplingParams(grammar=example, grammar_syntax=syntax)
    with pytest.raises(InvalidInputError):
        SamplingParams(grammar="a", grammar_syntax="Regex")
