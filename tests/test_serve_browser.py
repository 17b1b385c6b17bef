"""The page of ``sampler serve`` in Chromium, served by a real server on 127.0.0.1.

Against a synthetic model and SmolLM2: the page's numbers after slider moves equal the
library's (``distribution`` and StepStats on the very logits row the server sent) within
1e-6; greedy beside samples streams and marks where each sample leaves greedy; a click on an
alternative token branches, and the branch is what the library generates after that prefix;
the session saves as a run of kind ``serve``; errors show in the page; the URL fragment
reproduces a view; the cheat-sheet tab; no request leaves the server's origin. Screenshots go
to the test's temporary folder (``scripts/screenshot_page.py`` makes README's).
"""

from __future__ import annotations

import base64

import numpy as np
import pytest

from sampler.cheatsheet import cheat_sheet
from sampler.engine.params import SamplingParams
from sampler.engine.sampling import Sampler, distribution
from sampler.errors import InvalidInputError
from sampler.serve import api, stream
from sampler.serve.server import serving
from sampler.sources.synthetic_spec import parse_synthetic

PROMPT = "kalo mira sena"
GRID = [
    {"temperature": 0.7},
    {"temperature": 1.6, "top_k": 12},
    {"temperature": 1.0, "top_p": 0.8},
    {"temperature": 0.9, "min_p": 0.1, "repetition_penalty": 1.3},
    {"temperature": 1.2, "typical_p": 0.7},
    {"temperature": 0.0},
]
CONTROLS = ("temperature", "top_k", "top_p", "min_p", "repetition_penalty", "typical_p")
DEFAULTS = {
    "temperature": 1.0,
    "top_k": 0,
    "top_p": 1.0,
    "min_p": 0.0,
    "repetition_penalty": 1.0,
    "typical_p": 1.0,
}


@pytest.fixture(scope="module")
def synthetic_server(tmp_path_factory):
    source = parse_synthetic("synthetic:markov?vocab=500&seed=5")
    db = str(tmp_path_factory.mktemp("serve") / "runs.db")
    with serving(source, db) as (url, _app):
        yield url, source, db


@pytest.fixture
def page(browser):
    page = browser.new_page(viewport={"width": 1300, "height": 1000})
    page.problems = []
    page.requests = []
    page.on("pageerror", lambda error: page.problems.append(str(error)))
    page.on("console", lambda m: m.type == "error" and page.problems.append(m.text))
    page.on("request", lambda request: page.requests.append(request.url))
    yield page
    page.close()


def fill_setting(page, name, text):
    """Type ``text`` into a setting's box, opening its group first as a user would (a closed
    group hides its settings)."""
    group = page.locator(f"details.group:has(#set-{name})")
    if group.get_attribute("open") is None:
        group.locator("summary").click()
    page.fill(f"#set-{name}", text)


def _set(page, values):
    for name in CONTROLS:
        fill_setting(page, name, str(values.get(name, DEFAULTS[name])))


def _check_grid(page, source, prompt, chat):
    """Move the controls over GRID and compare the page with the library on the server's row."""
    answer = api.next_token(source, {"prompt": prompt, "chat": chat})
    row = np.frombuffer(base64.b64decode(answer["logits_float32_b64"]), "<f4")
    history = answer["history"]
    slowest = 0.0
    for values in GRID:
        _set(page, values)
        params = SamplingParams(**values)
        expected = distribution(row, params, history=[history])
        probs = np.array(page.evaluate("() => Array.from(window.lastResult.probs)"))
        assert np.abs(probs - expected).max() <= 1e-6, values
        for bar in page.query_selector_all("#bars .bar-row"):
            token = int(bar.get_attribute("data-token"))
            assert float(bar.get_attribute("data-final")) == pytest.approx(
                expected[token], abs=1e-6
            )
        _, stats = Sampler([SamplingParams(**values, seed=0)]).step(row[None], history=[history])
        python = stats.row(0)
        for name in ("entropy_base", "entropy_temp", "entropy_final", "kept_mass", "top1_prob"):
            shown = float(page.text_content(f'[data-stat="{name}"]'))
            assert shown == pytest.approx(python[name], abs=1e-6 + 5e-7), (values, name)
            bits = (
                float(page.text_content(f'[data-bits="{name}"]'))
                if name.startswith("entropy")
                else None
            )
            if bits is not None:
                assert bits == pytest.approx(python[name] / np.log(2), abs=1.5e-6)
        assert int(page.text_content('[data-stat="kept_tokens"]')) == python["kept_tokens"]
        slowest = max(slowest, float(page.get_attribute("#recompute-ms", "data-ms")))
    return slowest


