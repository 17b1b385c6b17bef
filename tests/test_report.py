"""Run plots and report pages, on a synthetic run log (no model needed)."""

from __future__ import annotations

import base64
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from sampler.errors import InvalidInputError
from sampler.plots.figures import pyplot
from sampler.report.pages import html_report, markdown_report, write_report
from sampler.report.run_plots import (
    PLOT_FILES,
    distinct_vs_temperature,
    entropy_traces,
    entropy_vs_temperature,
    first_step_bars,
    printable_label,
    save_run_plots,
)
from sampler.report.summary import markdown_summary, summarize
from sampler.report.telemetry_plots import TELEMETRY_PLOTS

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SCRIPT = "<script>alert(1)</script>"
PROMPTS = ["Tell me about <b>tags</b> & ampersands", "Count to three"]
TEMPERATURES = [0.0, 0.7, 1.5]
SAMPLES = 3
# Twelve first-step candidates, so the bar plot has to cut the union down to ten.
LABELS = [SCRIPT, "&", "\n", " the", "$x$", "a", "```", "\t", "é", "'", '"', "<"]

# a run without mirostat or dynamic temperature gets none of their telemetry plots
BASE_PLOTS = [name for name in PLOT_FILES if name not in TELEMETRY_PLOTS]


def _first_step_top(temperature: float, rng: np.random.Generator) -> list[dict]:
    if temperature == 0:
        probs = np.zeros(10)
        probs[0] = 1.0
        tokens = range(10)
    else:
        # Hotter rows get a different top-10 slice so the union is bigger than one list.
        start = 0 if temperature < 1 else 2
        tokens = range(start, start + 10)
        probs = np.sort(rng.dirichlet(np.ones(10) / temperature))[::-1]
    return [{"token": 100 + t, "label": LABELS[t], "prob": float(p)}
            for t, p in zip(tokens, probs, strict=True)]


def _steps(length: int, temperature: float, rng: np.random.Generator) -> list[dict]:
    steps = []
    for _ in range(length):
        base = float(rng.uniform(0.5, 3.0))
        final = 0.0 if temperature == 0 else base * temperature
        steps.append({
            "token": int(rng.integers(50)), "entropy_base": base, "entropy_temp": final,
            "entropy_final": final, "surprisal": float(rng.uniform(0, 4)),
            "surprisal_base": float(rng.uniform(0, 4)), "top1_prob": float(rng.uniform()),
            "kept_tokens": int(rng.integers(1, 50)), "kept_mass": 1.0,
            "kl_final_base": float(rng.uniform()), "base_argmax": int(rng.integers(50)),
        })
    return steps


def make_completions() -> list[dict]:
    rng = np.random.default_rng(0)
    rows = []
    for prompt in PROMPTS:
        for temperature in TEMPERATURES:
            for sample in range(SAMPLES):
                steps = _steps(6 + 2 * sample, temperature, rng)
                text = (f"Once {SCRIPT} & then\n```python\nprint('hi')\n```\nτ={temperature}"
                        if sample == 0 else f"sample {sample} <i>text</i>")
                extra = {"first_step_top": _first_step_top(temperature, rng)} \
                    if sample == 0 else {}
                rows.append({
                    "prompt": prompt, "sample": sample, "temperature": temperature,
                    "mode": "greedy" if temperature == 0 else "sample",
                    "params": {"temperature": temperature, "seed": 0}, "text": text,
                    "token_ids": [s["token"] for s in steps], "finish_reason": "length",
                    "prompt_tokens": 7, "steps": steps, "extra": extra,
                })
    return rows


def make_run(rows: int) -> dict:
    return {
        "id": "r-0001", "created_at": "2025-01-01T00:00:00Z", "kind": "sweep",
        "model": "tiny <model>", "fingerprint": "abc123",
        "config": {"model": "tiny <model>", "prompts": PROMPTS, "temperatures": TEMPERATURES,
                   "samples": SAMPLES, "max_new_tokens": 10, "seed": 7, "top_p": 0.9,
                   "stop": [SCRIPT]},
        "versions": {"python": "3.11.9", "numpy": "2.0"}, "total_rows": rows,
        "status": "finished",
    }


