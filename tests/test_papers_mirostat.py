"""The mirostat reproduction (sampler.papers.mirostat): its running means, windows, weighted
correlation and findings, checked against loops and numpy written here; a tiny run on a
synthetic source, whose mirostat must hold its targets (the engine's mirostat is exact)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from sampler.papers.mirostat import (
    BAND,
    FIXED,
    TARGETS,
    correlation,
    run,
    running_mean,
    verdict_nonzero,
    window_sums,
)
from sampler.papers.records import Estimate, Options
from sampler.sources.synthetic_spec import parse_synthetic


def test_running_mean_is_the_mean_so_far():
    rng = np.random.default_rng(0)
    values = rng.normal(size=(4, 9))
    values[1, 5:] = np.nan  # a row that ended
    out = running_mean(values)
    for row in range(4):
        for t in range(9):
            seen = values[row, : t + 1]
            if np.isnan(values[row, t]):
                assert np.isnan(out[row, t])
            else:
                # a running float64 mean against numpy's: ulps (approx's default absorbs them)
                assert out[row, t] == pytest.approx(seen[~np.isnan(seen)].mean())


def test_window_sums_per_prompt():
    values = np.arange(24, dtype=float).reshape(4, 6)
    values[3, 4:] = np.nan
    sums, counts = window_sums(values, np.array([0, 0, 1, 1]), 2, (2, 5))
    assert sums.tolist() == [2 + 3 + 4 + 8 + 9 + 10, 14 + 15 + 16 + 20 + 21]
    assert counts.tolist() == [6, 5]


def test_weighted_correlation_is_pearsons():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=20), rng.normal(size=20)
    weights = np.vstack([np.ones(20), rng.integers(0, 3, 20)])
    out = correlation(x, y, weights)
    # the same Pearson r by two float64 formulas over 20 points: ulps (approx's default)
    assert out[0] == pytest.approx(np.corrcoef(x, y)[0, 1])
    repeat = weights[1].astype(int)  # integer weights = rows repeated that often
    assert out[1] == pytest.approx(np.corrcoef(np.repeat(x, repeat), np.repeat(y, repeat))[0, 1])


@pytest.mark.parametrize(
    ("low", "high", "verdict"),
    [(0.1, 0.5, "reproduced"), (-0.5, -0.1, "reproduced"), (-0.1, 0.2, "not significant")],
)
def test_a_drift_either_way_counts(low, high, verdict):
    assert verdict_nonzero(Estimate(0.0, low, high, 8)) == verdict


def test_a_tiny_run_holds_its_targets_on_a_synthetic_source(tmp_path: Path):
    # gaussian logits over 2,000 tokens: surprises from ~0 to ~14 bits, so every target is
    # reachable, and no end token ends a row early
    source = parse_synthetic("synthetic:gaussian?vocab=2000&scale=2&seed=4")
    options = Options(source=source, db=str(tmp_path / "runs.db"), seed=5)
    outcome = run(options, source)
    assert len(outcome.runs) == len(FIXED) + len(TARGETS)
    held = outcome.findings[: len(TARGETS)]
    for target, finding in zip(TARGETS, held, strict=True):
        assert abs(finding.estimate.value - target) < BAND and finding.verdict == "reproduced"
    corr = outcome.findings[-1].estimate
    assert -1 <= corr.value <= 1 and not math.isnan(corr.low)
    assert [f.file_name for f in outcome.figures] == [
        "mirostat_running_own.png",
        "mirostat_running_base.png",
        "mirostat_repetition.png",
    ]
