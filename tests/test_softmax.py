"""The core math against closed forms and scipy, plus hypothesis properties."""

import math

import numpy as np
import pytest
import scipy.special
import scipy.stats
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from sampler import InvalidInputError, argmax, argmin, entropy, hardmax, log_softmax, softmax
from sampler.entropy import softmax_entropy

CHEAT = [3.0, 1.0, 0.2]
# unit roundoffs; a bare pytest.approx() below compares a closed form a few float64 operations
# compute (their rounding: ulps), so approx's default relative 1e-6 only absorbs that rounding
U32, U64 = 2.0**-24, 2.0**-53


def test_cheat_sheet_values_are_exact():
    z = math.exp(3.0) + math.exp(1.0) + math.exp(0.2)
    expected = [math.exp(v) / z for v in CHEAT]
    # three terms, each side a few float64 roundings of numbers below 4: a few ulps (≤ 9e-16)
    np.testing.assert_allclose(softmax(CHEAT), expected, rtol=0, atol=1e-15)
    # the cheat sheet prints 5 and 6 decimals: half a unit of the last one
    np.testing.assert_allclose(softmax(CHEAT), [0.83602, 0.11314, 0.05084], atol=5e-6)
    np.testing.assert_allclose(log_softmax(CHEAT), [v - math.log(z) for v in CHEAT], atol=1e-15)
    assert float(softmax_entropy(CHEAT)) == pytest.approx(0.547737, abs=5e-7)
    assert float(entropy(softmax(CHEAT))) == pytest.approx(0.547737, abs=5e-7)


@pytest.mark.parametrize("temperature", [0.05, 0.3, 1.0, 2.5, 40.0])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_matches_scipy(temperature, dtype):
    rng = np.random.default_rng(0)
    x = rng.normal(scale=4.0, size=(6, 50)).astype(dtype)
    # In the dtype's unit roundoff u: y = (x - max) / τ is rounded twice (≤ 2u|y| each), exp
    # and the division once each, the sum of n = 50 weights n times. A probability moves by at
    # most p (2u|y| + (n + 3) u) ≤ (n + 4) u (p|y| ≤ 1/e); a log-probability by 2u|y| plus
    # (n + 3) u; the entropy log Z - Σ p y by those errors weighted by p: (n + 6) u (1 + Σ p|y|).
    u, n = (U32 if dtype == np.float32 else U64), x.shape[-1]
    expected = scipy.special.softmax(x.astype(np.float64) / temperature, axis=-1)
    y = scipy.special.log_softmax(x.astype(np.float64) / temperature, axis=-1)
    got = softmax(x, temperature)
    assert got.dtype == dtype
    np.testing.assert_allclose(got, expected, rtol=0, atol=(n + 4) * u)
    np.testing.assert_allclose(
        log_softmax(x, temperature), y, rtol=0, atol=(2 * np.abs(y).max() + n + 3) * u
    )
    np.testing.assert_allclose(
        softmax_entropy(x, temperature),
        scipy.stats.entropy(expected, axis=-1),
        rtol=0,
        atol=(n + 6) * u * (1 + (expected * np.abs(y)).sum(axis=-1).max()),
    )


def test_entropy_bits_and_bases():
    assert float(entropy([0.25] * 4, base="bits")) == pytest.approx(2.0)
    assert float(entropy([0.25] * 4, base=4)) == pytest.approx(1.0)
    assert float(entropy([1.0, 0.0, 0.0])) == 0.0
    with pytest.raises(InvalidInputError, match="base"):
        entropy([0.5, 0.5], base="decibans")


def test_per_row_temperature_matches_one_row_at_a_time():
    x = np.array([[3.0, 1.0, 0.2], [0.0, 2.0, 2.0], [5.0, -np.inf, 1.0]])
    temps = np.array([0.5, 0.0, np.inf])
    got = softmax(x, temps)
    for row, tau in zip(range(3), temps, strict=True):
        np.testing.assert_array_equal(got[row], softmax(x[row], tau))
    np.testing.assert_array_equal(got[1], [0.0, 0.5, 0.5])
    np.testing.assert_array_equal(got[2], [0.5, 0.0, 0.5])


def test_hardmax_argmax_argmin_ties():
    x = [[2.0, 7.0, 7.0, 1.0, 1.0]]
    np.testing.assert_array_equal(hardmax(x), [[0, 0.5, 0.5, 0, 0]])
    assert argmax(x).tolist() == [1]
    assert argmin(x).tolist() == [3]
    assert argmax([1.0, 1.0]) == 0
    np.testing.assert_array_equal(softmax(x, 0.0), hardmax(x))


def test_masked_tokens_get_zero_and_log_minus_inf():
    x = [1.0, -np.inf, 0.5]
    p = softmax(x)
    assert p[1] == 0.0
    assert log_softmax(x)[1] == -np.inf
    assert float(softmax_entropy(x)) == pytest.approx(float(entropy(p)))


