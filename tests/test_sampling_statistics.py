"""Draws follow distribution(): chi-square goodness of fit at fixed seeds.

Each case is tested at ALPHA = 1e-4. For a correct sampler and a seed chosen at random, the
chance that any of the 22 cases is rejected is at most 22 x 1e-4 = 0.22% (Bonferroni); the seeds
are fixed, so the suite is deterministic. The power checks show the same test does reject
draws from a slightly wrong distribution.
"""

import numpy as np
import pytest
from click.testing import CliRunner

from sampler import SamplingParams, distribution
from sampler.cli import cli
from sampler.engine.verify import CASES, chi_square, run_cases, sample_counts

ALPHA = 1e-4


@pytest.fixture(scope="module")
def results():
    return {result.name: result for result in run_cases(draws=20_000, seed=0)}


@pytest.mark.parametrize("name", list(CASES))
def test_draws_fit_the_distribution(results, name):
    result = results[name]
    assert result.bins >= 2 or result.support == 1
    assert result.p_value > ALPHA, f"{name}: chi2={result.statistic:.1f}, p={result.p_value:.2e}"


def test_masked_and_filtered_tokens_are_never_drawn():
    logits, params = CASES["top-k 5, τ=0.8"]
    counts = sample_counts(logits, params, draws=5000, seed=3)
    assert (counts[distribution(logits, params) == 0] == 0).all()
    assert (counts > 0).sum() == 5


@pytest.mark.parametrize("wrong_temperature", [0.9, 1.1])
def test_the_test_has_power_against_a_slightly_wrong_distribution(wrong_temperature):
    logits = np.random.default_rng(1).normal(0, 2, 50)
    counts = sample_counts(logits, SamplingParams(), draws=20_000, seed=1)
    wrong = distribution(logits, SamplingParams(temperature=wrong_temperature))
    _, p_value, _ = chi_square(counts, wrong.astype(np.float64))
    assert p_value < ALPHA


def _top_k_law(logits: np.ndarray, among: np.ndarray, k: int, tau: float) -> np.ndarray:
    """Top-k at τ over the tokens ``among`` alone, by hand (0 elsewhere)."""
    kept = among[np.argsort(-logits[among], kind="stable")[:k]]
    weights = np.exp((logits[kept] - logits[kept].max()) / tau)
    law = np.zeros(logits.size)
    law[kept] = weights / weights.sum()
    return law


def test_the_grammar_cases_draw_through_the_stage_as_each_peer_does():
    pytest.importorskip("llguidance")
    from sampler.engine.verify import GRAMMAR_MASK

    logits, masked = CASES["grammar mask, top-k 20, τ=0.8"]
    _, resampled = CASES["grammar resample, top-k 20, τ=0.8"]
    # the oracles, by hand: r = top-k 20 at τ=0.8 over the allowed tokens alone (mask first);
    # llama.cpp draws from q = the same over every token, and again from r when that token is
    # illegal, so its law is q on the allowed tokens plus q's illegal mass times r
    r = _top_k_law(logits, np.flatnonzero(GRAMMAR_MASK), 20, 0.8)
    q = _top_k_law(logits, np.arange(logits.size), 20, 0.8)
    mixture = np.where(GRAMMAR_MASK, q, 0.0) + q[~GRAMMAR_MASK].sum() * r
    assert q[~GRAMMAR_MASK].sum() > 0.3  # the two laws differ: each case has power
    for params, expected, other in ((masked, r, mixture), (resampled, mixture, r)):
        counts = sample_counts(logits, params, draws=5000, seed=4)
        assert counts[~GRAMMAR_MASK].sum() == 0
        assert chi_square(counts, expected)[1] > ALPHA
        assert chi_square(counts, other)[1] < ALPHA


def test_a_draw_outside_the_support_fails_outright():
    statistic, p_value, _ = chi_square(np.array([10, 5, 1]), np.array([0.6, 0.4, 0.0]))
    assert p_value == 0.0 and statistic == float("inf")


def test_verify_command_prints_p_values_and_exit_code():
    runner = CliRunner()
    result = runner.invoke(cli, ["verify", "--draws", "3000", "--case", "cheat-sheet τ=1"])
    assert result.exit_code == 0, result.output
    assert "cheat-sheet τ=1" in result.output and "ok" in result.output
    bad = runner.invoke(cli, ["verify", "--case", "nope"])
    assert bad.exit_code == 2 and bad.stderr.startswith("error: case 'nope' is unknown")
    bad = runner.invoke(cli, ["verify", "--alpha", "2"])
    assert bad.exit_code == 2 and "alpha=2.0 is out of range" in bad.stderr
