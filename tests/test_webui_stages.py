"""text-generation-webui's quadratic smoothing, top-a and tail-free sampling.

The oracle is a transcription written here, in plain numpy on the dense row, of the rules in
webui's modules/sampler_hijack.py (commit dceb23c7): sort descending, softmax, compare; it
shares no code with sampler/engine. Our stages run dense and after a compacting top-k.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.special

from sampler import SamplingParams, distribution

# every stage present; each test switches on the ones it needs
ORDER = ["logit_bias", "penalties", "temperature", "smoothing", "top_k", "top_p", "typical_p",
         "epsilon", "eta", "tfs", "top_a", "min_p"]


def webui_smoothing(x: np.ndarray, factor: float, curve: float) -> np.ndarray:
    h = x.max()
    d = x - h
    k, s = (3 - curve) / 2, (curve - 1) / 2
    out = x.copy()
    finite = np.isfinite(x)
    out[finite] = -(k * factor * d[finite] ** 2) + s * factor * d[finite] ** 3 + h
    return out


def webui_top_a(x: np.ndarray, a: float) -> np.ndarray:
    order = np.argsort(-x, kind="stable")
    probs = scipy.special.softmax(x[order])
    drop = probs < probs[0] ** 2 * a
    out = x.copy()
    out[order[drop]] = -np.inf
    return out


def webui_tfs(x: np.ndarray, z: float) -> np.ndarray:
    order = np.argsort(-x, kind="stable")
    probs = scipy.special.softmax(x[order])
    d2 = np.abs(np.diff(probs, n=2))
    cdf = np.cumsum(d2 / d2.sum())
    drop = np.concatenate([[False], cdf > z, [True]])
    out = x.copy()
    out[order[drop]] = -np.inf
    return out


def rows(seed: int, vocab: int = 400) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    plain = rng.normal(0, 2.5, vocab)
    peaked = plain.copy()
    peaked[rng.choice(vocab, 3, replace=False)] += 8
    masked = plain.copy()
    masked[rng.choice(vocab, vocab // 3, replace=False)] = -np.inf
    return [plain, peaked, masked]


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize(("factor", "curve"), [(0.3, 1.0), (1.5, 1.0), (0.7, 2.5), (2.0, 6.0)])
def test_smoothing_matches_webui(seed, factor, curve):
    for x in rows(seed):
        expected = scipy.special.softmax(webui_smoothing(x, factor, curve))
        params = SamplingParams(smoothing_factor=factor, smoothing_curve=curve, order=ORDER)
        # float64 rows of 400 logits on both sides: a sum of 400 terms rounds by ≤ 400 u ≈ 4e-14
        np.testing.assert_allclose(distribution(x, params), expected, atol=1e-9)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("a", [0.01, 0.2, 0.6, 1.0])
def test_top_a_matches_webui(seed, a):
    for x in rows(seed):
        expected = scipy.special.softmax(webui_top_a(x, a))
        got = distribution(x, SamplingParams(top_a=a, order=ORDER))
        np.testing.assert_allclose(got, expected, atol=1e-9)  # as for smoothing


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("z", [0.2, 0.5, 0.9, 0.99, 0.0])
def test_tfs_matches_webui(seed, z):
    for x in rows(seed):
        expected = scipy.special.softmax(webui_tfs(x, z))
        got = distribution(x, SamplingParams(tfs=z, order=ORDER))
        np.testing.assert_allclose(got, expected, atol=1e-9)  # as for smoothing


@pytest.mark.parametrize("seed", [0, 1])
def test_tfs_and_top_a_after_a_compacting_top_k(seed):
    # top-k compacts the batch to 50 columns: the stages must see what webui sees on the
    # dense row, where the 350 others are -inf
    for x in rows(seed):
        kept = np.where(x >= np.sort(x)[-50], x, -np.inf)
        for params, oracle in (
            (SamplingParams(top_k=50, tfs=0.7, order=ORDER), webui_tfs(kept, 0.7)),
            (SamplingParams(top_k=50, top_a=0.3, order=ORDER), webui_top_a(kept, 0.3)),
        ):
            np.testing.assert_allclose(  # float64 rows of 400: as for smoothing
                distribution(x, params), scipy.special.softmax(oracle), atol=1e-9
            )


def test_tfs_keeps_a_tie_at_the_cut_together():
    # webui cuts by sorted position, so one of two equal logits at the cut may go; we keep both
    x = np.array([5.0, 3.0, 1.0, 1.0, -2.0, -6.0])
    probs = distribution(x, SamplingParams(tfs=0.5, order=ORDER))
    assert probs[2] == probs[3]


def test_tfs_without_curvature_keeps_the_row():
    # equal logits: every d2 is 0, webui's normalisation is 0/0; we keep the row whole
    probs = distribution(np.zeros(6), SamplingParams(tfs=0.5, order=ORDER))
    np.testing.assert_allclose(probs, np.full(6, 1 / 6))


def test_min_tokens_to_keep_holds_for_top_a_and_tfs():
    x = np.array([9.0, 1.0, 0.5, 0.0, -1.0])
    for params in (
        SamplingParams(top_a=1.0, min_tokens_to_keep=3, order=ORDER),
        SamplingParams(tfs=0.0, min_tokens_to_keep=3, order=ORDER),
    ):
        assert (distribution(x, params) > 0).sum() == 3


def test_neutral_values_leave_the_distribution_alone():
    x = rows(0)[0]
    params = SamplingParams(top_a=0.0, tfs=1.0, smoothing_factor=0.0, smoothing_curve=4.0,
                            order=ORDER)
    # the neutral values leave x as it is: only the two softmaxes' float64 rounding differs
    np.testing.assert_allclose(distribution(x, params), scipy.special.softmax(x), atol=1e-12)
