"""XTC against llama.cpp's own sampler, its coin from the row's stream, and its mixture law.

The peer runs through llama-cpp-python's low-level API (``llama_sampler_init_xtc``) on a
``llama_token_data_array``: with probability 1 its coin always fires, so the tokens it leaves
are the oracle for our cut given a fired coin. The law of a draw (a mixture over the coin) is
checked by chi-square on the sampler's own draws.
"""

import ctypes

import numpy as np
import pytest
import scipy.special
import scipy.stats

from sampler import Sampler, SamplingParams, distribution
from sampler.errors import InvalidInputError
from tests.conftest import import_llama_cpp_or_skip


def _peer_kept(lib, x: np.ndarray, threshold: float, min_keep: int) -> np.ndarray:
    """Token ids llama.cpp's XTC (probability 1: it always fires) leaves on ``x``."""
    sampler = lib.llama_sampler_init_xtc(1.0, threshold, min_keep, 123)
    data = (lib.llama_token_data * len(x))()
    for i, value in enumerate(x):
        data[i].id, data[i].logit, data[i].p = i, float(value), 0.0
    array = lib.llama_token_data_array(data=data, size=len(x), selected=-1, sorted=False)
    lib.llama_sampler_apply(sampler, ctypes.byref(array))
    lib.llama_sampler_free(sampler)
    return np.sort([array.data[i].id for i in range(array.size)])


def _rows() -> list[np.ndarray]:
    rng = np.random.default_rng(42)
    peaked = rng.normal(0, 1, 500)
    peaked[[3, 9, 40]] += [6.0, 5.0, 4.5]
    masked = rng.normal(0, 2, 300)
    masked[::3] = -np.inf
    return [rng.normal(0, 2.5, 400), peaked, masked, np.array([3, 2.6, 2.2, 1, 0.5, -1, -2, -3.5])]


@pytest.mark.parametrize("threshold", [0.01, 0.05, 0.1, 0.2, 0.3, 0.5, 0.51, 0.9])
@pytest.mark.parametrize("min_keep", [1, 7])
def test_a_fired_coin_cuts_what_llama_cpp_cuts(threshold, min_keep):
    lib = import_llama_cpp_or_skip()
    for x in _rows():
        x = x.astype(np.float32)
        expected = _peer_kept(lib, x, threshold, min_keep)
        params = SamplingParams(xtc_probability=1.0, xtc_threshold=threshold,
                                min_tokens_to_keep=min_keep, order="llama.cpp")
        law = distribution(x, params, state={"xtc_coin": 0.0})
        finite = np.flatnonzero(np.isfinite(x))
        np.testing.assert_array_equal(np.intersect1d(np.flatnonzero(law > 0), finite),
                                      np.intersect1d(expected, finite))
        # after XTC the llama.cpp chain applies temperature and draws from the softmax
        np.testing.assert_allclose(law[expected], scipy.special.softmax(x[expected]), atol=1e-6)


def test_a_coin_above_the_probability_leaves_the_row_alone():
    x = _rows()[3]
    params = SamplingParams(xtc_probability=0.3, xtc_threshold=0.1, order="llama.cpp")
    np.testing.assert_allclose(
        distribution(x, params, state={"xtc_coin": 0.31}), scipy.special.softmax(x)
    )
    assert (distribution(x, params, state={"xtc_coin": 0.3})[:2] == 0).all()  # coin <= p fires


def test_the_law_of_a_draw_is_the_mixture_and_the_draws_follow_it():
    # 6,000 draws, 300 rows x 20 steps, each row its own stream: chi-square against the
    # mixture at a 1e-3 false-alarm rate, and the coin fired on about 40 % of steps.
    x = _rows()[3]
    params = SamplingParams(xtc_probability=0.4, xtc_threshold=0.1, order="llama.cpp")
    fired = distribution(x, params, state={"xtc_coin": 0.0})
    held = distribution(x, params, state={"xtc_coin": 1.0})
    law = distribution(x, params)
    np.testing.assert_allclose(law, 0.4 * fired + 0.6 * held)
    seeded = [SamplingParams(xtc_probability=0.4, xtc_threshold=0.1, order="llama.cpp", seed=s)
              for s in range(300)]
    sampler = Sampler(seeded)
    tokens, fires = [], []
    for _ in range(20):
        step_tokens, stats = sampler.step(np.tile(x, (300, 1)))
        tokens.append(step_tokens)
        fires.append(stats.xtc_fired)
        removed = np.where(stats.xtc_fired == 1, 2, 0)  # ids 0 and 1 go when it fires
        assert (stats.xtc_removed == removed).all()
    tokens, fires = np.concatenate(tokens), np.concatenate(fires)
    counts = np.bincount(tokens, minlength=len(x))
    assert scipy.stats.chisquare(counts, law * len(tokens)).pvalue > 1e-3
    assert scipy.stats.binomtest(int(fires.sum()), len(fires), 0.4).pvalue > 1e-3


