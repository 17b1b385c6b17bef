"""Coverage of the report's 95 % intervals and the level of its paired tests, by simulation.

Each simulated data set is one column at one temperature: ``G`` prompts, prompt ``g`` with
``b_g`` steps (4 rows of 20-48 tokens) and summed values ``a_g = b_g μ_g + 0.5 √b_g z``: a
prompt effect ``μ_g`` (normal, or exponential: skewness 2, as PPL and rep-4 are skewed over
prompts) plus step noise. The column is ``Σ a / Σ b``, and its true value is ``E μ = 1`` (the
lengths are independent of the effects). The oracle is that known value; scipy checks the
t-distribution arithmetic.

Acceptance bands. "Near-nominal" is taken to mean a true coverage within [92.5 %, 97.5 %] for
normal prompt effects, and within [88.5 %, 97.5 %] for skewed ones: no interval we tried with
stable widths does much better from 8 prompts of a skewed column (the t-interval covers ~89 %
there, the plain percentile bootstrap ~84 %; the bootstrap-t ~93 %, with widths that blow up
when one prompt is far off the rest). The paired test's level must lie within [3.5 %, 6.5 %].
A simulated rate is accepted within its range widened by 3.29 binomial standard errors at each
end, so a procedure whose true rate is inside the range fails with probability below 1e-3
(5e-4 a side). The seeds are fixed, so a run is reproducible.
"""

import math

import numpy as np
import pytest
import scipy.stats

from sampler.report.bootstrap import MIN_PROMPTS, ratio_interval, ratio_intervals
from sampler.report.paired import paired_p_values
from sampler.report.student_t import critical_value, two_sided_p

Z_FALSE_ALARM = 3.29  # two-sided 1e-3: 5e-4 a side of a normal approximation of the binomial
DATA_SETS = 4000  # per case; the bootstrap of one chunk of 50 data sets is one call
PAIRED_DATA_SETS = 20000  # the t-test costs no resampling: a tighter band


def _band(low: float, high: float, trials: int) -> tuple[float, float]:
    return (
        low - Z_FALSE_ALARM * math.sqrt(low * (1 - low) / trials),
        high + Z_FALSE_ALARM * math.sqrt(high * (1 - high) / trials),
    )


def _effects(rng: np.random.Generator, shape: tuple[int, ...], kind: str) -> np.ndarray:
    if kind == "normal":
        return 1.0 + 0.3 * rng.standard_normal(shape)
    return rng.exponential(1.0, shape)  # mean 1, skewness 2


def _column(rng: np.random.Generator, shape: tuple[int, ...], effects: np.ndarray):
    steps = 4.0 * rng.integers(20, 49, size=shape)
    return steps * effects + 0.5 * np.sqrt(steps) * rng.standard_normal(shape), steps


