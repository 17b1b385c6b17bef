"""Speculative sampling (sampler.analysis.speculative).

Oracles: total variation written out here (1 - ½ Σ|p - q|), the kept mass of a top-k cut, and
exact joint laws of small Markov tables computed here by multiplying conditionals, tested with
``sampler verify``'s chi-square (scipy's law). Statistical tests
use fixed seeds; each states its false-alarm rate (the chance a correct sampler fails it).
"""

from __future__ import annotations

import itertools
from collections import Counter

import numpy as np
import pytest

from sampler import SamplingParams, distribution
from sampler.analysis.speculative import (
    SpeculativeRun,
    acceptance,
    acceptance_z,
    draw,
    expected_tokens_per_round,
    residual_law,
    source_law,
    speculative_block,
    speculative_generate,
)
from sampler.engine.verify import chi_square
from sampler.sources.synthetic_spec import parse_synthetic

# Two-sided 99.9 % normal quantile: a correct sampler's z lands outside with chance 0.1 %.
Z_999 = 3.2905
# A correct sampler's chi-square p-value is uniform: below 0.001 with chance 0.1 %.
ALPHA = 0.001


def _random_law(rng: np.random.Generator, size: int, drop: int = 0) -> np.ndarray:
    p = rng.dirichlet(np.full(size, 0.5))
    p[rng.choice(size, drop, replace=False)] = 0.0
    with np.errstate(divide="ignore"):
        return np.log(p / p.sum())


def test_acceptance_is_one_minus_total_variation():
    rng = np.random.default_rng(0)
    for _ in range(50):
        log_p, log_q = _random_law(rng, 30, drop=5), _random_law(rng, 30, drop=7)
        tv = 0.5 * np.abs(np.exp(log_p) - np.exp(log_q)).sum()
        # float64 sums of 30 terms ≤ 1 on both sides: ≤ 30 u each
        assert acceptance(log_p, log_q) == pytest.approx(1 - tv, abs=1e-12)
    assert acceptance(log_p, log_p) == pytest.approx(1.0, abs=1e-12)
    with np.errstate(divide="ignore"):
        disjoint = np.log([0.5, 0.5, 0.0, 0.0])
    assert acceptance(disjoint, disjoint[::-1]) == 0.0


def test_acceptance_keeps_tiny_probabilities_exact():
    # p(1) = e^-800 is 0 in any float; log-space min keeps both laws' shared mass exact
    log_p = np.array([0.0, -800.0]) - np.logaddexp(0.0, -800.0)
    log_q = np.log([0.5, 0.5])
    # one float64 exp and a sum of two terms: an ulp or two of 0.5
    assert acceptance(log_p, log_q) == pytest.approx(0.5, abs=1e-15)


def test_a_truncated_draft_is_accepted_with_the_kept_mass():
    """q = p cut to a set S and renormalised: min(p_i, p_i / P(S)) = p_i on S, so α = P(S)."""
    logits = np.random.default_rng(1).normal(0, 2, 200)
    p = distribution(logits, SamplingParams())
    q = distribution(logits, SamplingParams(top_k=20))
    kept = np.sort(p)[-20:].sum()
    with np.errstate(divide="ignore"):  # float64 laws of 200 tokens: sums round by ≤ 200 u
        assert acceptance(np.log(p), np.log(q)) == pytest.approx(kept, rel=400 * 2.0**-53)


def test_residual_is_the_normalised_excess():
    rng = np.random.default_rng(2)
    log_p, log_q = _random_law(rng, 12), _random_law(rng, 12, drop=3)
    excess = np.clip(np.exp(log_p) - np.exp(log_q), 0, None)
    # float64 on both sides over 12 tokens: ulps
    assert np.exp(residual_law(log_p, log_q)) == pytest.approx(excess / excess.sum(), abs=1e-12)
    assert np.array_equal(residual_law(log_p, log_p), log_p)  # never rejected: the law itself


def test_draw_follows_the_law():
    rng = np.random.default_rng(3)
    log_p = _random_law(rng, 8, drop=2)
    counts = np.bincount([draw(log_p, rng) for _ in range(20_000)], minlength=8)
    assert chi_square(counts.astype(float), np.exp(log_p))[1] > ALPHA


