"""`sampler divergence` at extreme temperatures: KL from log-probabilities, never a false inf.

At τ = 0.2 the laws below have probabilities down to e^-450 (0 in float32), at τ = 0.01 down to
e^-9000 (0 in float64 too); the exact KL is finite both ways. The oracle is written here in
float64 from the logits with scipy: ``rel_entr`` on probabilities where float64 holds them,
and ``x/τ - logsumexp(x/τ)`` where it does not. Infinite KL must remain exactly where one
side's chain drops a token the other keeps.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.special

from sampler import SamplingParams
from sampler.analysis.divergence_compare import divergence_text
from sampler.sources.synthetic_spec import parse_synthetic

# Integers, and temperatures (0.2, 0.01, 0.05, 0.25, 2) for which x / τ rounds to the exact
# quotient in float32 (the engine scales float32 logits in float32): the float64 oracle then sees
# the engine's very numbers, and the tolerances are float64 rounding of sums of 8 terms.
LOGITS = np.array([0.0, -1.0, -3.0, -8.0, -20.0, -45.0, -60.0, -90.0])
SOURCE = "synthetic:fixed?logits=" + ",".join(f"{x:g}" for x in LOGITS)
TEXT = "A B C"  # two scored positions, both with these logits


def log_law(tau: float) -> np.ndarray:
    y = LOGITS / tau
    return y - scipy.special.logsumexp(y)


def log_kl(log_p: np.ndarray, log_q: np.ndarray) -> float:
    """Σ p (log p - log q) from logs: exact whatever p underflows to."""
    return float(np.sum(np.exp(log_p) * (log_p - log_q)))


def compare(params_a: SamplingParams, params_b: SamplingParams):
    return divergence_text(parse_synthetic(SOURCE), TEXT, params_a, params_b)


def test_tau_1_against_0_2_is_finite_and_matches_rel_entr():
    result = compare(SamplingParams(temperature=1.0), SamplingParams(temperature=0.2))
    p, q = np.exp(log_law(1.0)), np.exp(log_law(0.2))
    assert q.min() > 0 and np.float32(q.min()) == 0  # float64 holds it; float32 did not
    # float64 sums of 8 terms: a few ulps of the largest term
    assert result.kl_ab == pytest.approx([scipy.special.rel_entr(p, q).sum()] * 2, rel=1e-12)
    assert result.kl_ba == pytest.approx([scipy.special.rel_entr(q, p).sum()] * 2, rel=1e-12)
    assert result.tv == pytest.approx([0.5 * np.abs(p - q).sum()] * 2, abs=1e-15)
    assert result.entropy_b == pytest.approx([scipy.special.entr(q).sum()] * 2, rel=1e-12)
    assert list(result.kept_a) == list(result.kept_b) == [8, 8]
    assert not result.kept_differ.any()
    means = result.means()
    assert means["infinite_kl_ab"] == means["infinite_kl_ba"] == 0


@pytest.mark.parametrize(("tau_a", "tau_b"), [(1.0, 0.01), (0.01, 2.0), (0.05, 0.01)])
def test_extreme_temperatures_match_the_log_space_oracle(tau_a, tau_b):
    result = compare(SamplingParams(temperature=tau_a), SamplingParams(temperature=tau_b))
    log_p, log_q = log_law(tau_a), log_law(tau_b)
    assert np.exp(np.minimum(log_p, log_q)).min() == 0  # float64 underflows: logs only
    assert result.kl_ab == pytest.approx([log_kl(log_p, log_q)] * 2, rel=1e-12)
    assert result.kl_ba == pytest.approx([log_kl(log_q, log_p)] * 2, rel=1e-12)
    assert np.isfinite(result.kl_ab).all() and np.isfinite(result.kl_ba).all()
    assert list(result.kept_a) == list(result.kept_b) == [8, 8]  # the chains keep every token


def test_a_dropped_token_still_gives_inf_one_way():
    """B keeps 3 tokens (top-k) at τ = 0.01: KL(A ‖ B) is inf, KL(B ‖ A) finite and exact."""
    result = compare(SamplingParams(temperature=1.0), SamplingParams(temperature=0.01, top_k=3))
    kept = np.arange(8) < 3
    y = np.where(kept, LOGITS / 0.01, -np.inf)
    log_q = y - scipy.special.logsumexp(y)
    log_p = log_law(1.0)
    assert np.isinf(result.kl_ab).all() and result.means()["infinite_kl_ab"] == 2
    expected = float(np.sum(np.exp(log_q[kept]) * (log_q[kept] - log_p[kept])))
    assert result.kl_ba == pytest.approx([expected] * 2, rel=1e-12)  # float64, 8 terms: ulps
    assert list(result.kept_b) == [3, 3] and result.kept_differ.all()


def test_greedy_against_sampling():
    """Greedy's law is one-hot: KL(greedy ‖ τ) = -log p_τ(argmax), KL(τ ‖ greedy) = inf."""
    result = compare(SamplingParams(temperature=0.0), SamplingParams(temperature=0.25))
    # one float64 log-sum-exp of 8 terms each side: ulps
    assert result.kl_ab == pytest.approx([-log_law(0.25)[0]] * 2, rel=1e-12)
    assert np.isinf(result.kl_ba).all()
    assert math.isclose(float(result.tv[0]), 1 - math.exp(log_law(0.25)[0]), abs_tol=1e-15)


def test_a_one_token_law_has_entropy_plus_zero():
    result = compare(SamplingParams(temperature=0.0), SamplingParams(top_k=1))
    assert (result.entropy_a == 0).all() and not np.signbit(result.entropy_a).any()
    assert not np.signbit(result.entropy_b).any()
