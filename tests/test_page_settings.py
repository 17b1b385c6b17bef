"""The page explains itself, checked in Chromium: the settings in the stage table's groups
(collapsible by keyboard), every slider named in words beside its field name, the log-scale
temperature slider announcing its real value, the readouts' notes opening by keyboard, the
first view the server passes in, and the cheat sheet's picture against exact softmax computed
here (math.exp in float64, not the library's nor the page's code).
"""

from __future__ import annotations

import itertools
import math

import pytest

from sampler.cheatsheet import CHEAT_SHEET_TEMPERATURES
from sampler.engine.params import SamplingParams
from sampler.engine.settings import GROUPS
from sampler.engine.stages import STAGES
from sampler.serve import api
from sampler.serve.page import FIRST_PROMPT, engine_config
from sampler.serve.server import serving
from sampler.sources.synthetic_spec import parse_synthetic

CONFIG = engine_config()
SLIDERS = [s for s in CONFIG["settings"] + CONFIG["row_settings"] if s["slider"]]
# Both sides compute softmax in float64 with their own exp (libm's, V8's: within an ulp or
# two) and sum three to ten terms, so they differ by ~1e-15 of a probability; 1e-12 leaves a
# margin of a thousand and still catches any other formula (a float32 step differs by 1e-8).
EXACT = 1e-12
# The picture's coordinates are rounded to 0.01 px: a length built from two of them is within
# 0.01 px of the exact one.
PIXEL = 0.01


@pytest.fixture(scope="module")
def source():
    return parse_synthetic("synthetic:markov?vocab=500&seed=5")


@pytest.fixture(scope="module")
def url(source):
    with serving(source, None) as (address, _app):
        yield address


@pytest.fixture
def page(browser):
    page = browser.new_page(viewport={"width": 1300, "height": 1000})
    page.problems = []
    page.on("pageerror", lambda error: page.problems.append(str(error)))
    page.on("console", lambda m: m.type == "error" and page.problems.append(m.text))
    yield page
    assert not page.problems
    page.close()


def _open(page, address, fragment=""):
    page.goto(f"{address}/{fragment}")
    page.wait_for_selector("#step-title:has-text('tokens in')")


def _open_every_group(page):
    for name in GROUPS:
        if page.get_attribute(f"#group-{name}", "open") is None:
            page.click(f"#group-{name} > summary")


def test_each_group_is_there_and_collapses_by_keyboard(page, url):
    _open(page, url)
    titles = page.locator("#sliders details.group > summary").all_text_contents()
    assert titles == [title for title, _ in GROUPS.values()]
    for name, (_, summary) in GROUPS.items():
        assert page.text_content(f"#group-{name} .group-summary") == summary
    # the first group is the next stop of the Tab key after the chain's order
    page.focus("#order")
    page.keyboard.press("Tab")
    assert page.evaluate("() => document.activeElement.closest('details').id") == (
        "group-temperature"
    )
    for name in GROUPS:
        page.focus(f"#group-{name} > summary")
        was_open = page.get_attribute(f"#group-{name}", "open") is not None
        for key in ("Enter", " "):
            page.keyboard.press(key)
            now_open = page.get_attribute(f"#group-{name}", "open") is not None
            assert now_open != was_open, (name, key)
            was_open = now_open


def test_every_slider_is_named_in_words_beside_its_field_name(page, url):
    _open(page, url)
    _open_every_group(page)
    for setting in SLIDERS:
        words, field = setting["title"], setting["name"]
        assert words and "_" not in words, field
        name = f"{words} {field}"  # the words, then the field name in monospace
        assert page.get_by_role("slider", name=name, exact=True).count() == 1, name
        assert page.get_by_role("spinbutton", name=name, exact=True).count() == 1, name
        assert page.text_content(f'.setting[data-name="{field}"] code.field') == field
        group = page.evaluate(f"() => document.getElementById('set-{field}').closest('details').id")
        assert group == f"group-{setting['group']}"
    for stage in STAGES:
        if not any(s.slider for s in stage.settings):
            continue
        blocks = page.locator(f'.stage[data-stage="{stage.name}"]')
        assert blocks.count() >= 1
        for i in range(blocks.count()):
            assert blocks.nth(i).locator(".stage-summary").text_content() == stage.summary
            assert blocks.nth(i).locator(".stage-peers").text_content() == f"Peers: {stage.peer}"