def _markov(seed: int, size: int, sharpness: float):
    """A law of the previous token (a table written here), and the exact joint it implies."""
    table = np.random.default_rng(seed).normal(0, sharpness, (size + 1, size))
    logs = table - np.logaddexp.reduce(table, axis=1, keepdims=True)

    def law(context: tuple[int, ...]) -> np.ndarray:
        return logs[context[-1] + 1 if context else 0]

    def joint(sequence: tuple[int, ...]) -> float:
        previous, total = (), 0.0
        for token in sequence:
            total += law(previous)[token]
            previous = (*previous, token)
        return float(np.exp(total))

    return law, joint


def _p_value(joint, counts: Counter) -> float:
    """Chi-square p-value of sequence counts against every 3-token sequence's exact law."""
    sequences = list(itertools.product(range(4), repeat=3))
    probabilities = np.array([joint(s) for s in sequences])
    # 64 float64 products of exact laws: ulps; approx's default 1e-6 absorbs them
    assert probabilities.sum() == pytest.approx(1.0)
    observed = np.array([counts[s] for s in sequences], dtype=float)
    assert observed.sum() == sum(counts.values())  # nothing outside the 64 sequences
    return chi_square(observed, probabilities)[1]


@pytest.mark.parametrize("k", [1, 3])
def test_speculative_output_follows_the_target_and_acceptance_the_exact_laws(k):
    target, joint = _markov(seed=10, size=4, sharpness=1.5)
    draft, _ = _markov(seed=11, size=4, sharpness=1.0)  # a poor draft: the residual is busy
    rng = np.random.default_rng(4 + k)
    total = SpeculativeRun()
    counts: Counter = Counter()
    for _ in range(6000):
        run = speculative_generate(target, draft, (), max_new=3, k=k, rng=rng)
        counts[tuple(run.tokens)] += 1
        total.add(run)
    assert _p_value(joint, counts) > ALPHA
    assert abs(acceptance_z(total)) < Z_999
    assert 0.2 < total.accepted / total.checked < 0.9  # both branches were exercised


def test_the_chi_square_test_rejects_the_draft_law():
    """Power: keeping every draft (no accept/reject) gives the draft's law, and the test sees it."""
    _, joint = _markov(seed=10, size=4, sharpness=1.5)
    draft, _ = _markov(seed=11, size=4, sharpness=1.0)
    rng = np.random.default_rng(6)
    # the same loop with the draft as its own target: every draft is kept
    counts = Counter(
        tuple(speculative_generate(draft, draft, (), 3, 2, rng).tokens) for _ in range(6000)
    )
    assert _p_value(joint, counts) < 1e-6


def test_tokens_per_round_match_leviathan_for_context_free_laws():
    rng = np.random.default_rng(7)
    log_p, log_q = _random_law(rng, 6), _random_law(rng, 6)
    alpha = float(acceptance(log_p, log_q))
    k = 3
    lengths = [
        len(speculative_block(lambda c: log_p, lambda c: log_q, (), k, rng).tokens)
        for _ in range(8000)
    ]
    mean, se = np.mean(lengths), np.std(lengths, ddof=1) / np.sqrt(len(lengths))
    assert abs(mean - expected_tokens_per_round(alpha, k)) < Z_999 * se


def test_a_round_stops_at_its_limit_and_at_stop_tokens():
    log_p = np.log([0.25] * 4)
    rng = np.random.default_rng(8)
    assert len(speculative_block(lambda c: log_p, lambda c: log_p, (), 5, rng, limit=2).tokens) == 2
    run = speculative_generate(lambda c: log_p, lambda c: log_p, (), 50, 4, rng, stop_tokens={0})
    assert run.tokens[-1] == 0 and 0 not in run.tokens[:-1]
    with pytest.raises(ValueError):
        speculative_generate(lambda c: log_p, lambda c: log_p, (), 5, 0, rng)


def test_source_law_is_the_engines_distribution():
    source = parse_synthetic("synthetic:markov?vocab=40&seed=3")
    params = SamplingParams(temperature=0.7, top_p=0.9)
    context = tuple(source.encode("kalo mesu", chat=False))
    logits, _ = source.start([list(context)])
    expected = distribution(logits[0], params)
    # the engine's law is float32 here: off by ≤ 2 (k + 2 + 2 max|x/τ|) u32 relative (x - max,
    # exp, the division, a sum over the k ≤ 40 kept tokens), the law in log space far less
    bound = 2 * (40 + 2 + 2 * float(np.abs(logits[0]).max()) / 0.7) * 2.0**-24
    assert np.exp(source_law(source, params)(context)) == pytest.approx(expected, rel=bound)
