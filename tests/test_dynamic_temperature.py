"""Dynamic temperature against llama.cpp's own ``temp_ext`` sampler, and a closed form.

The peer runs here through llama-cpp-python's low-level API: its samplers are applied to a
``llama_token_data_array`` built from the same logits, and the logits they leave are the
oracle. The closed form (written here from llama.cpp's rule) runs even without the peer.
"""

from __future__ import annotations

import ctypes
import math
import os

import numpy as np
import pytest
import scipy.special
import scipy.stats

from sampler import Sampler, SamplingParams, distribution


def closed_form(x: np.ndarray, tau: float, spread: float, exponent: float) -> np.ndarray:
    """softmax(x / τ') with τ' = lo + (hi - lo) (H / ln N)^E over the allowed tokens."""
    allowed = np.isfinite(x)
    n = int(allowed.sum())
    if n <= 1:
        return scipy.special.softmax(x / tau)
    h = scipy.stats.entropy(scipy.special.softmax(x[allowed]))
    low, high = max(0.0, tau - spread), tau + spread
    chosen = low + (high - low) * (h / math.log(n)) ** exponent
    return scipy.special.softmax(x / chosen)


def rows() -> list[np.ndarray]:
    rng = np.random.default_rng(11)
    plain = rng.normal(0, 2, 300)
    peaked = plain.copy()
    peaked[:3] += 9
    flat = rng.normal(0, 0.05, 300)
    return [plain, peaked, flat]


CASES = [(0.8, 0.5, 1.0), (1.0, 0.3, 2.0), (0.3, 0.5, 0.5), (1.5, 1.5, 1.0), (0.7, 0.2, 0.0)]


@pytest.mark.parametrize(("tau", "spread", "exponent"), CASES)
def test_matches_the_closed_form(tau, spread, exponent):
    for x in rows():
        params = SamplingParams(temperature=tau, dynatemp_range=spread,
                                dynatemp_exponent=exponent, order="llama.cpp")
        # float64 both sides: the entropy picking τ' sums 300 terms (≤ 304 u (1 + max|log p|)
        # ≈ 7e-13), which moves τ' ≥ 0.3 here by less and each x/τ' (|x| ≤ 17) by ≲ 2e-11:
        # a probability by ≲ 4e-11
        np.testing.assert_allclose(distribution(x, params), closed_form(x, tau, spread, exponent),
                                   atol=1e-10)


def llama_cpp():
    try:
        import llama_cpp
    except ImportError:
        if os.environ.get("CI"):
            raise  # README's first command installs it: on CI the peer must run
        pytest.skip("llama-cpp-python is not installed (pip install -e '.[llamacpp]')")
    return llama_cpp


def peer_logits(lib, x: np.ndarray, samplers: list) -> np.ndarray:
    """The logits llama.cpp's ``samplers`` (a chain, in order) leave on ``x``; -inf if removed."""
    data = (lib.llama_token_data * len(x))()
    for i, value in enumerate(x):
        data[i].id, data[i].logit, data[i].p = i, float(value), 0.0
    array = lib.llama_token_data_array(data=data, size=len(x), selected=-1, sorted=False)
    for sampler in samplers:
        lib.llama_sampler_apply(sampler, ctypes.byref(array))
        lib.llama_sampler_free(sampler)
    out = np.full(len(x), -np.inf)
    for i in range(array.size):
        out[array.data[i].id] = array.data[i].logit
    return out


@pytest.mark.parametrize(("tau", "spread", "exponent"), CASES)
def test_matches_llamacpp_temp_ext(tau, spread, exponent):
    lib = llama_cpp()
    for x in rows():
        x32 = x.astype(np.float32)
        theirs = peer_logits(lib, x32, [lib.llama_sampler_init_temp_ext(tau, spread, exponent)])
        params = SamplingParams(temperature=tau, dynatemp_range=spread,
                                dynatemp_exponent=exponent, order="llama.cpp")
        # llama.cpp picks τ' from a float32 entropy of 300 terms (rounding growing as √n u:
        # ~1e-6 relative) and divides in float32: y moves by ~1e-6 |y|, p by p |Δy| ≤ 1e-6 / e
        np.testing.assert_allclose(distribution(x32, params), scipy.special.softmax(theirs),
                                   atol=1e-6)


def test_after_top_k_it_counts_the_tokens_left_as_llamacpp_does():
    lib = llama_cpp()
    x = rows()[0].astype(np.float32)
    theirs = peer_logits(lib, x, [lib.llama_sampler_init_top_k(20),
                                  lib.llama_sampler_init_temp_ext(0.9, 0.6, 1.5)])
    params = SamplingParams(temperature=0.9, dynatemp_range=0.6, dynatemp_exponent=1.5,
                            top_k=20, order="llama.cpp")
    # as above, over the 20 tokens top-k leaves
    np.testing.assert_allclose(distribution(x, params), scipy.special.softmax(theirs), atol=1e-6)


def test_one_allowed_token_and_greedy_rows_are_left_alone():
    x = np.array([2.0, -np.inf, -np.inf])
    params = SamplingParams(temperature=0.5, dynatemp_range=0.4, order="llama.cpp")
    np.testing.assert_array_equal(distribution(x, params), [1.0, 0.0, 0.0])
    greedy = SamplingParams(temperature=0, dynatemp_range=0.4, order="llama.cpp")
    tokens, stats = Sampler(greedy).step(np.array([[1.0, 3.0, 2.0]]))
    assert tokens.tolist() == [1] and stats.entropy_final[0] == 0


def test_entropy_temp_reports_the_chosen_temperature():
    x = rows()[0]
    params = SamplingParams(temperature=0.8, dynatemp_range=0.5, order="llama.cpp", seed=0)
    _, stats = Sampler(params).step(x[None, :])
    # float64: the probabilities move by ≲ 4e-11 (above), the entropy by that times
    # (1 + max|log p|) ≲ 30 over 300 terms
    assert stats.entropy_temp[0] == pytest.approx(
        scipy.stats.entropy(closed_form(x, 0.8, 0.5, 1.0)), abs=1e-9
    )


@pytest.mark.parametrize(("tau", "spread", "exponent"), CASES)
def test_step_statistics_report_the_temperature_it_chose(tau, spread, exponent):
    batch = np.stack(rows())
    params = [SamplingParams(temperature=tau, dynatemp_range=spread, dynatemp_exponent=exponent,
                             order="llama.cpp", seed=i) for i in range(len(batch))]
    plain = SamplingParams(temperature=tau, seed=9)
    _, stats = Sampler([*params, plain]).step(np.vstack([batch, batch[:1]]))
    for row, x in enumerate(batch):
        h = scipy.stats.entropy(scipy.special.softmax(x))
        low, high = max(0.0, tau - spread), tau + spread
        chosen = low + (high - low) * (h / math.log(len(x))) ** exponent
        # τ' from a float64 entropy of 300 terms: ≲ 1e-12 relative (above)
        assert stats.temperature_chosen[row] == pytest.approx(chosen, rel=1e-9)
    assert np.isnan(stats.temperature_chosen[-1])  # no dynamic temperature on that row
    assert "temperature_chosen" not in stats.row(len(batch))