def test_page_matches_the_library_on_a_synthetic_model(synthetic_server, page, tmp_path):
    url, source, _ = synthetic_server
    page.goto(url + "/")
    page.fill("#prompt", PROMPT)
    page.click("#load")
    page.wait_for_selector("#step-title:has-text('tokens in')")
    _check_grid(page, source, PROMPT, chat=False)
    assert page.text_content("#model") == source.name
    assert not page.problems
    assert all(u.startswith(url) for u in page.requests), page.requests
    page.screenshot(path=str(tmp_path / "synthetic.png"), full_page=True)


def test_page_matches_the_library_on_smollm2(gguf, page, tmp_path):
    with serving(gguf, None) as (url, _app):
        page.goto(url + "/#prompt=The%20capital%20of%20France%20is&chat=1")
        page.wait_for_selector("#step-title:has-text('tokens in')")
        slowest = _check_grid(page, gguf, "The capital of France is", chat=True)
        page.screenshot(path=str(tmp_path / "smollm2.png"), full_page=True)
    assert not page.problems
    print(f"\nslowest recompute at V = 49,152 over the grid: {slowest:.2f} ms")


def test_the_chat_box_starts_as_the_models_default(synthetic_server, gguf, page):
    """sampler.engine.defaults: the model's own chat template (SmolLM2 has one, synthetic has none);
    a link's chat=0 or chat=1 wins, and the fragment always says which."""
    url, _source, _ = synthetic_server
    page.goto(url + "/")
    page.wait_for_selector("#step-title:has-text('tokens in')")
    assert not page.is_checked("#chat")
    with serving(gguf, None) as (url, _app):
        for fragment, checked in (("", True), ("#chat=0", False), ("#chat=1", True)):
            page.goto("about:blank")
            page.goto(url + "/" + fragment)
            page.wait_for_selector("#step-title:has-text('tokens in')")
            assert page.is_checked("#chat") is checked, fragment
            page.wait_for_function("() => location.hash.includes('chat=')")
            assert f"chat={int(checked)}" in page.evaluate("() => location.hash")
    assert not page.problems


