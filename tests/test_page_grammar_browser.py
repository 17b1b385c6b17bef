"""The grammar on the page, in Chromium, on SmolLM2 (llama.cpp backend) served on 127.0.0.1.

The twin: the page's engine with the server's mask (both encodings) equals
:func:`sampler.distribution` with the library's own matcher at that step
(:func:`~sampler.engine.constraints.matcher.constraint_state`), within
``test_page_engine.TOLERANCE`` (1e-6, its reason stated there), every grammar note within it
relatively; the whole page's numbers too, after its own decoding of the mask. The page: the
grammar box at desktop and phone sizes, typed into from the keyboard alone, axe-clean; the
forbidden tokens struck and marked ⊘ on the bars, with the legend entry and the grammar's
readouts; a link reproduces the grammar; generation under a grammar stays in it, an opened
step shows its mask, a branch on a forbidden token is refused in the error bar; a bad grammar's
one-line error; ``sampler explore``'s file shows its embedded masks with the box read-only.
"""

from __future__ import annotations

import base64
import re
import urllib.parse

import numpy as np
import pytest
from axe import serious_violations
from test_page_engine import TOLERANCE, check_against_library, in_page, open_engine

from sampler import SamplingParams, distribution
from sampler.engine.constraints.matcher import constraint_state
from sampler.serve import api
from sampler.serve.explore import explore_page
from sampler.serve.grammar_mask import mask_from_json
from sampler.serve.page import engine_config
from sampler.serve.server import serving

pytest.importorskip("llguidance")

SIZES = {"desktop": {"width": 1280, "height": 900}, "phone": {"width": 390, "height": 844}}
PROMPT = "Tell me a story about a cat."
DIGITS = {"grammar": "[0-9]+", "grammar_syntax": "regex"}
SCHEMA = '{"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}'
CASES = [
    {"temperature": 0.8, "top_k": 40},
    {"top_p": 0.9, "min_p": 0.02},
    {"order": "llama.cpp", "temperature": 0.7, "top_p": 0.95},
    {"order": "vllm", "temperature": 1.3, "min_p": 0.05},
    {"mirostat": 2, "mirostat_tau": 3.0},
    {"temperature": 0},
]


@pytest.fixture(scope="module")
def served(gguf, tmp_path_factory):
    with serving(gguf, str(tmp_path_factory.mktemp("grammar") / "runs.db")) as (url, _app):
        yield url


def _page(browser, size="desktop"):
    context = browser.new_context(viewport=SIZES[size], bypass_csp=True)  # axe is injected
    page = context.new_page()
    page.problems = []
    page.on("pageerror", lambda error: page.problems.append(str(error)))
    return page


def _open(page, url, **fragment):
    page.goto(f"{url}/#{urllib.parse.urlencode({'prompt': PROMPT, 'chat': '1', **fragment})}")
    page.wait_for_selector("#step-title:has-text('tokens in')")


def _tab_to(page, selector, limit=300):
    for _ in range(limit):
        page.keyboard.press("Tab")
        if page.evaluate("(s) => document.activeElement.matches(s)", selector):
            return
    raise AssertionError(f"Tab never reached {selector}")


@pytest.mark.parametrize(
    ("grammar", "syntax", "written"),
    [("[a-z ]{1,12}", "regex", " the"), (SCHEMA, "json_schema", '{"name": "')],
)
def test_the_page_engine_with_the_server_s_mask_is_the_library(browser, gguf, grammar, syntax,
                                                               written):
    forced = gguf.encode(written, False)
    settings = {"grammar": grammar, "grammar_syntax": syntax}
    body = {"prompt": PROMPT, "chat": True, "forced": forced, "settings": settings}
    answer = api.next_token(gguf, body)
    row = np.frombuffer(base64.b64decode(answer["logits_float32_b64"]), "<f4")
    ids = np.flatnonzero(mask_from_json(answer["grammar"], gguf.vocab_size)).tolist()
    cases = [{**case, **settings} for case in CASES]
    page = open_engine(browser, engine_config())
    answers = in_page(page, row, cases, {"history": answer["history"], "grammar": ids})
    page.close()
    # the library's own matcher after the written tokens, fresh for each case
    check_against_library(row, answer["history"], cases, answers, state_of=lambda case:
                          constraint_state(gguf, SamplingParams(**case), written=forced))
    assert answers[0]["notes"]["grammar_allowed"] == len(ids)


RESULT = """() => {
  const b64 = (array) => {
    const raw = new Uint8Array(array.buffer);
    let text = "";
    for (let i = 0; i < raw.length; i += 8192) {
      text += String.fromCharCode.apply(null, raw.subarray(i, i + 8192));
    }
    return btoa(text);
  };
  return { probs: b64(window.lastResult.probs), row: b64(view.step.raw),
    settings: currentSettings(), forced: view.request.forced, history: view.context.history };
}"""


def _check_page_law(page, gguf):
    """The whole page's probabilities (its own decoding of the mask) against the library."""
    got = page.evaluate(RESULT)
    params = SamplingParams(**got["settings"])
    row = np.frombuffer(base64.b64decode(got["row"]), "<f4")
    state = constraint_state(gguf, params, written=got["forced"])
    law = distribution(row, params, history=[got["history"]], state=state)
    probs = np.frombuffer(base64.b64decode(got["probs"]), "<f4")
    assert np.abs(probs - law).max() <= TOLERANCE