def test_a_greyed_out_setting_says_so_in_words(page, url):
    _open(page, url)
    _open_every_group(page)
    unusable = set(CONFIG["unusable"]["hf"]["alone"])
    assert unusable  # the default order refuses some stages (top-a, tail-free, top-nσ...)
    for setting in SLIDERS:
        note = f"#unused-{setting['name']}"
        assert page.is_visible(note) == (setting["name"] in unusable), setting["name"]


def test_the_temperature_slider_announces_its_value_not_its_position(page, url):
    _open(page, url)
    assert "Log scale" in page.text_content("#scale-temperature")
    assert "scale-temperature" in page.get_attribute("#range-temperature", "aria-describedby")
    slider = next(s["slider"] for s in SLIDERS if s["name"] == "temperature")
    low, high = slider["low"], slider["high"]
    page.focus("#range-temperature")
    for _ in range(30):
        page.keyboard.press("ArrowLeft")
    position = float(page.input_value("#range-temperature"))
    said = page.get_attribute("#range-temperature", "aria-valuetext")
    assert said == page.input_value("#set-temperature")  # what the box shows
    # the position (0..1000) runs over log10 τ from 0.01 to 10; the page rounds to 4 digits
    expected = 10 ** (math.log10(low) + math.log10(high / low) * position / 1000)
    assert float(said) == pytest.approx(expected, rel=5e-4) and float(said) != position
    page.fill("#set-temperature", "2.5")
    assert page.get_attribute("#range-temperature", "aria-valuetext") == "2.5"
    for setting in SLIDERS:  # every other slider's position is its value
        if setting["slider"]["scale"] != "log":
            name = setting["name"]
            assert float(page.input_value(f"#range-{name}")) == float(
                page.input_value(f"#set-{name}")
            )


def test_the_readouts_explain_themselves_by_keyboard(page, url):
    _open(page, url)
    stats = page.locator("#readout [data-stat]").count()
    # and the recompute time, and the grammar's five (shown with a grammar only: see
    # tests/test_page_grammar_browser.py)
    assert page.locator("#readout .explain-toggle").count() == stats + 1 + 5
    buttons = page.locator("#readout .explain-toggle:visible")
    assert buttons.count() == stats + 1
    for i in range(buttons.count()):
        button = buttons.nth(i)
        note = "#" + button.get_attribute("aria-controls")
        assert page.is_hidden(note) and button.get_attribute("aria-expanded") == "false"
        assert "mean" in button.get_attribute("aria-label")
        button.focus()
        page.keyboard.press("Enter")
        assert page.is_visible(note) and button.get_attribute("aria-expanded") == "true"
        assert len(page.text_content(note)) > 40
        page.keyboard.press(" ")
        assert page.is_hidden(note)


def test_the_first_view_is_what_the_server_passes(browser, source, url, page):
    _open(page, url)
    assert page.input_value("#prompt") == FIRST_PROMPT
    assert page.input_value("#set-temperature") == str(int(SamplingParams().temperature))
    assert page.is_checked("#chat") == source.is_chat
    with serving(source, None, first_view={"prompt": "kalo mira", "temperature": 0.7}) as (
        other,
        _app,
    ):
        _open(page, other)
        assert page.input_value("#prompt") == "kalo mira"
        assert page.input_value("#set-temperature") == "0.7"
    # a link's settings win, and open the group they are in
    _open(page, url, "#prompt=kalo&dry_multiplier=0.8")
    assert page.get_attribute("#group-adaptive", "open") is not None
    assert page.get_attribute("#group-penalties", "open") is None


def test_the_first_view_on_smollm2_teaches(gguf, page):
    """At τ = 1 with the chat template, the first prompt's next token is spread but sensible:
    no token above one half, entropy over 1 nat (it is 3.02)."""
    with serving(gguf, None) as (address, _app):
        _open(page, address)
        assert page.is_checked("#chat")
        answer = api.next_token(gguf, {"prompt": FIRST_PROMPT, "chat": True})
        top = answer["top"][0]
        entropy = float(page.text_content('[data-stat="entropy_base"]'))
        top1 = float(page.text_content('[data-stat="top1_prob"]'))
    assert top1 == pytest.approx(top["final_p"], abs=1e-6)
    assert entropy > 1.0 and top1 < 0.5
    print(f"\nfirst view: entropy {entropy:.4f} nats, top token {top['label']!r} p {top1:.4f}")