@pytest.fixture(scope="module")
def completions() -> list[dict]:
    return make_completions()


@pytest.fixture(scope="module")
def summary(completions: list[dict]) -> list[dict]:
    return summarize(completions)


@pytest.fixture
def close_figures():
    yield
    pyplot().close("all")


def _files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def _labelled(axes) -> None:
    assert axes.get_xlabel() and axes.get_ylabel() and axes.get_title()


def test_printable_label():
    assert printable_label(" a\nb\t") == "␣a\\nb\\t"
    assert printable_label("x" * 40).endswith("…") and len(printable_label("x" * 40)) == 16


@pytest.mark.usefixtures("close_figures")
def test_entropy_vs_temperature(summary):
    axes = entropy_vs_temperature(summary).axes[0]
    _labelled(axes)
    assert len(axes.containers) == 2  # final and base, each with error bars
    ticks = {label.get_text(): x for label, x in zip(axes.get_xticklabels(), axes.get_xticks(),
                                                     strict=True)}
    assert ticks["0 (greedy)"] == 0 and axes.get_xscale() == "linear"
    assert len(axes.get_legend().get_texts()) == 2


@pytest.mark.usefixtures("close_figures")
def test_infinite_temperature_sits_right_of_the_finite_ones(summary):
    rows = [dict(row) for row in summary] + [dict(summary[-1], temperature=float("inf"))]
    for figure in (entropy_vs_temperature(rows), distinct_vs_temperature(rows)):
        axes = figure.axes[0]
        ticks = dict(zip([label.get_text() for label in axes.get_xticklabels()],
                         axes.get_xticks(), strict=True))
        finite = [row["temperature"] for row in summary]
        spacing = (max(finite) - min(finite)) / (len(finite) - 1)
        # a tick position from a few float64 operations: approx's 1e-6 absorbs their rounding
        assert ticks["∞ (uniform)"] == pytest.approx(max(finite) + spacing)
        assert np.isfinite(axes.get_xlim()).all()


@pytest.mark.usefixtures("close_figures")
def test_entropy_traces(completions):
    axes = entropy_traces(completions).axes[0]
    _labelled(axes)
    lines = axes.get_lines()
    assert len(lines) == len(TEMPERATURES)
    longest = 6 + 2 * (SAMPLES - 1)
    assert all(list(line.get_xdata()) == list(range(1, longest + 1)) for line in lines)
    assert np.allclose(lines[0].get_ydata(), 0.0)  # greedy rows have zero final entropy


@pytest.mark.usefixtures("close_figures")
def test_first_step_bars(completions):
    axes = first_step_bars(completions).axes[0]
    _labelled(axes)
    assert len(axes.containers) == len(TEMPERATURES)
    assert all(len(bars) == 10 for bars in axes.containers)  # the union (12) cut to 10
    labels = [label.get_text() for label in axes.get_xticklabels()]
    assert SCRIPT[:15] in "".join(labels) and "\\n" in labels and "␣the" in labels
    assert PROMPTS[0][:10] in axes.get_title()
    other = first_step_bars(completions, prompt=PROMPTS[1]).axes[0]
    assert PROMPTS[1] in other.get_title()
    with pytest.raises(InvalidInputError, match="no first-step data"):
        first_step_bars(completions, prompt="never asked")


@pytest.mark.usefixtures("close_figures")
def test_first_step_bars_without_data(completions):
    bare = [row | {"extra": {}} for row in completions]
    assert first_step_bars(bare).axes[0].get_title()


@pytest.mark.usefixtures("close_figures")
def test_distinct_vs_temperature(summary):
    axes = distinct_vs_temperature(summary).axes[0]
    _labelled(axes)
    assert len(axes.get_lines()) == 3
    assert [t.get_text() for t in axes.get_legend().get_texts()] == \
        ["distinct-1", "distinct-2", "distinct-3"]


def test_empty_summary_is_refused():
    with pytest.raises(InvalidInputError, match="empty"):
        entropy_vs_temperature([])


