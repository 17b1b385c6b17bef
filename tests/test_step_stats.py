"""Step statistics against closed forms: an independent float64 chain written here, and scipy.

The reference chain below (penalties, temperature, top-k, top-p, min-p in each preset's
order) shares no code with sampler/engine; every StepStats field is recomputed from it with
scipy.special.softmax and scipy.stats.entropy.
"""

import numpy as np
import pytest
import scipy.special
import scipy.stats
from test_engine import _logits

from sampler import Sampler, SamplingParams

REFERENCE_ORDERS = {
    "hf": ("penalties", "temperature", "top_k", "top_p", "min_p"),
    "llama.cpp": ("penalties", "top_k", "top_p", "min_p", "temperature"),
    "vllm": ("penalties", "temperature", "min_p", "top_k", "top_p"),
}

U32, U64 = 2.0**-24, 2.0**-53  # unit roundoffs


def float32_nats(q: np.ndarray, *others: np.ndarray) -> float:
    """How far a statistic in nats (an entropy, a KL) over float32 logits can be from float64.

    The engine rounds y = log-weights and exp(y) in float32 (≤ 2u|y| relative per weight) and
    sums the products in float64, so Σ q · (terms) moves by at most 4u E_q[1 + y²] per law;
    |y| ≤ |log p| (y = log p + log Z, log Z ≥ 0 and y ≤ 0).
    """
    def second_moment(law: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore"):
            logs = np.where(law > 0, np.log(np.where(law > 0, law, 1.0)), 0.0)
        return (q * logs**2).sum(axis=-1)

    return float((4 * U32 * (1 + sum(second_moment(law) for law in (q, *others)))).max())


def _reference_step(raw: np.ndarray, history: np.ndarray, setting: dict, order: str):
    """One row's chain written from scratch in float64, from docs/engine.md's definitions.

    Returns ``(tempered logits, final logits, final probabilities)``: the dense logits after
    penalties and temperature (what ``entropy_temp`` measures), the chain's last logits
    (``-inf`` where dropped) and the distribution a draw uses.
    """
    mode = setting.get("mode", "sample")
    # hardmax is the τ → 0 limit whatever the temperature: uniform over the tied maxima.
    tau = 0.0 if mode == "hardmax" else setting.get("temperature", 1.0)
    x = raw.astype(np.float64)
    rep = setting.get("repetition_penalty", 1.0)
    freq = setting.get("frequency_penalty", 0.0)
    pres = setting.get("presence_penalty", 0.0)
    if (rep, freq, pres) != (1.0, 0.0, 0.0):
        x = x.copy()
        ids, counts = np.unique(history, return_counts=True)
        seen = x[ids]
        x[ids] = np.where(seen > 0, seen / rep, seen * rep) - counts * freq - pres

    def temper(y):
        return np.where(y == y.max(), 0.0, -np.inf) if tau == 0 else y / tau

    y = x
    for stage in REFERENCE_ORDERS[order]:
        if stage == "temperature":
            y = temper(y)
        elif stage == "top_k" and setting.get("top_k", 0) > 0:
            if order == "llama.cpp":  # exactly k, tied logits ranked by lowest id (presets.py)
                kept = np.lexsort((np.arange(len(y)), -y))[: setting["top_k"]]
                y = np.where(np.isin(np.arange(len(y)), kept), y, -np.inf)
            else:
                kth = np.sort(y)[::-1][setting["top_k"] - 1]
                y = np.where(y >= kth, y, -np.inf)  # ties with the k-th are kept
        elif stage == "top_p" and setting.get("top_p", 1.0) < 1:
            ranked = np.sort(y)[::-1]
            probs = scipy.special.softmax(ranked)
            above = np.cumsum(probs) - probs  # mass ranked strictly above each token
            last = ranked[(above < setting["top_p"]).sum() - 1]
            y = np.where(y >= last, y, -np.inf)  # the crossing token and its ties are kept
        elif stage == "min_p" and setting.get("min_p", 0.0) > 0:
            probs = scipy.special.softmax(y)
            y = np.where(probs >= setting["min_p"] * probs.max(), y, -np.inf)
    if mode == "greedy" or (mode == "sample" and tau == 0):
        final = np.zeros_like(y)
        final[np.flatnonzero(y == y.max())[0]] = 1.0  # the lowest id among the maxima
    else:
        final = scipy.special.softmax(y)
    return temper(x), y, final


def _tied_logits() -> np.ndarray:
    raw = _logits(6, 3000, seed=9).astype(np.float64)
    raw[:, :3] = raw.max(axis=1, keepdims=True) + 1  # a three-way tie at the top of every row
    return raw


@pytest.mark.parametrize("order", ["hf", "llama.cpp", "vllm"])
@pytest.mark.parametrize(
    "setting",
    [
        {"temperature": 0.7},
        {"temperature": 1.4, "top_k": 20},
        # k falls inside the tie: all three are kept, but two in the llama.cpp preset
        {"temperature": 1.4, "top_k": 2},
        {"temperature": 0.8, "top_p": 0.9, "min_p": 0.02},
        {"temperature": 0.0},
        {"temperature": 0.0, "repetition_penalty": 1.3},
        {"mode": "hardmax"},
        {"mode": "hardmax", "repetition_penalty": 1.3},
        {"temperature": 1.1, "repetition_penalty": 1.3, "frequency_penalty": 0.5},
    ],
)
def test_step_stats_match_closed_forms(setting, order):
    raw = _tied_logits()
    # Rows 0-2 see 0, 1 or 2 of the tied tokens in their history, so the penalties break the
    # tie differently in each: 3, 1 and 2 maxima remain.
    history = [np.arange(row, row + 30) for row in range(6)]
    tokens, stats = Sampler([SamplingParams(**setting, order=order, seed=5)] * 6).step(
        raw, history=history
    )
    base = scipy.special.softmax(raw, axis=1)
    reference = [_reference_step(raw[r], history[r], setting, order) for r in range(6)]
    tempered = np.array([r[0] for r in reference])
    final_logits = np.array([r[1] for r in reference])
    final = np.array([r[2] for r in reference])
    rows = np.arange(6)
    assert (final[rows, tokens] > 0).all(), "a token drawn outside the reference support"
    # float64 on both sides: a sum of n terms, each at most `size`, rounds by ≤ n u size
    # (sequential worst case), and the terms themselves by a few u each
    n = raw.shape[1]
    laws = np.concatenate([base, scipy.special.softmax(tempered, axis=1), final])
    size = np.abs(np.log(laws[laws > 0])).max()
    nats = 2 * (n + 4) * U64 * (1 + size)  # entropies, surprisals, KL: p·log p terms
    mass = 2 * (n + 4) * U64  # probabilities and sums of them
    np.testing.assert_allclose(stats.entropy_base, scipy.stats.entropy(base, axis=1), atol=nats)
    np.testing.assert_allclose(
        stats.entropy_temp,
        scipy.stats.entropy(scipy.special.softmax(tempered, axis=1), axis=1),
        atol=nats,
    )
    np.testing.assert_allclose(stats.entropy_final, scipy.stats.entropy(final, axis=1), atol=nats)
    np.testing.assert_allclose(stats.surprisal, -np.log(final[rows, tokens]), atol=nats)
    np.testing.assert_allclose(stats.surprisal_base, -np.log(base[rows, tokens]), atol=nats)
    np.testing.assert_allclose(stats.top1_prob, final.max(axis=1), atol=mass)
    np.testing.assert_allclose(
        stats.kept_mass, np.where(final > 0, base, 0).sum(axis=1), atol=mass
    )
    np.testing.assert_allclose(
        stats.kl_final_base, scipy.stats.entropy(final, base, axis=1), atol=nats
    )
    np.testing.assert_array_equal(stats.base_argmax, np.zeros(6))  # lowest id of the tie
    # kept_tokens is being redefined (finite final logits -> non-zero float64 probabilities);
    # check it only on rows where the two definitions agree: no kept logit underflows to 0.
    agree = np.isfinite(final_logits).sum(axis=1) == (
        scipy.special.softmax(final_logits, axis=1) > 0
    ).sum(axis=1)
    assert agree.any()
    np.testing.assert_array_equal(stats.kept_tokens[agree], (final > 0).sum(axis=1)[agree])


def test_reference_chain_on_hand_computed_rows():
    """The oracle itself, on numbers small enough to check by hand."""
    x = np.log(np.array([0.5, 0.2, 0.2, 0.1]))
    # top-p 0.6: 0.5 is short of 0.6, the tied 0.2s cross it together.
    _, _, probs = _reference_step(x, np.array([], int), {"top_p": 0.6}, "hf")
    np.testing.assert_allclose(probs, [0.5 / 0.9, 0.2 / 0.9, 0.2 / 0.9, 0])
    # min-p 0.3 under llama.cpp sees τ = 1 (floor 0.15, drops 0.1), under hf τ = 0.5 (p ∝ p²:
    # 0.25, 0.04, 0.04, 0.01, floor 0.075: keeps only 0.5).
    setting = {"temperature": 0.5, "min_p": 0.3}
    _, _, llama = _reference_step(x, np.array([], int), setting, "llama.cpp")
    np.testing.assert_allclose(llama, np.array([0.25, 0.04, 0.04, 0]) / 0.33)
    _, _, hf = _reference_step(x, np.array([], int), setting, "hf")
    np.testing.assert_allclose(hf, [1, 0, 0, 0])
    # Repetition 2 then frequency 0.5 on a token seen twice: log 0.5 < 0, so × 2, then − 1.
    tempered, _, _ = _reference_step(
        x, np.array([0, 0]), {"repetition_penalty": 2.0, "frequency_penalty": 0.5}, "hf"
    )
    assert tempered[0] == pytest.approx(2 * np.log(0.5) - 1, rel=4 * U64)  # 3 float64 ops


def _nucleus_reference(raw: np.ndarray, temperature: float, top_p: float):
    """softmax(x / τ) and its nucleus, with scipy and a sort: no engine code."""
    tempered = scipy.special.softmax(raw.astype(np.float64) / temperature, axis=1)
    final = np.zeros_like(tempered)
    for row, probs in enumerate(tempered):
        order = np.argsort(-probs, kind="stable")
        above = np.cumsum(probs[order]) - probs[order]
        keep = order[above < top_p]
        final[row, keep] = probs[keep] / probs[keep].sum()
    return tempered, final


def test_entropy_final_is_at_most_entropy_temp_for_nucleus_at_low_temperature():
    raw = _logits(8, 2000, seed=4)
    _, stats = Sampler(SamplingParams(temperature=0.5, top_p=0.8, seed=1)).step(raw)
    tempered, final = _nucleus_reference(raw, 0.5, 0.8)
    h_temp = scipy.stats.entropy(tempered, axis=1)
    h_final = scipy.stats.entropy(final, axis=1)
    np.testing.assert_allclose(stats.entropy_temp, h_temp, atol=float32_nats(tempered))
    np.testing.assert_allclose(stats.entropy_final, h_final, atol=float32_nats(final))
    assert (h_final < h_temp).all()  # the oracle agrees with the claim in the name
    assert (stats.entropy_final < stats.entropy_temp).all()
    assert (stats.entropy_temp < stats.entropy_base).all()
    base = scipy.special.softmax(raw.astype(np.float64), axis=1)
    # each float32 weight is off by ≤ 2u|y| relative, |y| ≤ |log p|: the mass by 2u E|log p|
    mass_bound = 2 * U32 * (1 + scipy.stats.entropy(base, axis=1).max())
    np.testing.assert_allclose(
        stats.kept_mass, np.where(final > 0, base, 0).sum(axis=1), atol=mass_bound
    )
    assert (stats.kept_mass < 1).all() and (stats.kept_mass > 0).all()
    np.testing.assert_allclose(
        stats.kl_final_base, scipy.stats.entropy(final, base, axis=1),
        atol=float32_nats(final, base),
    )
    assert (stats.kl_final_base > 0).all()


@pytest.mark.parametrize("width", [1000, 8192])
def test_kl_of_a_row_whose_maximum_is_zero_does_not_read_stale_scratch(width):
    # A row whose maximum logit is exactly 0 (a zipf row, log-probabilities) is its own shifted
    # row: the statistics once read the scratch buffer instead, which held an earlier row's
    # numbers on this thread (or garbage on a fresh one).
    import threading

    rng = np.random.default_rng(0)
    row = rng.normal(size=width).astype(np.float32)
    row -= row.max()
    other = rng.normal(size=(1, width)).astype(np.float32) * 3 + 1
    params = SamplingParams(temperature=0.8, seed=1)
    tempered = scipy.special.softmax(row.astype(np.float64) / 0.8)
    expected = scipy.stats.entropy(tempered, scipy.special.softmax(row.astype(np.float64)))
    found = []

    def step() -> None:
        found.append(Sampler([params]).step(row[None])[1].kl_final_base[0])

    thread = threading.Thread(target=step)  # a thread whose scratch buffers are new
    thread.start()
    thread.join()
    Sampler([params]).step(other)  # leaves another row in this thread's scratch
    step()
    bound = float32_nats(tempered, scipy.special.softmax(row.astype(np.float64)))
    np.testing.assert_allclose(found, [expected, expected], rtol=0, atol=bound)