def test_generate_branch_and_save(synthetic_server, page):
    url, source, _db = synthetic_server
    page.goto(url + "/")
    page.fill("#prompt", PROMPT)
    page.click("#load")
    page.wait_for_selector("#step-title:has-text('tokens in')")
    _set(page, {"temperature": 1.5})
    page.fill("#samples", "2")
    page.fill("#seed", "11")
    page.fill("#max-tokens", "8")
    page.click("#generate")
    page.wait_for_function("() => document.querySelectorAll('.generation.done').length === 3")
    columns = page.query_selector_all(".generation")
    tokens = [
        [int(s.get_attribute("data-token")) for s in c.query_selector_all(".tok")] for c in columns
    ]
    rows = [
        {"temperature": 1.5, "mode": "greedy", "seed": 11},
        {"temperature": 1.5, "seed": 11, "sample": 0},
        {"temperature": 1.5, "seed": 11, "sample": 1},
    ]
    library = stream.prepare(
        source, {"prompt": PROMPT, "chat": False, "rows": rows, "max_new_tokens": 8}
    ).run()
    assert tokens == [[step["token"] for step in c.steps] for c in library]  # EOS shown too
    for index in (1, 2):  # the divergence mark is where the sample first differs from greedy
        pairs = zip(tokens[0], tokens[index], strict=False)
        differs = [i for i, (a, b) in enumerate(pairs) if a != b]
        if not differs and len(tokens[0]) != len(tokens[index]):  # one path ended first
            differs = [min(len(tokens[0]), len(tokens[index]))]
        marked = columns[index].query_selector(".tok.diverged")
        if differs:
            assert int(marked.get_attribute("data-step")) == differs[0]
        else:
            assert marked is None

    # opening greedy's token keeps the page's mode (else the next Generate has no samples)
    columns[0].query_selector('.tok[data-step="0"]').click()
    page.wait_for_selector("#step-title:has-text('greedy, step 1')")
    assert page.input_value("#mode") == "sample"

    # open step 3 of the first sample and branch on its least likely shown alternative
    columns[1].query_selector('.tok[data-step="2"]').click()
    page.wait_for_selector("#step-title:has-text('step 3')")
    chosen = tokens[1][2]
    chosen_bar = page.query_selector("#bars .bar-row.chosen")  # the drawn token is shown
    assert chosen_bar is not None and int(chosen_bar.get_attribute("data-token")) == chosen
    bars = page.query_selector_all("#bars .bar-row")
    alternative = int(
        next(
            b for b in reversed(bars) if int(b.get_attribute("data-token")) != chosen
        ).get_attribute("data-token")
    )
    page.click(f'#bars .bar-row[data-token="{alternative}"]')
    page.wait_for_function("() => document.querySelectorAll('.generation.done').length === 4")
    branch = page.query_selector_all(".generation")[3]
    branch_tokens = [
        int(s.get_attribute("data-token")) for s in branch.query_selector_all(".tok:not(.forced)")
    ]
    forced = [*tokens[1][:2], alternative]
    expected = stream.prepare(
        source,
        {"prompt": PROMPT, "chat": False, "forced": forced, "rows": [rows[1]], "max_new_tokens": 5},
    ).run()
    assert branch_tokens == [step["token"] for step in expected[0].steps]

    # the prompt's own next-token view has no step to branch from: a bar click does nothing
    page.click("#load")
    page.wait_for_selector("#step-title:has-text('next token after the prompt')")
    assert page.get_attribute("#bars .bar-row", "aria-disabled") == "true"  # and says so
    page.click("#bars .bar-row", force=True)  # force: Playwright skips aria-disabled elements
    page.wait_for_timeout(300)
    assert len(page.query_selector_all(".generation")) == 4

    page.click("#save")
    page.wait_for_selector("#save:has-text('Saved as')")
    assert page.is_disabled("#save")  # saved once; nothing new to save
    run_id = page.text_content("#save").split("Saved as ")[1]
    listed = page.evaluate("() => fetch('/api/runs').then((r) => r.json())")
    assert any(r["id"] == run_id and r["kind"] == "serve" for r in listed)
    assert not page.problems


def test_errors_show_in_the_page(synthetic_server, page):
    url, _, _ = synthetic_server
    page.goto(url + "/")
    page.wait_for_selector("#step-title:has-text('tokens in')")
    page.evaluate("() => { document.getElementById('prompt').removeAttribute('maxlength'); }")
    page.fill("#prompt", "x" * 20_001)
    page.click("#load")
    page.wait_for_selector("#error:not([hidden])")
    assert "prompt has 20001 characters: at most 20000" in page.text_content("#error")


def test_a_bad_fragment_leaves_the_page_working(synthetic_server, page):
    url, _, _ = synthetic_server
    page.goto(url + "/#tab=nope&order=foo&mode=bogus&top_k=abc&temperature=0.5")
    page.wait_for_selector("#step-title:has-text('tokens in')")
    assert page.input_value("#order") == "hf" and page.input_value("#mode") == "sample"
    assert page.input_value("#set-temperature") == "0.5"
    assert page.is_visible("#tab-explore") and page.query_selector("#bars .bar-row")
    assert page.is_hidden("#error") and not page.problems


def test_fragment_reproduces_a_view(synthetic_server, page):
    url, source, _ = synthetic_server
    page.goto(url + "/#tab=explore&prompt=kalo&order=vllm&temperature=0.5&top_k=7&min_p=0.02")
    page.wait_for_selector("#step-title:has-text('tokens in')")
    assert page.input_value("#order") == "vllm" and page.input_value("#set-top_k") == "7"
    answer = api.next_token(source, {"prompt": "kalo", "chat": False})
    row = np.frombuffer(base64.b64decode(answer["logits_float32_b64"]), "<f4")
    params = SamplingParams(order="vllm", temperature=0.5, top_k=7, min_p=0.02)
    expected = distribution(row, params, history=[answer["history"]])
    for bar in page.query_selector_all("#bars .bar-row"):
        token = int(bar.get_attribute("data-token"))
        assert float(bar.get_attribute("data-final")) == pytest.approx(expected[token], abs=1e-6)
    page.wait_for_function("() => location.hash.includes('top_k=7')")


