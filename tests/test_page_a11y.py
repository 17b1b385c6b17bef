"""The page of ``sampler serve`` on any screen and with any input, in Chromium.

At 1280 × 900 and 390 × 844 (a phone), light and dark: the settings and the chart do not
overlap and every bar has a width (element boxes); axe-core finds no serious or critical
violation; the tabs follow the WAI-ARIA tabs pattern; a keyboard alone (no mouse event)
generates, opens a step and branches, and the branch is what the library generates; labels show
whitespace (␣ ⏎ →) and the bytes of split characters (<0xE2>).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pytest
from axe import serious_violations

from sampler.serve import stream
from sampler.serve.server import serving
from sampler.sources.synthetic import SyntheticSource, pseudo_word
from sampler.sources.synthetic_spec import parse_synthetic

SPEC = "synthetic:markov?vocab=500&seed=5"
SIZES = {"desktop": {"width": 1280, "height": 900}, "phone": {"width": 390, "height": 844}}
# The page's visible whitespace, transcribed here from the issue (not read from tokens.js).
VISIBLE = {" ": "␣", "\n": "⏎", "\t": "→"}
FRAGMENT = b"\xe2\x80"  # the first two bytes of "—" (E2 80 94): no whole character


class _Bytes:
    """llama.cpp's ``source.text.token_bytes``, for the tokens whose label is ``�``."""

    def token_bytes(self, token: int) -> bytes:
        return FRAGMENT


class SpacedSource(SyntheticSource):
    """The markov source with labels of every kind a tokenizer has: a lone space, a leading
    space, a trailing newline, a leading tab, a split character, a plain word."""

    text = _Bytes()
    kind_of: ClassVar[dict[int, int]] = {}  # a token's label kind (set per test; else by id)

    def token_label(self, token_id: int) -> str:
        word = pseudo_word(int(token_id))
        kind = self.kind_of.get(int(token_id), int(token_id) % 6)
        return (" ", " " + word, word + "\n", "\t" + word, "\ufffd", word)[kind]


def _kind(label: str) -> str:
    if label in (" ", "\ufffd"):
        return "lone space" if label == " " else "bytes"
    return {" ": "leading space", "\t": "tab"}.get(label[0]) or (
        "newline" if label.endswith("\n") else "word"
    )


def _expected(label: str) -> str:
    return "<0xE2><0x80>" if label == "\ufffd" else "".join(VISIBLE.get(c, c) for c in label)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    source = parse_synthetic(SPEC)
    with serving(source, str(tmp_path_factory.mktemp("a11y") / "runs.db")) as (url, _app):
        yield url, source


def _page(browser, size="desktop", scheme="light"):
    # bypass_csp: axe-core is injected as a script the page's policy would refuse
    context = browser.new_context(viewport=SIZES[size], color_scheme=scheme, bypass_csp=True)
    page = context.new_page()
    page.problems = []
    page.on("pageerror", lambda error: page.problems.append(str(error)))
    page.on("console", lambda m: m.type == "error" and page.problems.append(m.text))
    return page


def _generate_and_open(page, url):
    page.goto(url + "/#prompt=kalo%20mira&temperature=1.3")
    page.wait_for_selector("#step-title:has-text('tokens in')")
    page.fill("#max-tokens", "10")
    page.click("#generate")
    page.wait_for_function("() => document.querySelectorAll('.generation.done').length === 3")
    page.query_selector_all(".generation")[1].query_selector('.tok[data-step="2"]').click()
    page.wait_for_selector("#step-title:has-text('click a bar')")


def _box(page, selector):
    return page.eval_on_selector(selector, "e => e.getBoundingClientRect().toJSON()")


def _overlap(a, b):
    return (
        a["left"] < b["right"]
        and b["left"] < a["right"]
        and a["top"] < b["bottom"]
        and (b["top"] < a["bottom"])
    )