def test_a_row_with_xtc_draws_the_same_alone_and_in_a_batch():
    x = np.vstack([_rows()[0], _rows()[0]])
    params = SamplingParams(xtc_probability=0.5, xtc_threshold=0.05, seed=7, order="llama.cpp")
    other = SamplingParams(temperature=0.7, top_k=20, seed=3)
    alone, batch = Sampler([params]), Sampler([other, params])
    for _ in range(15):
        token, stats = alone.step(x[:1])
        tokens, batch_stats = batch.step(x)
        assert tokens[1] == token[0]
        assert batch_stats.xtc_fired[1] == stats.xtc_fired[0]
        assert np.isnan(batch_stats.xtc_fired[0])


def test_ties_at_the_least_likely_reaching_token_stay_together_but_in_llama_cpp():
    # Two tokens tied at p = 0.5, both reaching the threshold. llama.cpp removes the first
    # reaching - 1 = 1 entry of its sorted array (which of the two: its sort order); the
    # llama.cpp preset does the same, ranking ties by lowest id, so the higher id stays.
    # Other presets remove neither, since no rule tells them apart.
    row = np.array([0.0, 0.0, -np.inf])
    for order, expected in (("llama.cpp", [0.0, 1.0, 0.0]), ("webui", [0.5, 0.5, 0.0])):
        params = SamplingParams(xtc_probability=1.0, xtc_threshold=0.5, order=order)
        law = distribution(row, params, state={"xtc_coin": 0.0})
        np.testing.assert_allclose(law, expected, err_msg=order)


@pytest.mark.parametrize(
    ("settings", "fragment"),
    [
        ({"xtc_probability": 1.5}, "xtc_probability=1.5 is out of range"),
        ({"xtc_probability": 0.5, "xtc_threshold": -0.1}, "xtc_threshold=-0.1 is out of range"),
        ({"xtc_probability": 0.5}, "xtc is set but the chain"),
    ],
)
def test_bad_xtc_settings_are_one_clear_error(settings, fragment):
    with pytest.raises(InvalidInputError, match=fragment):
        SamplingParams(**settings)


def test_a_bad_coin_is_one_clear_error():
    params = SamplingParams(xtc_probability=0.5, order="llama.cpp")
    with pytest.raises(InvalidInputError, match=r"state\['xtc_coin'\] must be in \[0, 1\]"):
        distribution([1.0, 2.0], params, state={"xtc_coin": 1.5})


def test_compare_s_greedy_row_stays_greedy_with_xtc_on(tmp_path):
    from click.testing import CliRunner

    from sampler.cli import cli

    args = ["compare", "--model", "synthetic:markov?vocab=300&sharpness=2.0&seed=1",
            "--prompt", "kalo mesu", "--order", "llama.cpp", "--xtc-probability", "0.5",
            "--samples", "2", "--max-new-tokens", "12", "--no-log"]
    outputs = [CliRunner().invoke(cli, args) for _ in range(2)]
    assert all(result.exit_code == 0 for result in outputs), outputs[0].output
    assert outputs[0].output == outputs[1].output  # no coin from OS entropy on the greedy row
    plain = CliRunner().invoke(cli, [*args[:7], "--samples", "2", "--max-new-tokens", "12",
                                     "--no-log"])
    assert outputs[0].output.splitlines()[0].startswith("greedy")
    greedy_text = outputs[0].output.splitlines()[1]
    assert greedy_text == plain.output.splitlines()[1]  # the argmax path, as without XTC
