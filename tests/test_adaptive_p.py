"""Adaptive-p against llama.cpp's own sampler, step by step over a generation, state included.

The peer runs through llama-cpp-python's low-level API: a chain of llama.cpp samplers (the
order of our ``llama.cpp`` preset) ending in ``adaptive_p``, applied to a
``llama_token_data_array``. After each apply the array holds every candidate with the
probability adaptive-p drew from, and the selected one; llama.cpp's private running sums
``S`` and ``W`` are read from the sampler's context struct (their offsets checked against the
known initial values ``target / (1 − decay)`` and ``1 / (1 − decay)``). The oracle at every
step: our distribution at our state equals the peer's probabilities, and our state, moved by
the peer's drawn token, equals the peer's next ``S`` and ``W``.
"""

import ctypes

import numpy as np
import pytest

from sampler import Sampler, SamplingParams
from sampler.engine.filters.adaptive_p import chosen_prior
from sampler.engine.rows import RowParams
from sampler.engine.sampling import final_groups
from sampler.engine.state import next_state
from tests.conftest import import_llama_cpp_or_skip

# S and W inside llama.cpp's adaptive_p context (llama-cpp-python 0.3.36): after target, decay,
# seed, current seed and the std::mt19937 (5000 bytes in libstdc++).
SUM_OFFSET, WEIGHT_OFFSET = 5016, 5020
TOKEN_DATA = np.dtype([("id", "<i4"), ("logit", "<f4"), ("p", "<f4")])
# Tolerance, from float32 against float64 (not from the differences seen): llama.cpp's p is a
# float32 softmax whose sequential sum over N candidates is exact to N·u relative (u = 2^-24);
# the transform's slope is at most 10 / 0.3 ≈ 33.4 logits per unit of p, and a softmax turns
# logit errors δ into relative errors 2δ. So |Δq| / q <= 2·33.4·(N+2)·u + (N+2)·u, and the
# average S/W (a convex combination of such p) is off by (N+2)·u at most, plus float32's
# rounding of S and W (u each).
U = 2.0**-24


def _q_rtol(size: int) -> float:
    return (2 * 10 / 0.3 + 1) * (size + 2) * U