def test_save_run_plots(tmp_path, summary, completions):
    folder = tmp_path / "plots"
    folder.mkdir()
    written = save_run_plots(summary, completions, folder)
    # no mirostat or dynamic temperature in this run: none of their plots
    expected = set(BASE_PLOTS)
    assert set(written) == expected
    assert _files(tmp_path) == ["plots"] + [f"plots/{name}" for name in sorted(expected)]
    for path in written.values():
        assert path.parent == folder and path.read_bytes().startswith(PNG_MAGIC)
    with pytest.raises(InvalidInputError, match="does not exist"):
        save_run_plots(summary, completions, tmp_path / "missing")


def test_markdown_report(summary, completions):
    text = markdown_report(make_run(len(completions)), summary, completions, list(PLOT_FILES))
    assert markdown_summary(summary) in text
    for name in PLOT_FILES:
        assert f"]({name})" in text
    assert "r-0001" in text and "abc123" in text and "seed" in text
    # The model text holds ``` so its fence must be longer, and closed after the text.
    assert "````text\nOnce " in text
    assert text.count("### τ =") == len(TEMPERATURES)
    assert "3.11.9" in text


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: set[str] = set()
        self.sources: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)
        self.sources += [value or "" for key, value in attrs if key in ("src", "href")]


def test_html_report(summary, completions):
    images = {name: PNG_MAGIC + name.encode() for name in PLOT_FILES}
    page = html_report(make_run(len(completions)), summary, completions, images)
    assert "<script" not in page.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "tiny &lt;model&gt;" in page and "&lt;b&gt;tags&lt;/b&gt; &amp; ampersands" in page
    assert "http://" not in page and "https://" not in page
    parser = _Tags()
    parser.feed(page)
    assert parser.tags.isdisjoint({"script", "link", "iframe", "object", "embed"})
    assert len(parser.sources) == len(PLOT_FILES)
    for source in parser.sources:
        assert source.startswith("data:image/png;base64,")
        assert base64.b64decode(source.split(",", 1)[1]).startswith(PNG_MAGIC)
    assert page.count("<tr>") >= len(summary) + 1
    assert page.count("<pre>") == len(TEMPERATURES)


def test_write_report_markdown(tmp_path, completions):
    out = tmp_path / "reports" / "nested"
    main = write_report(make_run(len(completions)), completions, "md", out)
    assert main == out / "report.md"
    expected = ["reports", "reports/nested", "reports/nested/report.md"]
    expected += [f"reports/nested/{name}" for name in BASE_PLOTS]
    assert _files(tmp_path) == sorted(expected)
    for name in BASE_PLOTS:
        assert (out / name).read_bytes().startswith(PNG_MAGIC)


def test_write_report_html(tmp_path, completions):
    out = tmp_path / "html"
    main = write_report(make_run(len(completions)), completions, "html", out)
    assert main == out / "report.html"
    assert _files(tmp_path) == ["html", "html/report.html"]
    page = main.read_text(encoding="utf-8")
    assert page.count("data:image/png;base64,") == len(BASE_PLOTS)
    for encoded in re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]+)", page):
        assert base64.b64decode(encoded).startswith(PNG_MAGIC)
    assert "<script>" not in page


def test_write_report_table(tmp_path, completions):
    main = write_report(make_run(len(completions)), completions, "table", tmp_path)
    assert _files(tmp_path) == ["report.txt"] and "0 (greedy)" in main.read_text("utf-8")


def test_write_report_refusals(tmp_path, completions):
    run = make_run(len(completions))
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(InvalidInputError, match="is a file"):
        write_report(run, completions, "html", blocker)
    with pytest.raises(InvalidInputError, match="table, md, html"):
        write_report(run, completions, "pdf", tmp_path / "never")
    with pytest.raises(InvalidInputError, match="no completions"):
        write_report(run, [], "md", tmp_path / "never")
    assert _files(tmp_path) == ["a-file"]


def test_html_report_warns_below_8_prompts_and_lists_no_ordering(summary, completions):
    assert max(row["prompts"] for row in summary) < 8
    page = html_report(make_run(len(completions)), summary, completions, {})
    assert '<p class="warning"><strong>WARNING: these intervals rest on only' in page
    assert "No ordering between adjacent temperatures is tested" in page
    assert "Not significant" not in page
    axes = entropy_vs_temperature(summary).axes[0]
    assert "unreliable" in axes.get_title()  # the plot, which may be shown alone, says so too