@pytest.mark.parametrize("size", SIZES)
def test_settings_and_chart_do_not_overlap_and_bars_have_width(server, browser, size):
    url, _ = server
    page = _page(browser, size)
    _generate_and_open(page, url)
    if size == "phone":  # folded above the chart at first; opened, it pushes the chart down
        assert page.get_attribute("#settings-box", "open") is None
        page.keyboard.press("Escape")
        page.click("#settings-box > summary")
    assert page.get_attribute("#settings-box", "open") is not None
    settings, chart = _box(page, "#controls"), _box(page, "#bars")
    assert settings["width"] > 0 and chart["width"] > 0 and chart["height"] > 0
    assert not _overlap(settings, chart), (settings, chart)
    for bar in page.query_selector_all("#bars .bar-row"):
        track = bar.query_selector(".track").bounding_box()
        assert track["width"] >= 40, track  # room to compare bars, at 390 px too
        for part in (".b-base", ".b-final"):
            assert bar.query_selector(part).bounding_box()["width"] > 0
    top = page.query_selector("#bars .bar-row")  # widths are the probabilities
    p = float(top.get_attribute("data-final"))
    width = top.query_selector(".b-final").bounding_box()["width"]
    # 1 px: the style's width is rounded to 0.01 % and the layout to device pixels
    assert width == pytest.approx(p * top.query_selector(".track").bounding_box()["width"], abs=1)
    # nothing sticks out sideways (no horizontal scrolling of the page)
    assert page.evaluate("() => document.documentElement.scrollWidth") <= SIZES[size]["width"]
    assert not page.problems
    page.context.close()


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("size", SIZES)
def test_axe_finds_no_serious_violation(server, browser, size, scheme):
    url, _ = server
    page = _page(browser, size, scheme)
    _generate_and_open(page, url)
    page.evaluate("() => { document.getElementById('settings-box').open = true; }")
    page.fill("#set-top_a", "0.1")  # a greyed-out setting (top-a is not in hf's order) scanned
    found = serious_violations(page)
    page.keyboard.press("Escape")
    page.click("#save")
    page.wait_for_selector("#save:has-text('Saved as')")
    page.click("#tab-button-cheatsheet")
    found += serious_violations(page)
    page.click("#tab-button-runs")
    page.click("#runs-list button")
    page.wait_for_selector("#run-view table.steps")
    found += serious_violations(page)
    assert found == [], found
    page.context.close()


def test_tabs_follow_the_aria_tabs_pattern(server, browser):
    url, _ = server
    page = _page(browser)
    page.goto(url + "/")
    page.wait_for_selector("#step-title:has-text('tokens in')")
    tabs = page.query_selector_all("[role=tablist] [role=tab]")
    assert len(tabs) == 3
    for tab in tabs:
        panel = page.query_selector("#" + tab.get_attribute("aria-controls"))
        assert panel.get_attribute("role") == "tabpanel"
        assert panel.get_attribute("aria-labelledby") == tab.get_attribute("id")

    def selected():
        return [t.get_attribute("aria-selected") for t in tabs], page.evaluate(
            "() => document.activeElement.id"
        )

    page.focus("#tab-button-explore")
    assert [t.get_attribute("tabindex") for t in tabs] == ["0", "-1", "-1"]  # one Tab stop
    page.keyboard.press("ArrowRight")
    assert selected() == (["false", "true", "false"], "tab-button-cheatsheet")
    assert page.is_visible("#tab-cheatsheet") and page.is_hidden("#tab-explore")
    page.keyboard.press("End")
    assert selected() == (["false", "false", "true"], "tab-button-runs")
    page.keyboard.press("ArrowRight")  # wraps
    assert selected() == (["true", "false", "false"], "tab-button-explore")
    page.keyboard.press("ArrowLeft")
    assert selected() == (["false", "false", "true"], "tab-button-runs")
    page.keyboard.press("Home")
    assert selected() == (["true", "false", "false"], "tab-button-explore")
    page.context.close()


def _tab_to(page, selector, backwards=False, limit=250):
    """Press Tab (or Shift+Tab) until the focused element matches ``selector``."""
    for _ in range(limit):
        page.keyboard.press("Shift+Tab" if backwards else "Tab")
        if page.evaluate("(s) => document.activeElement.matches(s)", selector):
            return
    raise AssertionError(f"Tab never reached {selector}")


