"""Draws follow distribution(): chi-square goodness of fit at fixed seeds.

Each case is tested at ALPHA = 1e-4. For a correct sampler and a seed chosen at random, the
chance that any of the 21 cases is rejected is at most 21 x 1e-4 = 0.21% (Bonferroni); the seeds
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


def test_the_grammar_case_draws_through_the_stage_and_only_its_allowed_tokens():
    pytest.importorskip("llguidance")
    from sampler.engine.verify import GRAMMAR_MASK

    name = "grammar mask, top-k 20, τ=0.8"
    logits, params = CASES[name]
    counts = sample_counts(logits, params, draws=5000, seed=4)
    assert counts[~GRAMMAR_MASK].sum() == 0 and (counts > 0).sum() == 20
    # the oracle: top-k 20 at τ=0.8 over the allowed tokens alone, by hand
    allowed = np.flatnonzero(GRAMMAR_MASK)
    kept = allowed[np.argsort(-logits[allowed], kind="stable")[:20]]
    weights = np.exp((logits[kept] - logits[kept].max()) / 0.8)
    expected = np.zeros(logits.size)
    expected[kept] = weights / weights.sum()
    _, p_value, _ = chi_square(counts, expected)
    assert p_value > ALPHA
    # without the mask the same settings draw other tokens: the case has power
    unmasked = sample_counts(logits, SamplingParams(temperature=0.8, top_k=20), 5000, seed=4)
    assert chi_square(unmasked, expected)[1] == 0.0


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
