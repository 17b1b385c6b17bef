"""Every row of the stage table has its twin in the page's engine, checked in Chromium.

The page computes the chain itself (``sampler/serve/static/stages.js``; it must run offline),
and knows of the table only the JSON it embeds (:func:`sampler.serve.page.engine_config`).
These tests enumerate :data:`~sampler.engine.stages.STAGES`: each stage is switched on at its
settings' ``example`` values (recorded in the table), in every preset that runs it, and each
setting alone and at its other "off" values, and the page must give the library's distribution
and StepStats within ``test_page_engine.TOLERANCE`` (its reason is stated there). A row added
to the table without a twin in the page fails here by itself: the last tests show it with a
stage made for the purpose.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from playwright.sync_api import Error as PageError

from sampler.engine.params import PRESETS, SamplingParams
from sampler.engine.sampling import distribution
from sampler.engine.settings import Setting, Slider, StageSpec, between
from sampler.engine.stages import BY_NAME, STAGE_NAMES, STAGES
from sampler.engine.state import matcher_array
from sampler.errors import InvalidInputError
from sampler.serve import page as page_module
from sampler.serve.api import _repeats
from sampler.serve.page import MIN_TOKENS_TO_KEEP, engine_config, page_html, step_view
from sampler.sources.base import token_texts
from sampler.sources.synthetic_spec import parse_synthetic
from tests.test_page_engine import TOLERANCE, Labels, check_against_library, in_page, open_engine

# A stage's examples must move some probability by ten times the tolerance at least: a twin
# that did nothing could then not pass because the stage does little on the test row.
MOVES = 10 * TOLERANCE
# A stage made for the last tests: a row of the table with no twin in the page.
NEW_STAGE = StageSpec(
    "new_stage",
    lambda candidates, rows: candidates,
    (
        Setting(
            "new_strength",
            float,
            0.0,
            "0 <= new_strength <= 1 (0 = off)",
            "A stage the page's engine has no twin of.",
            between(0, 1),
            example=0.5,
            slider=Slider(0, 1, 0.01),
        ),
    ),
    "none: made for tests/test_page_twins.py",
)


@pytest.fixture(scope="module")
def engine_page(browser):
    page = open_engine(browser, engine_config())
    yield page
    page.close()


@pytest.fixture(scope="module")
def vocabulary():
    """Token texts for DRY's sequence breakers (a synthetic model's pseudo-words)."""
    return token_texts(parse_synthetic("synthetic:markov?vocab=3000&seed=5"))


def _row() -> tuple[np.ndarray, list[int]]:
    """A row on which every stage's examples act, and its history: a head of five tokens
    (p ≈ 0.26, 0.23, 0.12, 0.12, 0.04: XTC at threshold 0.2 has two to choose from) with a
    tie inside it, masked tokens, a long tail; the history repeats four tokens, so that the
    next one (a head token) extends a repeat longer than DRY's allowed length."""
    rng = np.random.default_rng(11)
    row = rng.normal(0.0, 1.5, 3000).astype(np.float32)
    row[[10, 11, 20, 21, 12]] = [9.0, 8.9, 8.2, 8.2, 7.0]
    row[[30, 31]] = -np.inf
    history = [12, 20, 50, 51, 11, 60, 12, 20, 50, 51]
    return row, history


def _orders(spec: StageSpec, table=STAGES) -> list:
    """Every preset that runs the stage, or where none does, the table's own order."""
    presets = [name for name, order in PRESETS.items() if spec.name in order]
    return presets or [[s.name for s in table]]


def _cases(spec: StageSpec, table=STAGES) -> list[dict]:
    """The stage on at all its examples in each order; each setting alone at its example and
    at its other "off" values (the first order)."""
    orders = _orders(spec, table)
    examples = {s.name: s.example for s in spec.settings}
    cases = [{**examples, "order": order} for order in orders]
    for setting in spec.settings:
        cases.append({setting.name: setting.example, "order": orders[0]})
        cases += [{setting.name: value, "order": orders[0]} for value in setting.off_values]
    return cases


def _as_json(case: dict) -> dict:
    """A case as the page gets it (tuples as lists, a bias's token ids as strings)."""
    return json.loads(json.dumps(case))


def _page_answers(page, cases, row, history, context_of) -> list[dict]:
    """The page's engine on ``row`` under each case, with ``context_of(case)`` (the history
    and what the server sends with a step)."""
    return [a for case in cases for a in in_page(page, row, [_as_json(case)], context_of(case))]


# The tokens a grammar allows at the test step: the head's 10, 20, 21 and 12 (not 11, the
# second likeliest) and a stretch of the tail. The page cannot run a grammar's matcher (it is
# llguidance, over a model's vocabulary): the server sends it this mask (context.grammar), and
# the library's stage reads it from a matcher that allows exactly these tokens.
GRAMMAR_MASK = [10, 12, 20, 21, *range(100, 600)]


class FixedMask:
    """A matcher (sampler.engine.constraints.matcher.RowConstraint's interface) that allows
    :data:`GRAMMAR_MASK` whatever it is given."""

    def allowed(self) -> np.ndarray:
        mask = np.zeros(3000, dtype=bool)
        mask[GRAMMAR_MASK] = True
        return mask

    def advance(self, token: int) -> None:
        pass

    def copy(self) -> FixedMask:
        return self