def test_keyboard_alone_opens_a_step_and_branches(server, browser):
    url, source = server
    page = _page(browser)
    page.goto(url + "/#prompt=kalo&temperature=1.5")
    page.wait_for_selector("#step-title:has-text('tokens in')")
    page.evaluate(
        """() => { window.pointerEvents = 0;
        for (const name of ["pointerdown", "mousedown", "mouseup", "touchstart"])
          document.addEventListener(name, () => window.pointerEvents++, true); }"""
    )
    _tab_to(page, "#max-tokens")
    page.keyboard.press("Control+A")
    page.keyboard.type("8")
    _tab_to(page, "#generate")
    page.keyboard.press("Enter")
    page.wait_for_function("() => document.querySelectorAll('.generation.done').length === 3")
    _tab_to(page, ".generation:nth-child(2) .tok")  # a column is one Tab stop
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowRight")
    assert page.evaluate("() => document.activeElement.dataset.step") == "2"
    # the alternatives show on keyboard focus, and the token is described by them
    assert page.is_visible("#tok-tip") and "alternatives" in page.text_content("#tok-tip")
    assert page.evaluate("() => document.activeElement.getAttribute('aria-describedby')") == (
        "tok-tip"
    )
    page.keyboard.press("Enter")
    page.wait_for_selector("#step-title:has-text('step 3')")
    columns = page.query_selector_all(".generation")
    sample = [int(s.get_attribute("data-token")) for s in columns[1].query_selector_all(".tok")]

    _tab_to(page, "#bars .bar-row", backwards=True)  # the bars are before the columns
    page.keyboard.press("End")
    chosen = sample[2]
    if page.evaluate("() => document.activeElement.dataset.token") == str(chosen):
        page.keyboard.press("ArrowUp")
    alternative = int(page.evaluate("() => document.activeElement.dataset.token"))
    assert alternative != chosen
    assert page.evaluate("() => document.activeElement.getAttribute('aria-disabled')") == "false"
    page.keyboard.press("Enter")
    page.wait_for_function("() => document.querySelectorAll('.generation.done').length === 4")
    branch = page.query_selector_all(".generation")[3]
    got = [int(t.get_attribute("data-token")) for t in branch.query_selector_all(".tok[data-step]")]
    row = {"temperature": 1.5, "seed": 0, "sample": 0}
    expected = stream.prepare(
        source,
        {
            "prompt": "kalo",
            "forced": [*sample[:2], alternative],
            "rows": [row],
            "max_new_tokens": 5,
        },
    ).run()
    assert got == [step["token"] for step in expected[0].steps]
    assert page.evaluate("() => window.pointerEvents") == 0
    assert not page.problems
    page.context.close()


def test_whitespace_and_split_characters_are_visible(browser, tmp_path):
    base = parse_synthetic(SPEC)
    source = SpacedSource(base.kind, base.params, base.name)
    first = base.start([base.encode("kalo")])[0][0]  # the bars show these six, at least
    source.kind_of = {int(t): k for k, t in enumerate(np.argsort(-first, kind="stable")[:6])}
    with serving(source, None) as (url, _app):
        page = _page(browser)
        page.goto(url + "/#prompt=kalo&temperature=1.5")
        page.wait_for_selector("#step-title:has-text('tokens in')")
        kinds = set()
        for bar in page.query_selector_all("#bars .bar-row"):
            label = source.token_label(int(bar.get_attribute("data-token")))
            assert bar.query_selector(".label").text_content() == _expected(label)
            kinds.add(_kind(label))
        assert kinds == {"lone space", "leading space", "newline", "tab", "bytes", "word"}
        page.fill("#max-tokens", "16")
        page.click("#generate")
        page.wait_for_function("() => document.querySelectorAll('.generation.done').length === 3")
        for token in page.query_selector_all(".generation .tok"):
            label = source.token_label(int(token.get_attribute("data-token")))
            shown = token.text_content()
            if label == "\ufffd":  # no character to show: its bytes
                assert shown == "<0xE2><0x80>" and token.query_selector(".byte")
            elif label.endswith("\n"):  # the newline is marked and still breaks the line
                assert "⏎\n" in shown
            elif label == " ":  # a token of spaces only shows them (synthetic text adds one)
                assert set(shown) == {"␣"}
        # the grey whitespace and byte marks keep their contrast on every probability colour
        assert serious_violations(page) == []
        page.context.close()


def test_the_page_shows_labels_as_text_never_as_markup(browser):
    base = parse_synthetic(SPEC)

    class Markup(SyntheticSource):
        def token_label(self, token_id: int) -> str:
            return f"<img src=x onerror=alert({token_id})>"

    source = Markup(base.kind, base.params, base.name)
    with serving(source, None) as (url, _app):
        page = _page(browser)
        page.goto(url + "/#prompt=kalo")
        page.wait_for_selector("#step-title:has-text('tokens in')")
        assert page.query_selector("#bars img") is None
        label = page.text_content("#bars .bar-row .label")
        assert label.startswith("<img") and "␣" in label  # text, its spaces shown
        page.context.close()
