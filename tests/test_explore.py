"""``sampler explore``: the offline page file, its bad input, and the file in Chromium.

The page's readouts at a step are checked against the library (``distribution`` and a
Sampler step's StepStats on the embedded row) after moving its controls; the file must make
no request but its own load.
"""

from __future__ import annotations

import base64
import json
import re

import numpy as np
import pytest
from click.testing import CliRunner
from test_step_stats import U32, float32_nats

from sampler.cli import cli
from sampler.engine.params import SamplingParams
from sampler.engine.sampling import Sampler, distribution

SYNTHETIC = "synthetic:markov?vocab=300&seed=4"


def _explore(tmp_path, *extra):
    out = tmp_path / "page.html"
    result = CliRunner().invoke(
        cli,
        [
            "explore",
            "--model",
            SYNTHETIC,
            "--prompt",
            "kalo mira",
            "--steps",
            "5",
            "--out",
            str(out),
            *extra,
        ],
    )
    return result, out


def _embedded(out) -> dict:
    text = out.read_text(encoding="utf-8")
    block = re.search(
        r'<script type="application/json" id="sampler-data">(.*?)</script>', text, re.S
    )
    return json.loads(block.group(1))


def test_explore_writes_one_self_contained_file(tmp_path):
    result, out = _explore(tmp_path)
    assert result.exit_code == 0, result.output
    data = _embedded(out)
    assert data["mode"] == "offline" and len(data["steps"]) == 5
    text = out.read_text(encoding="utf-8")
    assert "connect-src 'none'" in text  # the file may not call anything
    assert not re.search(r'(src|href)="(https?:)?//', text)  # nothing from another origin
    row = np.frombuffer(base64.b64decode(data["steps"][0]["view"]["logits_float32_b64"]), "<f4")
    assert row.size == 300


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--out", "x.txt"], "must name an .html file"),
        (["--top-p", "1.5"], "top_p=1.5 is out of range"),
        (["--out", "missing-folder/page.html"], "cannot write"),
    ],
)
def test_explore_bad_input_is_one_line_and_writes_nothing(tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    keep = tmp_path / "page.html"
    keep.write_text("earlier work")
    options = ["--out", "page.html", *args]
    result = CliRunner().invoke(
        cli, ["explore", "--model", SYNTHETIC, "--prompt", "kalo", *options]
    )
    assert result.exit_code != 0
    assert message in result.output and "Traceback" not in result.output
    assert keep.read_text() == "earlier work"


def test_explore_steps_out_of_range(tmp_path):
    result, _ = _explore(tmp_path, "--steps", "0")
    assert result.exit_code == 2 and "Traceback" not in result.output


def test_offline_page_in_chromium_matches_the_library(tmp_path, browser):
    result, out = _explore(tmp_path, "-t", "0.8", "--top-k", "50", "--seed", "3")
    assert result.exit_code == 0, result.output
    data = _embedded(out)
    page = browser.new_page()
    requests = []
    page.on("request", lambda request: requests.append(request.url))
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(out.as_uri() + "#step=2")
    page.wait_for_selector("#bars .bar-row")
    assert requests == [out.as_uri() + "#step=2"] or requests == [out.as_uri()]
    assert not errors
    # the sliders start at the generation's settings, the fragment chose step 3
    assert page.input_value("#set-top_k") == "50"
    step = data["steps"][2]
    row = np.frombuffer(base64.b64decode(step["view"]["logits_float32_b64"]), "<f4")
    history = step["view"]["history"]
    cases = [
        {"temperature": 0.5, "top_k": 0, "top_p": 0.8, "min_p": 0.0},
        {"temperature": 1.3, "top_k": 0, "top_p": 1.0, "min_p": 0.1},
        {"temperature": 2.0, "top_k": 5, "top_p": 0.95, "min_p": 0.0},
        {"temperature": 0.0, "top_k": 0, "top_p": 1.0, "min_p": 0.0},
    ]
    for values in cases:
        for name, value in values.items():
            page.fill(f"#set-{name}", str(value))
        params = SamplingParams(**values)
        expected = distribution(row, params, history=[history])
        # the page computes in float64 from the float32 logits; the engine's float32 law is
        # off by ≤ 2(k + 2 + 2 max|x|) u relative (x - max, exp, division, a k-term sum)
        kept = int((expected > 0).sum())
        rtol = 2 * (kept + 2 + 2 * float(np.abs(row[np.isfinite(row)]).max())) * U32
        for bar in page.query_selector_all("#bars .bar-row"):
            token = int(bar.get_attribute("data-token"))
            assert float(bar.get_attribute("data-final")) == pytest.approx(
                expected[token], rel=rtol, abs=0
            )
        _, stats = Sampler([SamplingParams(**values, seed=0)]).step(row[None], history=[history])
        shown = page.text_content('[data-stat="entropy_final"]')
        # shown with 6 decimals (half a unit: 5e-7), the engine's float32 rounding besides
        law = expected.astype(np.float64) / expected.sum(dtype=np.float64)
        bound = 5e-7 + float32_nats(law)
        assert float(shown) == pytest.approx(stats.row(0)["entropy_final"], abs=bound)
        assert int(page.text_content('[data-stat="kept_tokens"]')) == stats.row(0)["kept_tokens"]
    page.click("#step-title")  # away from the number boxes, which take the arrow keys
    page.keyboard.press("ArrowRight")  # the arrow keys step through the text
    assert page.get_attribute("#offline-text .tok.selected", "data-step") == "3"
    assert "step 4 of 5" in page.text_content("#step-title")
    page.close()


@pytest.mark.parametrize("prompt", ["kalo <!--<script> mesu", "</script><script>alert(1)</script>"])
def test_markup_in_the_text_stays_text(tmp_path, browser, prompt):
    out = tmp_path / "page.html"
    args = ["explore", "--model", SYNTHETIC, "--prompt", prompt, "--steps", "2", "--out", str(out)]
    assert CliRunner().invoke(cli, args).exit_code == 0
    assert "<!--<script" not in out.read_text() and "<script>alert" not in out.read_text()
    page = browser.new_page()
    dialogs = []
    page.on("dialog", lambda dialog: dialogs.append(dialog.message))
    page.goto(out.as_uri())
    page.wait_for_selector("#bars .bar-row")  # the page's own script ran
    assert page.text_content("#offline-text .prompt-text") == prompt and not dialogs
    page.close()