def _coverage(prompts: int, kind: str, seed: int) -> float:
    data_rng, boot_rng = np.random.default_rng(seed), np.random.default_rng(seed + 1)
    hits, chunk = 0, 50
    for _ in range(DATA_SETS // chunk):
        shape = (chunk, prompts)
        a, b = _column(data_rng, shape, _effects(data_rng, shape, kind))
        low, high = ratio_intervals(a, b, boot_rng)
        hits += int(((low <= 1.0) & (high >= 1.0)).sum())
    return hits / DATA_SETS


@pytest.mark.parametrize("kind", ["normal", "skewed"])
@pytest.mark.parametrize("prompts", [8, 16, 32])
def test_interval_coverage_is_near_95_percent(prompts, kind):
    coverage = _coverage(prompts, kind, seed=prompts * 10 + (kind == "skewed"))
    low, high = _band(0.925 if kind == "normal" else 0.885, 0.975, DATA_SETS)
    assert low <= coverage <= high, f"{prompts} prompts, {kind}: coverage {coverage:.4f}"


def test_a_percentile_bootstrap_falls_outside_the_band_at_8_prompts():
    """The band has power: the method this replaced (percentile bootstrap over prompts, here
    in plain numpy) is rejected on the same simulated data sets."""
    rng, boot = np.random.default_rng(80), np.random.default_rng(81)
    hits, prompts = 0, 8
    for _ in range(DATA_SETS // 50):
        shape = (50, prompts)
        a, b = _column(rng, shape, _effects(rng, shape, "normal"))
        picks = boot.integers(0, prompts, size=(50, 2000, prompts))
        ratios = np.take_along_axis(a[:, None, :], picks, 2).sum(2) / np.take_along_axis(
            b[:, None, :], picks, 2
        ).sum(2)
        low, high = np.percentile(ratios, [2.5, 97.5], axis=1)
        hits += int(((low <= 1.0) & (high >= 1.0)).sum())
    assert hits / DATA_SETS < _band(0.925, 0.975, DATA_SETS)[0]


def _null_pairs(rng: np.random.Generator, prompts: int, kind: str):
    """Two temperatures with the same mean: a shared prompt effect plus each temperature's own
    independent one (the same law on both sides), independent lengths and noise."""
    shape = (PAIRED_DATA_SETS, prompts)
    shared = _effects(rng, shape, kind)
    return [_column(rng, shape, shared + 0.5 * _effects(rng, shape, kind)) for _ in range(2)]


@pytest.mark.parametrize("kind", ["normal", "skewed"])
@pytest.mark.parametrize("prompts", [8, 16, 32])
def test_paired_test_calls_5_percent_of_null_orderings_significant(prompts, kind):
    before, after = _null_pairs(np.random.default_rng(prompts + 100 * (kind == "skewed")),
                                prompts, kind)
    false_alarms = float((paired_p_values(before, after) < 0.05).mean())
    low, high = _band(0.035, 0.065, PAIRED_DATA_SETS)
    assert low <= false_alarms <= high, f"{prompts} prompts, {kind}: {false_alarms:.4f}"


def test_paired_test_is_the_paired_t_test_when_every_prompt_weighs_the_same():
    rng = np.random.default_rng(5)
    before, after = rng.normal(size=(40, 9)), rng.normal(0.3, 1.0, size=(40, 9))
    ones = np.ones_like(before)
    ours = paired_p_values((before, ones), (after, ones))
    expected = scipy.stats.ttest_rel(after, before, axis=1).pvalue
    # the same arithmetic in another order: rounding only
    np.testing.assert_allclose(ours, expected, rtol=1e-9)


@pytest.mark.parametrize("df", [1, 2, 3, 4, 7, 15, 31, 200])
def test_student_t_against_scipy(df):
    t = np.array([0.0, 0.1, 0.7, 1.5, 2.0, 3.0, 6.0, 40.0, np.inf])
    # 1 minus a series of ≤ df / 2 float64 terms ≤ 1: ≤ (df + 4) u ≈ 2.3e-14 at df = 200
    np.testing.assert_allclose(two_sided_p(t, df), 2 * scipy.stats.t.sf(t, df), atol=1e-13)
    for confidence in (0.5, 0.9, 0.95, 0.99):
        expected = scipy.stats.t.ppf((1 + confidence) / 2, df)
        # bisection to adjacent floats on that p: t moves by ≲ 2.3e-14 over the density
        # there (≥ 0.005 for these df and confidences), ≲ 5e-12 / t relative
        assert critical_value(confidence, df) == pytest.approx(expected, rel=1e-12)


def test_below_8_prompts_the_interval_is_the_t_interval():
    """With equal denominators, ``mean ± t(G - 1) · sem`` of the prompts' values (scipy)."""
    values = np.array([0.2, 0.9, 0.4, 0.5, 0.45])
    assert len(values) < MIN_PROMPTS
    low, high = ratio_interval(values, np.ones(5), np.random.default_rng(0))
    expected = scipy.stats.t.interval(0.95, 4, loc=values.mean(), scale=scipy.stats.sem(values))
    # mean ± t · sem of 5 values: the critical value's ≲ 1e-12 (above) dominates the rounding
    assert (low, high) == pytest.approx(expected, rel=1e-12)


def test_prompts_without_a_value_are_left_out_and_bounds_cut_the_interval():
    values = np.array([0.0, 0.0, 0.01, 0.0, 0.0])
    low, high = ratio_interval(
        np.append(values, 0.0), np.append(np.ones(5), 0.0), np.random.default_rng(0),
        bounds=(0.0, 1.0),
    )
    expected = scipy.stats.t.interval(0.95, 4, loc=values.mean(), scale=scipy.stats.sem(values))
    assert low == 0.0 and expected[0] < 0  # a share cannot be negative
    assert high == pytest.approx(expected[1], rel=1e-12)  # as above
    assert all(math.isnan(v) for v in ratio_interval(np.ones(2), np.array([1.0, 0.0]),
                                                     np.random.default_rng(0)))


def test_equal_prompts_give_a_zero_width_interval():
    low, high = ratio_interval(np.full(12, 48.0), np.ones(12), np.random.default_rng(0))
    assert low == high == 48.0