def _softmax(logits: list[float], tau: float) -> list[float]:
    peak = max(logits)
    if tau == 0:
        ties = sum(1 for x in logits if x == peak)
        return [1 / ties if x == peak else 0.0 for x in logits]
    weights = [math.exp((x - peak) / tau) for x in logits]
    total = math.fsum(weights)
    return [w / total for w in weights]


def _entropy(probs: list[float]) -> float:
    return -math.fsum(p * math.log(p) for p in probs if p > 0)


@pytest.mark.parametrize(("logits", "tau"), [([3.0, 1.0, 0.2], 0.5), ([2.0, 2.0, 0.0, -1.5], 0.3)])
def test_the_cheat_sheet_picture_is_exact_softmax(page, url, logits, tau):
    text = ",".join(str(x) for x in logits)
    page.goto(f"{url}/#tab=cheatsheet&cs={text}&cst={tau}")
    page.wait_for_selector("#cs-svg")
    temperatures = sorted({*CHEAT_SHEET_TEMPERATURES, tau})
    bars = page.locator("#cs-svg rect.cs-bar")
    assert bars.count() == len(temperatures) * len(logits)
    scale, bottoms = None, []  # scale: the height of probability 1, from a hardmax bar
    for i in range(bars.count()):
        bar = bars.nth(i)
        t, token = float(bar.get_attribute("data-tau")), int(bar.get_attribute("data-token"))
        p = float(bar.get_attribute("data-p"))
        assert p == pytest.approx(_softmax(logits, t)[token], abs=EXACT), (t, token)
        height, y = float(bar.get_attribute("height")), float(bar.get_attribute("y"))
        if t == 0 and p > 0:
            scale = height / p
        bottoms.append(y + height)
    assert max(bottoms) - min(bottoms) <= PIXEL  # every bar stands on the axis
    for i in range(bars.count()):
        bar = bars.nth(i)
        p = float(bar.get_attribute("data-p"))
        assert float(bar.get_attribute("height")) == pytest.approx(p * scale, abs=2 * PIXEL)
    uniform = page.locator("#cs-svg line.cs-uniform")
    hard = page.locator("#cs-svg line.cs-hardmax")
    assert float(uniform.get_attribute("data-entropy")) == pytest.approx(math.log(len(logits)))
    ties = sum(1 for x in logits if x == max(logits))
    assert float(hard.get_attribute("data-entropy")) == pytest.approx(math.log(ties), abs=EXACT)
    # the markers' heights follow their entropy on the axis the two limit lines fix
    y_uniform, y_hard = float(uniform.get_attribute("y1")), float(hard.get_attribute("y1"))
    points = page.locator("#cs-svg circle.cs-point")
    assert points.count() == len([t for t in temperatures if t > 0])
    for i in range(points.count()):
        point = points.nth(i)
        t = float(point.get_attribute("data-tau"))
        entropy = _entropy(_softmax(logits, t))
        assert float(point.get_attribute("data-entropy")) == pytest.approx(entropy, abs=EXACT)
        share = (entropy - math.log(ties)) / (math.log(len(logits)) - math.log(ties))
        expected_y = y_hard + share * (y_uniform - y_hard)
        assert float(point.get_attribute("cy")) == pytest.approx(expected_y, abs=2 * PIXEL)
    # the curve: entropy never falls as τ rises (left to right, y never goes down the page)
    curve = page.get_attribute("#cs-svg .cs-curve", "points").split()
    ys = [float(xy.split(",")[1]) for xy in curve]
    assert all(b <= a + PIXEL for a, b in itertools.pairwise(ys))
    # the text alternative: a title and a description, and every number in a table
    assert page.get_attribute("#cs-svg", "role") == "img"
    assert page.text_content("#cs-svg-title") and f"τ = {tau}" in page.text_content("#cs-svg-desc")
    page.click("#cs-picture-numbers > summary")
    rows = page.locator("#cs-picture-table tr")
    assert rows.count() == 1 + len(temperatures)
    for r, t in enumerate(temperatures, start=1):
        cells = rows.nth(r).locator("td").all_text_contents()
        expected = [*_softmax(logits, t), _entropy(_softmax(logits, t))]
        assert [float(c) for c in cells] == pytest.approx(expected, abs=5e-7)  # 6 decimals
    assert page.get_attribute("#cs-range", "aria-valuetext") == str(tau)