def _library_state(case: dict) -> dict | None:
    """The sampler state a case needs: a matcher where it switches the grammar on."""
    if not case.get("grammar"):
        return None
    return {"grammar_matcher": matcher_array([FixedMask()])}


def _server_context(row, history, vocabulary):
    def context_of(case: dict) -> dict:
        # DRY's repeats come from the server, as api.next_token computes them; so does the
        # grammar's mask
        repeats = _repeats(SamplingParams(**case), history, vocabulary)
        context = {"history": history, "dry": step_view(Labels(), row, history, repeats)["dry"]}
        return context | ({"grammar": GRAMMAR_MASK} if case.get("grammar") else {})

    return context_of


@pytest.mark.parametrize("stage", STAGE_NAMES)
def test_every_stage_of_the_table_has_its_twin_in_the_page(engine_page, vocabulary, stage):
    row, history = _row()
    cases = _cases(BY_NAME[stage])
    context_of = _server_context(row, history, vocabulary)
    answers = _page_answers(engine_page, cases, row, history, context_of)
    check_against_library(row, history, cases, answers, vocabulary, _library_state)
    switched_on = SamplingParams(**cases[0])
    off = SamplingParams(order=cases[0]["order"])
    state = _library_state(cases[0])
    moved = np.abs(
        distribution(row, switched_on, history=[history], vocabulary=vocabulary, state=state)
        - distribution(row, off, history=[history])
    ).max()
    assert moved >= MOVES, f"{stage}'s examples barely act on the test row: the check is void"


def test_the_page_pairs_every_stage_of_the_table_and_no_other(engine_page):
    assert engine_page.evaluate("() => SamplerEngine.unpaired()") == {"missing": [], "extra": []}


def test_every_setting_has_an_example_that_switches_it_on():
    table_order = list(STAGE_NAMES)
    for spec in STAGES:
        for setting in spec.settings:
            assert setting.example is not None and not setting.is_off(setting.example), setting
            params = SamplingParams(**{setting.name: setting.example}, order=table_order)
            assert (spec.name in params.active_stages) == (setting.activates or spec.required)


@pytest.mark.parametrize("value", [0, -1, 1, 7, 2.5, True, "3", 2**63])
def test_min_tokens_to_keep_is_checked_as_the_library_checks_it(value):
    def refusal(check) -> str | None:
        try:
            check()
        except InvalidInputError as error:
            return str(error)
        return None

    page_rule = refusal(lambda: MIN_TOKENS_TO_KEEP.check(value))
    assert page_rule == refusal(lambda: SamplingParams(min_tokens_to_keep=value))


def _config_with_new_stage() -> dict:
    config = engine_config()
    config["stages"].append(NEW_STAGE.as_json())
    config["settings"] += [s.as_json(NEW_STAGE.name) for s in NEW_STAGE.settings]
    return config


def test_a_stage_without_a_twin_fails_its_check(browser):
    page = open_engine(browser, _config_with_new_stage())
    try:
        assert page.evaluate("() => SamplerEngine.unpaired()") == {
            "missing": ["new_stage"],
            "extra": [],
        }
        # the check every stage of the table passes above fails for it at its first step, the
        # page's answers (the library, which has no such stage, gives no DRY context here)
        row, history = _row()
        cases = _cases(NEW_STAGE, table=(*STAGES, NEW_STAGE))
        with pytest.raises(PageError, match="no twin of stage new_stage"):
            _page_answers(page, cases, row, history, lambda case: {"history": history})
    finally:
        page.close()


def test_a_page_assembled_with_a_stage_it_has_no_twin_of_says_so(browser, monkeypatch):
    table = page_module.table_json()
    table["stages"].append(NEW_STAGE.as_json())
    table["settings"] += [s.as_json(NEW_STAGE.name) for s in NEW_STAGE.settings]
    monkeypatch.setattr(page_module, "table_json", lambda: table)
    row, history = _row()
    step = {"view": step_view(Labels(), row, history), "mirostat_mu": None, "token": 10}
    html, _ = page_html(
        {
            "mode": "offline",
            "model": "synthetic",
            "prompt": "kalo",
            "steps": [{**step, "label": "10", "text": " 10"}],
        }
    )
    page = browser.new_page()
    try:
        page.set_content(html)
        page.wait_for_selector("#error:not([hidden])")
        assert "no twin of new_stage" in page.text_content("#error")
        # its setting has its slider all the same: the page's lists follow the table
        assert page.get_attribute("#range-new_strength", "max") == "1"
    finally:
        page.close()


def test_every_slider_lies_within_what_the_library_allows_and_starts_at_the_default():
    config = engine_config()
    defaults = SamplingParams()
    for setting in (*config["settings"], *config["row_settings"]):
        if not setting["slider"]:
            continue
        name, slider = setting["name"], setting["slider"]
        low, high, low_open, high_open = setting["bounds"]
        low = -math.inf if low is None else low
        high = math.inf if high is None else high
        assert (low < slider["low"]) if low_open else (low <= slider["low"]), name
        assert (slider["high"] < high) if high_open else (slider["high"] <= high), name
        assert slider["low"] <= getattr(defaults, name) <= slider["high"], name
        assert setting["off"] == getattr(defaults, name), name
