"""The min-p reproduction (sampler.papers.min_p): items, grading, and the findings' arithmetic.

Oracles: the differences of accuracies written out here from the 0/1 marks; a run on a
synthetic source checks the wiring (logged runs, one mark per planned row).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sampler.papers.min_p import (
    HIGH,
    SAMPLERS,
    TEMPERATURES,
    WORDS,
    copy_items,
    is_correct,
    min_p_outcome,
    run,
)
from sampler.papers.records import Options
from sampler.runlog.store import open_run_log
from sampler.sources.synthetic_spec import parse_synthetic


def test_items_are_seeded_few_shot_copies():
    first, again, other = copy_items(5, 0), copy_items(5, 0), copy_items(5, 1)
    assert first == again and first != other
    for item in first:
        lines = item.prompt.split("\n")
        assert lines[-2] == f"Input: {item.answer}" and lines[-1] == "Output:"
        inputs = [line[len("Input: ") :] for line in lines if line.startswith("Input: ")]
        outputs = [line[len("Output: ") :] for line in lines[:-1] if line.startswith("Output: ")]
        assert inputs[:-1] == outputs and len(inputs) == 4
        assert all(len(set(words.split())) == 3 for words in inputs)
        assert set(item.answer.split()) <= set(WORDS)


@pytest.mark.parametrize(
    ("text", "finish", "right"),
    [
        (" apple river stone", "stop", True),
        ("apple river stone ", "eos", True),
        (" apple river stone", "length", False),  # cut by the limit: its next token unknown
        (" apple river", "stop", False),
        (" apple river stones", "stop", False),
        (" Apple river stone", "stop", False),
    ],
)
def test_grading_is_exact(text, finish, right):
    assert is_correct(text, finish, "apple river stone") is right


def test_findings_are_the_paired_differences_of_accuracy():
    rng = np.random.default_rng(0)
    items, samples = 10, 3
    shape = (items, len(TEMPERATURES), samples)
    correct = {name: (rng.random(shape) < 0.5).astype(float) for name in SAMPLERS}
    greedy = (rng.random(items) < 0.8).astype(float)
    findings, curves, greedy_estimate = min_p_outcome(greedy, correct, samples, rng)
    high = [TEMPERATURES.index(t) for t in HIGH]
    gap = correct["min-p 0.1"][:, high].mean() - correct["top-p 0.9"][:, high].mean()
    # means of 0/1 marks in another order: float64 ulps, which approx's default absorbs
    assert findings[0].estimate.value == pytest.approx(gap)
    at_three = correct["min-p 0.1"][:, -1].mean() - correct["top-p 0.9"][:, -1].mean()
    assert findings[1].estimate.value == pytest.approx(at_three)
    assert greedy_estimate.value == pytest.approx(greedy.mean())
    for name, marks in correct.items():
        assert [e.value for e in curves[name]] == pytest.approx(marks.mean(axis=(0, 2)))
    for finding in findings:
        e = finding.estimate
        assert e.low <= e.value <= e.high and e.clusters == items


def test_a_clear_gap_is_reproduced_and_none_is_not_significant():
    items, samples = 12, 3
    shape = (items, len(TEMPERATURES), samples)
    rng = np.random.default_rng(1)
    worse = {
        "temperature only": np.zeros(shape),
        "top-p 0.9": np.zeros(shape),
        "min-p 0.1": np.ones(shape),
    }
    findings, _, _ = min_p_outcome(np.ones(items), worse, samples, rng)
    assert [f.verdict for f in findings] == ["reproduced", "reproduced"]
    same = {name: np.ones(shape) for name in SAMPLERS}
    findings, _, _ = min_p_outcome(np.ones(items), same, samples, rng)
    assert [f.verdict for f in findings] == ["not significant", "not significant"]


def test_a_run_on_a_synthetic_source_logs_every_sampler(tmp_path: Path):
    source = parse_synthetic("synthetic:markov?vocab=60&seed=2")
    options = Options(source=source, db=str(tmp_path / "runs.db"), seed=3)
    outcome = run(options, source)
    assert len(outcome.runs) == 1 + len(SAMPLERS)
    store = open_run_log(str(tmp_path / "runs.db"), create=False)
    sizes = [len(store.completions(run_id)) for run_id in outcome.runs]
    assert sizes == [24] + [24 * len(TEMPERATURES) * 3] * len(SAMPLERS)
    # a Markov chain over pseudo-words never copies: every mark is 0, no gap
    assert all(f.estimate.value == 0 and f.verdict == "not significant" for f in outcome.findings)