def _rows(count: int, vocab: int, seed: int, masked: bool = False) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    zipf = -1.1 * np.log(np.arange(1, vocab + 1))
    rows = []
    for _ in range(count):
        row = rng.permutation(zipf) * rng.uniform(1.5, 3.5) + rng.normal(0, 0.3, vocab)
        if masked:
            row[rng.choice(vocab, vocab // 3, replace=False)] = -np.inf
        rows.append(row.astype(np.float32))
    return rows


def _peer(lib, params: SamplingParams, seed: int = 5):
    """llama.cpp's chain for ``params`` in its common_sampler order, adaptive-p last, and a
    view of adaptive-p's ``S`` and ``W``."""
    adaptive = lib.llama_sampler_init_adaptive_p(
        params.adaptive_target, params.adaptive_decay, seed
    )
    address = adaptive.contents.ctx
    state = (
        ctypes.c_float.from_address(address + SUM_OFFSET),
        ctypes.c_float.from_address(address + WEIGHT_OFFSET),
    )
    weight = np.float32(1) / (np.float32(1) - np.float32(params.adaptive_decay))
    assert state[1].value == weight, "llama.cpp's adaptive_p layout changed"
    chain = lib.llama_sampler_chain_init(lib.llama_sampler_chain_default_params())
    for sampler in (
        lib.llama_sampler_init_top_k(params.top_k),
        lib.llama_sampler_init_top_p(params.top_p, 1),
        lib.llama_sampler_init_min_p(params.min_p, 1),
        lib.llama_sampler_init_temp(params.temperature),
        adaptive,
    ):
        lib.llama_sampler_chain_add(chain, sampler)
    return chain, state


def _peer_step(lib, chain, row: np.ndarray) -> tuple[np.ndarray, int]:
    """The peer's probabilities over the vocabulary after one apply, and its drawn token."""
    data = np.zeros(len(row), dtype=TOKEN_DATA)
    data["id"], data["logit"] = np.arange(len(row)), row
    array = lib.llama_token_data_array(
        data.ctypes.data_as(ctypes.POINTER(lib.llama_token_data)), len(row), -1, False
    )
    lib.llama_sampler_apply(chain, ctypes.byref(array))
    left = (lib.llama_token_data * array.size).from_address(
        ctypes.addressof(array.data.contents)
    )
    kept = np.frombuffer(left, dtype=TOKEN_DATA).copy()
    probs = np.zeros(len(row))
    probs[kept["id"]] = kept["p"]
    return probs, int(kept["id"][array.selected])


CASES = {
    "target 0.3, decay 0.9": dict(adaptive_target=0.3, adaptive_decay=0.9),
    "target 0.5, decay 0.5, τ 0.8": dict(adaptive_target=0.5, adaptive_decay=0.5, temperature=0.8),
    "target 0.7, decay 0": dict(adaptive_target=0.7, adaptive_decay=0.0),
    "target 0.1, decay 0.98": dict(adaptive_target=0.1, adaptive_decay=0.98, temperature=1.2),
    "target 0, decay 0.9": dict(adaptive_target=0.0, adaptive_decay=0.9),
    "target 1, decay 0.9": dict(adaptive_target=1.0, adaptive_decay=0.9),
    # with truncation before it: adaptive-p sees only what top-k and min-p left
    "top-k 40, min-p 0.05, target 0.4": dict(
        adaptive_target=0.4, adaptive_decay=0.8, top_k=40, min_p=0.05, temperature=0.9
    ),
    "top-p 0.9, target 0.2": dict(adaptive_target=0.2, adaptive_decay=0.9, top_p=0.9),
}


def _generation(lib, settings: dict, rows, steps: int | None = None) -> list[dict]:
    """Both sides along the peer's tokens: per step, both distributions and both states.

    The peer takes its settings as float32 (0.99 is 0.99000001 there, and 1 / (1 − decay)
    magnifies that 100-fold): ours are given the same numbers."""
    as_peer = {k: float(np.float32(v)) if isinstance(v, float) else v for k, v in settings.items()}
    params = SamplingParams(order="llama.cpp", **as_peer)
    chain, (peer_sum, peer_weight) = _peer(lib, params)
    row_params = RowParams.from_params([params])
    state = {name: np.asarray(value) for name, value in Sampler([params]).state.items()}
    # rows: a list, or a function of the step and the token drawn before it (a model)
    row_at = rows if callable(rows) else lambda step, token: rows[step]
    count = len(rows) if steps is None else steps
    records, token = [], None
    try:
        for step in range(count):
            row = row_at(step, token)
            record = {"peer_state": (peer_sum.value, peer_weight.value)}
            record["state"] = (state["adaptive_p_sum"][0], state["adaptive_p_weight"][0])
            _, _, (group,) = final_groups(row, params, state=state)
            record["ours"] = group.final.to_dense()[0]
            record["peer"], token = _peer_step(lib, chain, row)
            record["size"] = int((record["ours"] > 0).sum())
            lib.llama_sampler_accept(chain, token)
            prior = chosen_prior(group.notes, np.array([token]))
            state = next_state(state, row_params, record["ours"][[token]], prior)
            records.append(record)
    finally:
        lib.llama_sampler_free(chain)
    return records


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("vocab", [300, 2000])
def test_each_step_and_state_match_llama_cpp_over_a_generation(case, vocab):
    lib = import_llama_cpp_or_skip()
    steps = _generation(lib, CASES[case], _rows(24, vocab, seed=vocab + len(case)))
    for index, step in enumerate(steps):
        ours, peer = step["ours"], step["peer"]
        np.testing.assert_array_equal(ours > 0, peer > 0, f"step {index}")
        rtol = _q_rtol(step["size"])
        np.testing.assert_allclose(ours, peer, rtol=rtol, atol=0, err_msg=f"step {index}")
        total, weight = step["state"]
        peer_total, peer_weight = step["peer_state"]
        # W and S are float32 there: a few roundings a step, accumulated over index + 1 steps;
        # S/W averages p's, each off by (N + 2) u (the module's note, N = vocab here)
        assert weight == pytest.approx(peer_weight, rel=4 * U * (index + 1)), index
        assert total / weight == pytest.approx(
            peer_total / peer_weight, rel=(vocab + 2) * U + 4 * U * (index + 1)
        ), index


def test_a_smollm2_generation_matches_llama_cpp_under_its_default_chain(gguf):
    # llama.cpp's defaults (top-k 40, top-p 0.95, min-p 0.05, τ 0.8) with adaptive-p added:
    # the model goes on with the peer's tokens, 32 steps
    lib = import_llama_cpp_or_skip()
    prompt = gguf.encode("Write one sentence about the sea.", chat=True)
    logits, session = gguf.start([prompt])
    first = logits[0]

    def row_at(step: int, token: int | None) -> np.ndarray:
        return first if token is None else session.advance(np.array([token]))[0]

    settings = dict(
        adaptive_target=0.25, adaptive_decay=0.9, top_k=40, top_p=0.95, min_p=0.05,
        temperature=0.8,
    )
    steps = _generation(lib, settings, row_at, steps=32)
    for index, step in enumerate(steps):
        np.testing.assert_array_equal(step["ours"] > 0, step["peer"] > 0, f"step {index}")
        rtol = _q_rtol(step["size"])
        np.testing.assert_allclose(step["ours"], step["peer"], rtol=rtol, err_msg=f"{index}")
        (total, weight), (peer_total, peer_weight) = step["state"], step["peer_state"]
        # as above, N + 2 = 42: top-k 40 bounds the candidates of llama.cpp's float32 sum
        assert total / weight == pytest.approx(
            peer_total / peer_weight, rel=42 * U + 4 * U * (index + 1)
        ), index
    assert len({step["size"] for step in steps}) > 1  # the chain kept different counts


def test_a_masked_token_stays_masked_as_in_llama_cpp():
    # -inf logits (a model's masked tokens) keep probability 0 on both sides
    lib = import_llama_cpp_or_skip()
    settings = dict(adaptive_target=0.3, adaptive_decay=0.9)
    steps = _generation(lib, settings, _rows(8, 600, seed=4, masked=True))
    for step in steps:
        assert (step["ours"] > 0).sum() == 400
        np.testing.assert_allclose(step["ours"], step["peer"], rtol=_q_rtol(400), atol=0)
