"""Top-p at a nucleus that ends exactly at p: the peers' own test cases.

Logits here are float32 logs of round probabilities, so their masses sum to p only up to
rounding (0.5 + 0.3 comes out as 0.79999998 in float32). The peers' tests expect the cut at
p; before the masses were compared with a tolerance, ours kept one token too many.
"""

from __future__ import annotations

import numpy as np
import pytest

from sampler import SamplingParams, distribution


def test_transformers_own_top_p_test_case():
    # transformers tests/generation/test_logits_process.py, test_top_p_dist_warper
    dist = np.log(np.array([[0.3, 0.1, 0.1, 0.5], [0.15, 0.3, 0.3, 0.25]], dtype=np.float32))
    expected_filtered = np.array([[0.3, 0.0, 0.0, 0.5], [0.0, 0.3, 0.3, 0.25]])
    expected = expected_filtered / expected_filtered.sum(axis=1, keepdims=True)
    # float32 logits (|x| ≤ 2.3), 4 tokens: ≤ (4 + 4 + 2 · 2.3) u32 ≈ 8e-7 on p ≤ 1
    np.testing.assert_allclose(distribution(dist, SamplingParams(top_p=0.8)), expected, atol=1e-6)
    # and the peer itself on the same input
    torch = pytest.importorskip("torch")
    from transformers import TopPLogitsWarper

    theirs = torch.softmax(TopPLogitsWarper(0.8)(None, torch.tensor(dist)), dim=-1).numpy()
    # the same bound, and transformers' float32 softmax besides: 2 × 8e-7
    np.testing.assert_allclose(distribution(dist, SamplingParams(top_p=0.8)), theirs, atol=1.6e-6)


@pytest.mark.parametrize(
    ("top_p", "expected"),
    [
        # llama.cpp tests/test-sampling.cpp, test_top_p on {0.1, 0.2, 0.3, 0.4}
        (1e-9, [0.0, 0.0, 0.0, 1.0]),  # llama.cpp's case is p = 0; 0 is outside our range
        (0.7, [0.0, 0.0, 0.428571, 0.571429]),
        (0.8, [0.0, 0.222222, 0.333333, 0.444444]),
        (1.0, [0.1, 0.2, 0.3, 0.4]),
    ],
)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_llamacpp_own_top_p_test_cases(top_p, expected, dtype):
    logits = np.log(np.array([0.1, 0.2, 0.3, 0.4], dtype=dtype))
    got = distribution(logits, SamplingParams(top_p=top_p, order="llama.cpp"))
    # llama.cpp's test prints 6 decimals (half a unit: 5e-7); float32 adds ≤ 8e-7 (above)
    np.testing.assert_allclose(got, expected, atol=5e-7 + 8e-7)