def test_a_link_reopens_a_generated_step(synthetic_server, page, browser):
    url, _, _ = synthetic_server
    page.goto(url + "/#prompt=kalo&temperature=1.4")
    page.wait_for_selector("#step-title:has-text('tokens in')")
    page.fill("#samples", "1")
    page.fill("#max-tokens", "6")
    page.click("#generate")
    page.wait_for_function("() => document.querySelectorAll('.generation.done').length === 2")
    page.query_selector_all(".generation")[1].query_selector('.tok[data-step="3"]').click()
    page.wait_for_selector("#step-title:has-text('step 4')")
    page.wait_for_function("() => location.hash.includes('forced=')")
    link = page.url
    shown = page.evaluate("() => Array.from(window.lastResult.probs)")
    other = browser.new_page()
    other.goto(link)
    other.wait_for_selector("#step-title:has-text('from the link')")
    assert other.evaluate("() => Array.from(window.lastResult.probs)") == shown
    other.close()


def test_cheat_sheet_tab(synthetic_server, page):
    url, _, _ = synthetic_server
    page.goto(url + "/#tab=cheatsheet&cs=3.0,1.0,0.2&cst=0.5")
    page.wait_for_selector("#cs-summary")
    python = cheat_sheet([3.0, 1.0, 0.2], temperatures=[0.5])["rows"][0]
    shown = [float(page.text_content(f'[data-cs="2-{i}"]')) for i in range(3)]
    assert shown == pytest.approx(python["probs"], abs=5e-7)
    entropy = float(page.get_attribute("#cs-summary", "data-entropy"))
    assert entropy == pytest.approx(python["entropy_nats"], abs=1e-12)


def test_run_log_tab_shows_a_run_s_steps(synthetic_server, page):
    from click.testing import CliRunner

    from sampler.cli import cli
    from sampler.runlog.store import RunStore

    url, source, db = synthetic_server
    args = [
        "generate",
        "--model",
        source.name,
        "--prompt",
        "kalo <b>",
        "-t",
        "0.8",
        "--max-new-tokens",
        "5",
        "--seed",
        "2",
        "--db",
        db,
    ]
    assert CliRunner().invoke(cli, args).exit_code == 0
    with RunStore(db) as store:
        run = store.list_runs(1)[0]
        completion = store.completions(run["id"])[0]
    page.goto(url + "/#tab=runs")
    page.click(f"#runs-list tr:has-text('{run['id']}')")
    page.wait_for_selector("#run-view table.steps")
    assert page.text_content("#run-view .prompt-text") == "kalo <b>"  # text, not markup
    cells = page.query_selector_all("#run-view table.steps tr")
    assert len(cells) == 1 + len(completion["steps"])
    for row, step in zip(cells[1:], completion["steps"], strict=True):
        values = [c.text_content() for c in row.query_selector_all("td")]
        assert values[1] == source.token_label(step["token"])  # the token as text (its label)
        assert int(values[2]) == step["token"]
        assert float(values[5]) == pytest.approx(step["entropy_final"], abs=5e-5)
    shown = [t.text_content() for t in page.query_selector_all("#run-view .run-tokens .tok")]
    assert shown == [source.token_label(step["token"]) for step in completion["steps"]]
    assert not page.problems


@pytest.mark.parametrize(
    ("name", "typed", "value"),
    [
        ("temperature", "-1", -1),
        ("top_p", "1.5", 1.5),
        ("top_k", "2.5", 2.5),
        ("min_tokens_to_keep", "0", 0),
        ("mirostat", "3", 3),
        ("repetition_penalty", "0", 0),
        ("frequency_penalty", "2.5", 2.5),
        ("dry_base", "0.5", 0.5),
    ],
)
def test_a_typed_value_the_library_refuses_is_shown_with_its_message(
    synthetic_server, page, name, typed, value
):
    url, _, _ = synthetic_server
    page.goto(url + "/")
    page.wait_for_selector("#step-title:has-text('tokens in')")
    before = page.evaluate("() => window.lastResult")
    fill_setting(page, name, typed)
    with pytest.raises(InvalidInputError) as refused:
        SamplingParams(**{name: value})
    page.wait_for_selector("#error:not([hidden])")
    assert page.text_content("#error") == str(refused.value)
    assert page.evaluate("() => window.lastResult") == before  # nothing drawn from it
    assert "invalid" in page.get_attribute(f"#set-{name}", "class")
    page.fill(f"#set-{name}", str(SamplingParams().__getattribute__(name)))
    page.wait_for_selector("#error", state="hidden")