@pytest.mark.parametrize(
    ("logits", "match"),
    [
        ([1.0, np.nan], r"logits\[1\] is nan"),
        ([[0.0, 1.0], [np.inf, 0.0]], r"logits\[1, 0\] is \+inf"),
        ([-np.inf, -np.inf], "every logit is -inf"),
        ([[0.0, 1.0], [-np.inf, -np.inf]], "row 1 is -inf"),
        ([], "empty"),
    ],
)
def test_bad_logits_name_the_culprit(logits, match):
    with pytest.raises(InvalidInputError, match=match):
        softmax(logits)


@pytest.mark.parametrize("temperature", [-0.5, float("nan"), "hot"])
def test_bad_temperature(temperature):
    with pytest.raises(InvalidInputError, match="temperature"):
        softmax([1.0, 2.0], temperature)


def test_does_not_modify_input():
    x = np.array([[3.0, 1.0, 0.2]], dtype=np.float32)
    x.setflags(write=False)
    for temperature in (0.0, 0.7, 1.0, np.inf):
        softmax(x, temperature)
        log_softmax(x, temperature)
        softmax_entropy(x, temperature)
    hardmax(x)


finite = st.floats(-1e4, 1e4, allow_nan=False, allow_infinity=False, width=64)
rows = arrays(np.float64, st.integers(1, 12), elements=finite)
temperatures = st.floats(1e-2, 1e2)


@given(rows, temperatures)
def test_probabilities_are_a_distribution(x, temperature):
    p = softmax(x, temperature)
    assert (p >= 0).all()
    # n ≤ 12 quotients rounded once, their float64 sum n times, the total divided by: 2(n+1)u
    assert p.sum() == pytest.approx(1.0, abs=2 * (x.size + 1) * U64)


@given(rows, temperatures, st.floats(-1e4, 1e4))
def test_shift_invariance(x, temperature, shift):
    # x + shift rounds each logit by ≤ u |x + shift| ≤ 2e4 · 2^-53 ≈ 2.2e-12, which over
    # τ ≥ 0.01 moves y, and so a probability (≤ 1), by ≤ 2.2e-10; both sides' own rounding: ulps
    np.testing.assert_allclose(softmax(x + shift, temperature), softmax(x, temperature), atol=1e-9)


@given(rows, st.lists(temperatures, min_size=2, max_size=6))
def test_entropy_is_non_decreasing_in_temperature(x, taus):
    taus = sorted(taus)
    values = softmax_entropy(np.broadcast_to(x, (len(taus), x.size)), np.array(taus))
    # |y| ≤ 2e4 / 0.01 = 2e6, so log Z - Σ p y carries float64 rounding of about u · 2e6 ≈ 2e-10
    assert (np.diff(values) >= -1e-9).all()


@given(arrays(np.float64, st.integers(1, 10), elements=st.integers(-3, 3).map(float)))
def test_small_temperature_approaches_hardmax_with_ties(x):
    # Logits are integers, so the gap to the maximum is >= 1 and exp(-1/τ) vanishes at τ=1e-3.
    np.testing.assert_allclose(softmax(x, 1e-3), hardmax(x), atol=1e-12)


@given(arrays(np.float64, st.integers(1, 10), elements=st.floats(-50, 50)))
def test_large_temperature_approaches_uniform(x):
    p = softmax(x, 1e9)
    # |y| ≤ 100 / 1e9: p_i = (1/n) e^{y_i} / mean(e^y) is within 2 max|y| = 2e-7 relative of 1/n
    np.testing.assert_allclose(p, np.full(x.size, 1 / x.size), rtol=2 * 100 / 1e9 + 1e-15)
    # log n - H is about Var(y) / 2 ≤ 1e-14, plus float64 rounding of log Z ≈ log 10: ulps
    assert float(softmax_entropy(x, 1e9)) == pytest.approx(math.log(x.size), abs=1e-13)
    np.testing.assert_allclose(softmax(x, np.inf), np.full(x.size, 1 / x.size), rtol=1e-12)


@given(
    arrays(np.float32, st.integers(2, 12), elements=st.sampled_from([-1e30, 1e30, 0.0, 7.0])),
    st.floats(1e-3, 1e3),
)
def test_huge_spreads_in_float32_stay_finite(x, temperature):
    for values in (
        softmax(x, temperature),
        log_softmax(x, temperature),
        softmax_entropy(x, temperature),
    ):
        assert np.isfinite(values).all()
    # float32: ≤ 12 quotients rounded once, their sum n times: 2(n+1)u (as above, in float32)
    assert softmax(x, temperature).sum() == pytest.approx(1.0, abs=2 * (x.size + 1) * U32)


@given(rows.filter(lambda x: np.ptp(x) > 800))
def test_log_softmax_finite_where_softmax_underflows(x):
    p = softmax(x)
    assert (p == 0).any()
    log_p = log_softmax(x)
    assert np.isfinite(log_p).all()
    # x - max rounded: u|y| relative (|y| ≤ 2e4); log Z ≤ log 12 adds a few ulps absolute
    np.testing.assert_allclose(log_p, scipy.special.log_softmax(x), rtol=4 * U64, atol=16 * U64)