@pytest.mark.parametrize("size", SIZES)
def test_the_grammar_box_by_keyboard_marks_the_forbidden_bars(served, browser, gguf, size):
    page = _page(browser, size)
    _open(page, served)
    if size == "phone":
        page.click("#settings-box > summary")
    page.evaluate("() => { document.getElementById('group-advanced').open = true; }")
    page.focus("#prompt")
    _tab_to(page, "#set-grammar")
    page.keyboard.type("[0-9]+")
    _tab_to(page, "#set-grammar_syntax")
    page.keyboard.press("r")  # "regular expression (regex)"
    page.wait_for_function("() => !document.getElementById('grammar-readout').hidden")
    assert page.input_value("#set-grammar_syntax") == "regex"
    forbidden = page.query_selector_all("#bars .bar-row.forbidden")
    assert forbidden, "the model's likeliest words are no digits: their bars are marked"
    for bar in forbidden:
        assert bar.query_selector(".mark").text_content() == "⊘"
        assert bar.get_attribute("aria-disabled") == "true"
        assert "forbidden by the grammar" in bar.text_content()
        assert float(bar.get_attribute("data-final")) == 0
    assert page.is_visible("#grammar-key") and "forbidden" in page.text_content("#grammar-key")
    allowed = page.text_content('#grammar-readout [data-note="grammar_allowed"]')
    answer = api.next_token(gguf, {"prompt": PROMPT, "chat": True, "settings": DIGITS})
    assert int(allowed) == answer["grammar"]["allowed"]
    assert page.text_content('[data-note="grammar_top1_illegal"]') == "1"
    _check_page_law(page, gguf)
    page.click("#explain-button-grammar_kl")
    assert "−log(allowed mass)" in page.text_content("#explain-grammar_kl")
    assert serious_violations(page) == []
    assert page.evaluate("() => document.documentElement.scrollWidth") <= SIZES[size]["width"]
    # a link reproduces the grammar
    link = page.evaluate("() => location.href")
    assert "grammar=%5B0-9%5D%2B" in link and "grammar_syntax=regex" in link
    again = _page(browser, size)
    again.goto(link)
    again.wait_for_function("() => !document.getElementById('grammar-readout').hidden")
    assert again.input_value("#set-grammar") == "[0-9]+"
    assert again.text_content('[data-note="grammar_allowed"]') == allowed
    assert not page.problems and not again.problems
    page.context.close()
    again.context.close()


def test_a_bad_grammar_shows_the_library_s_one_line_error(served, browser):
    page = _page(browser)
    _open(page, served, grammar_syntax="regex", grammar="[0-9]+")
    page.wait_for_function("() => !document.getElementById('grammar-readout').hidden")
    page.fill("#set-grammar", "[0-9]+(")
    page.wait_for_selector("#error:not([hidden])")
    error = page.text_content("#error")
    assert error.startswith("the regex grammar is invalid: ") and "\n" not in error
    page.fill("#set-grammar", "[0-9]{2}")
    page.wait_for_selector("#error", state="hidden")
    assert not page.problems
    page.context.close()


def test_generation_stays_in_the_grammar_and_a_forbidden_branch_is_refused(served, browser, gguf):
    page = _page(browser)
    _open(page, served, grammar="[a-z ]{1,12}", grammar_syntax="regex", temperature="1.2")
    page.fill("#max-tokens", "16")
    page.click("#generate")
    page.wait_for_function("() => document.querySelectorAll('.generation.done').length === 3")
    for column in page.query_selector_all(".generation"):
        tokens = [int(t.get_attribute("data-token")) for t in column.query_selector_all(".tok")]
        text = gguf.decode([t for t in tokens if t not in gguf.eos_token_ids])
        assert re.fullmatch("[a-z ]{1,12}", text), text
    page.query_selector_all(".generation")[1].query_selector('.tok[data-step="1"]').click()
    page.wait_for_selector("#step-title:has-text('click a bar')")
    page.wait_for_function("() => !document.getElementById('grammar-readout').hidden")
    _check_page_law(page, gguf)  # the opened step's mask: the matcher after the first token
    bar = page.query_selector("#bars .bar-row.forbidden")
    token = int(bar.get_attribute("data-token"))
    bar.click(force=True)  # aria-disabled: playwright would wait for it to be enabled
    page.wait_for_selector("#error:not([hidden])")
    assert f"token {token} " in page.text_content("#error")
    assert "not allowed by the grammar at this step" in page.text_content("#error")
    assert len(page.query_selector_all(".generation")) == 3  # no branch was started
    assert not page.problems
    page.context.close()


def test_explore_shows_its_embedded_masks_with_the_grammar_read_only(browser, gguf, tmp_path):
    params = SamplingParams(temperature=0, seed=0, **DIGITS)
    path = tmp_path / "explore.html"
    path.write_text(explore_page(gguf, PROMPT, steps=3, params=params), encoding="utf-8")
    page = _page(browser)
    page.goto(path.as_uri() + "#step=1")
    page.wait_for_function("() => !document.getElementById('grammar-readout').hidden")
    assert page.evaluate("() => document.getElementById('set-grammar').readOnly")
    assert page.is_disabled("#set-grammar_syntax")
    assert "mask for the grammar it was written with" in page.text_content("#offline-grammar")
    assert page.query_selector_all("#bars .bar-row.forbidden")
    assert page.input_value("#set-grammar") == "[0-9]+"
    assert not page.problems
    page.context.close()
