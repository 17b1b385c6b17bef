"""`distribution()` under the `llama.cpp` order against a transcription of llama.cpp's chain.

The reference below is a slow, plain-Python transcription of the ``apply`` functions in
llama.cpp's ``src/llama-sampling.cpp`` (logit bias, penalties, top-n-sigma, top-k, typical,
top-p, min-p, temperature, dist), chained as ``common_sampler_init`` chains them. It works as
llama.cpp does: on a candidate list ``[(id, logit)]`` that starts in id order, filters shorten
or reorder it, and ``dist`` takes a fresh softmax of what is left.

Ties are the one place where llama.cpp is unspecified: it sorts with ``std::partial_sort`` /
``std::sort`` (not stable), so which of several equal logits survives a top-k cut, or wins at
temperature 0, is arbitrary; ``sampler`` keeps or drops ties together. The logits here are
continuous random numbers (no ties, asserted), so the comparison is exact up to rounding
(llama.cpp computes in float32, the reference in float64; tolerance 1e-6).

Two conventions differ by design and are mapped: our ``penalty_last_n=0`` means the whole
history (llama.cpp's 0 switches penalties off; its CLI's ``-1`` is "the whole context"), and
our ``min_tokens_to_keep=1`` is llama.cpp's default ``min_keep=0`` (identical everywhere).
"""

import math
from collections import Counter

import numpy as np
import pytest
from conftest import parity_logits, penalty_history

from sampler import SamplingParams, distribution

NEG_INF = -math.inf


def _softmax(values: list[float]) -> list[float]:
    top = max(values)
    weights = [math.exp(v - top) for v in values]
    total = sum(weights)
    return [w / total for w in weights]


def _by_logit(cur):
    return sorted(cur, key=lambda c: -c[1])


def _penalties(cur, params, history):
    rep, freq = params.repetition_penalty, params.frequency_penalty
    present = params.presence_penalty
    if rep == 1 and freq == 0 and present == 0:
        return cur
    last_n = params.penalty_last_n
    window = list(history)[-last_n:] if last_n > 0 else list(history)
    counts = Counter(int(t) for t in window)
    out = []
    for token, logit in cur:
        count = counts.get(token, 0)
        if count > 0:
            logit = logit * rep if logit <= 0 else logit / rep
            logit -= count * freq + float(count > 0) * present
        out.append((token, logit))
    return out


def _top_n_sigma(cur, n):
    if n <= 0 or len(cur) <= 1:
        return cur
    finite = [x for _, x in cur if x != NEG_INF]
    mean = sum(finite) / len(finite)
    std = math.sqrt(sum((x - mean) ** 2 for x in finite) / len(finite))
    floor = max(finite) - n * std
    # Masked tokens stay in the array at -inf; then a full sort (and a softmax nobody reads).
    return _by_logit([(t, NEG_INF if x < floor else x) for t, x in cur])


def _top_k(cur, k):
    if k <= 0:
        return cur
    return _by_logit(cur)[: min(k, len(cur))]  # exactly k: no min_keep, ties cut arbitrarily


def _typical(cur, p, min_keep):
    if p >= 1:
        return cur
    cur = _by_logit(cur)
    probs = _softmax([x for _, x in cur])
    # llama.cpp has no 0·log 0 guard: a -inf candidate here makes the entropy NaN.
    assert min(probs) > 0, "llama.cpp's typical sampler is undefined with -inf candidates"
    entropy = -sum(q * math.log(q) for q in probs)
    scores = [abs(-math.log(q) - entropy) for q in probs]
    order = sorted(range(len(cur)), key=lambda j: scores[j])
    cum, keep = 0.0, len(cur)
    for rank, j in enumerate(order):
        cum += probs[j]
        if cum > p and (min_keep == 0 or rank >= min_keep - 1):  # strict >
            keep = rank + 1
            break
    return [cur[j] for j in order[:keep]]


def _top_p(cur, p, min_keep):
    if p >= 1:
        return cur
    ranked = _by_logit(cur)
    probs = _softmax([x for _, x in ranked])
    cum, keep = 0.0, len(ranked)
    for rank, q in enumerate(probs):
        cum += q
        if cum >= p and rank + 1 >= min_keep:  # the crossing token is kept
            keep = rank + 1
            break
    return ranked[:keep]


def _min_p(cur, p, min_keep):
    if p <= 0 or not cur:
        return cur
    floor = max(x for _, x in cur) + math.log(p)
    kept = [c for c in cur if c[1] >= floor]  # the unsorted path
    if kept and len(kept) >= min_keep:
        return kept
    ranked = _by_logit(cur)  # the sorted path (same set when it has min_keep tokens)
    size = 1
    while size < len(ranked) and (ranked[size][1] >= floor or size < min_keep):
        size += 1
    return ranked[:size]


def _temperature(cur, temp):
    if temp <= 0:  # the first maximum in array order survives, the rest become -inf
        first = max(range(len(cur)), key=lambda j: cur[j][1])
        return [(t, x if j == first else NEG_INF) for j, (t, x) in enumerate(cur)]
    return [(t, x / temp) for t, x in cur]


def llamacpp_reference(logits, history, params: SamplingParams) -> np.ndarray:
    """llama.cpp's default chain over one row: the probabilities ``dist`` draws from."""
    min_keep = params.min_tokens_to_keep
    cur = [(t, float(x)) for t, x in enumerate(logits)]
    cur = [(t, x + params.logit_bias.get(t, 0.0)) for t, x in cur]
    cur = _penalties(cur, params, history)
    cur = _top_n_sigma(cur, params.top_n_sigma)
    cur = _top_k(cur, params.top_k)
    cur = _typical(cur, params.typical_p, min_keep)
    cur = _top_p(cur, params.top_p, min_keep)
    cur = _min_p(cur, params.min_p, min_keep)
    cur = _temperature(cur, params.temperature)
    out = np.zeros(len(logits))
    for (token, _), q in zip(cur, _softmax([x for _, x in cur]), strict=True):
        out[token] = q
    return out


LOGITS = {vocab: parity_logits(vocab, 0) for vocab in (1000, 3000)}
HISTORY_SEED = 7
BIAS = {3: 8.0, 10: -4.0, 77: 2.5, 500: 6.0}
DEFAULTS = {"top_k": 40, "top_p": 0.95, "min_p": 0.05, "temperature": 0.8}
PENALTIES = dict(repetition_penalty=1.1, frequency_penalty=0.3, presence_penalty=0.2)
CASES = {
    "temperature": {"temperature": 0.7},
    "greedy": {"temperature": 0.0},
    "top_k_40": {"top_k": 40},
    "top_k_1_hot": {"top_k": 1, "temperature": 1.5},
    "top_p_0.95": {"top_p": 0.95},
    "top_p_0.3_hot": {"top_p": 0.3, "temperature": 1.5},
    "min_p_0.05": {"min_p": 0.05},
    "min_p_0.3_hot": {"min_p": 0.3, "temperature": 2.0},
    "typical_0.9": {"typical_p": 0.9},
    "typical_0.5_cold": {"typical_p": 0.5, "temperature": 0.6},
    "top_n_sigma_1": {"top_n_sigma": 1.0},
    "top_n_sigma_2_cold": {"top_n_sigma": 2.0, "temperature": 0.5},
    "logit_bias": {"logit_bias": BIAS},
    "repetition_1.1": {"repetition_penalty": 1.1},
    "penalties_all_history": PENALTIES,
    "penalties_last_64": {**PENALTIES, "repetition_penalty": 1.3, "penalty_last_n": 64},
    "negative_penalties": dict(repetition_penalty=0.8, frequency_penalty=-0.5, presence_penalty=-1),
    "llamacpp_defaults": DEFAULTS,
    "defaults_greedy": {**DEFAULTS, "temperature": 0.0},
    "defaults_typical_penalties": dict(DEFAULTS, **PENALTIES, typical_p=0.9, logit_bias=BIAS),
    "sigma_chain": {**DEFAULTS, "top_n_sigma": 1.0, "top_p": 0.9, "temperature": 0.7},
    # σ-filter wide enough that top-k leaves no -inf candidate for typical (see below).
    "everything": {**DEFAULTS, **PENALTIES, "top_n_sigma": 4.0, "top_k": 30, "typical_p": 0.9},
    "min_keep_top_p": {"top_p": 0.05, "min_tokens_to_keep": 8},
    "min_keep_min_p": {"min_p": 0.95, "min_tokens_to_keep": 8},
    "min_keep_typical": {"typical_p": 0.05, "min_tokens_to_keep": 8},
}


def test_random_logits_have_no_ties():
    """The parity below relies on it: with ties, llama.cpp's result is unspecified."""
    for vocab, rows in LOGITS.items():
        assert all(len(np.unique(row)) == vocab for row in rows.astype(np.float32))


def test_reference_on_a_hand_computed_example():
    logits = [2.0, -1.0, 0.5, 1.0]
    params = SamplingParams(repetition_penalty=2.0, presence_penalty=0.25, top_k=3, top_p=0.6)
    # Token 0 seen: 2 / 2 - 0.25 = 0.75; token 1 seen: -1 * 2 - 0.25 = -2.25. Top-3 keeps
    # {3: 1.0, 0: 0.75, 2: 0.5}; token 3 holds 0.42 of that mass, 3 and 0 together 0.75.
    ref = llamacpp_reference(logits, [0, 1, 0], params)
    expected = np.exp([0.75, 1.0]) / np.exp([0.75, 1.0]).sum()
    np.testing.assert_allclose(ref, [expected[0], 0, 0, expected[1]], rtol=1e-12)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("vocab", sorted(LOGITS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_matches_llamacpp_chain(case, vocab, dtype):
    logits = LOGITS[vocab].astype(dtype)
    history = penalty_history(logits, HISTORY_SEED)
    params = SamplingParams(**CASES[case], order="llama.cpp")
    ours = distribution(logits, params, history=history)
    assert ours.dtype == dtype
    rows = zip(logits, history, strict=True)
    theirs = np.array([llamacpp_reference(*row, params) for row in rows])
    np.testing.assert_allclose(ours, theirs, atol=1e-6, rtol=0)
    assert ((ours > 0) == (theirs > 0)).all(), "kept sets differ"
    if params.is_greedy or set(params.active_stages) - {"logit_bias", "penalties", "temperature"}:
        assert ((theirs > 0).sum(axis=1) < vocab).all(), "the filters should drop tokens"


MASKED_CASES = ["top_n_sigma_1", "sigma_chain", "llamacpp_defaults", "defaults_greedy"]


@pytest.mark.parametrize("case", [*MASKED_CASES, "penalties_last_64", "negative_penalties"])
def test_matches_llamacpp_chain_with_masked_logits(case):
    """-inf input logits (a grammar or a ban): σ's statistics skip them, as llama.cpp's do."""
    logits = LOGITS[1000].copy()
    logits[:, ::3] = -np.inf
    history = penalty_history(np.where(np.isfinite(logits), logits, -100.0), HISTORY_SEED)
    params = SamplingParams(**CASES[case], order="llama.cpp")
    ours = distribution(logits, params, history=history)
    for row, ids, probs in zip(logits, history, ours, strict=True):
        theirs = llamacpp_reference(row, ids, params)
        np.testing.assert_allclose(probs, theirs, atol=1e-6, rtol=0)
        assert ((probs > 0) == (theirs > 0)).all()


def test_top_n_sigma_uses_the_population_std():
    logits = np.array([3.0, 2.0, 0.6, 0.0])
    # mean 1.4; population σ = 1.175 puts the 2σ floor at 0.651 (drops 0.6); the sample σ
    # (1.357, ddof=1) would put it at 0.287 and keep 0.6.
    params = SamplingParams(top_n_sigma=2.0, order="llama.cpp")
    ours = distribution(logits, params)
    assert np.flatnonzero(ours).tolist() == [0, 1]
    # four float64 logits on both sides: a few ulps of numbers ≤ 1
    np.testing.assert_allclose(ours, llamacpp_reference(logits, [], params), atol=1e-12)


def test_top_n_sigma_kept_set_does_not_depend_on_temperature():
    """Under the llama.cpp order top-n-σ runs before temperature; and σ scales with 1/T."""
    logits = LOGITS[1000][0]
    kept = []
    for temperature in (0.25, 0.8, 1.0, 3.0):
        params = SamplingParams(top_n_sigma=1.0, temperature=temperature, order="llama.cpp")
        probs = distribution(logits, params)
        # float64 logits on both sides: sums of ≤ 1000 terms round by ≤ 1000 u ≈ 1e-13
        np.testing.assert_allclose(probs, llamacpp_reference(logits, [], params), atol=1e-9)
        kept.append(np.flatnonzero(probs).tolist())
        # Temperature-first order: the kept set is still the same (max and σ both scale).
        first = SamplingParams(
            top_n_sigma=1.0, temperature=temperature, order=["temperature", "top_n_sigma"]
        )
        assert np.flatnonzero(distribution(logits, first)).tolist() == kept[0]
    assert all(k == kept[0] for k in kept)
    assert 1 < len(kept[0]) < 100
    floor = logits.max() - logits.std()  # numpy's std is the population std, as llama.cpp's
    assert kept[0] == np.flatnonzero(logits >= floor).tolist()


def test_min_p_kept_set_depends_on_temperature_under_vllm_order_only():
    """vLLM applies min-p to tempered logits; llama.cpp applies temperature last."""
    logits = np.array([2.0, 1.0, 0.0, -1.0, -3.0])
    # ln 0.3 = -1.204: in raw-logit units the min-p floor is max + T * ln(0.3).
    expected_vllm = {0.5: [0], 1.0: [0, 1], 2.0: [0, 1, 2], 4.0: [0, 1, 2, 3]}
    for temperature, vllm_kept in expected_vllm.items():
        vllm = distribution(
            logits, SamplingParams(min_p=0.3, temperature=temperature, order="vllm")
        )
        assert np.flatnonzero(vllm).tolist() == vllm_kept
        params = SamplingParams(min_p=0.3, temperature=temperature, order="llama.cpp")
        llama = distribution(logits, params)
        assert np.flatnonzero(llama).tolist() == [0, 1]
        kept = np.exp(logits[:2] / temperature)
        # two float64 terms and a division: a few ulps
        np.testing.assert_allclose(llama[:2], kept / kept.sum(), rtol=1e-12)
        np.testing.assert_allclose(llama, llamacpp_reference(logits, [], params), atol=1e-12)


def test_typical_after_top_n_sigma_ignores_the_masked_tokens():
    """llama.cpp leaves σ-masked tokens in the array at -inf; its typical sampler then sums
    ``-p log p`` with ``p = 0``, which is NaN (undefined ranking). We take 0 log 0 = 0, i.e.
    typical over the tokens top-n-σ kept: that is what llama.cpp computes when none is masked.
    """
    logits = LOGITS[1000][0]  # σ keeps 18 tokens of 1000
    params = SamplingParams(top_n_sigma=1.0, typical_p=0.9, temperature=0.7, order="llama.cpp")
    with pytest.raises(AssertionError, match="undefined with -inf"):
        llamacpp_reference(logits, [], params)
    cur = _top_n_sigma([(t, float(x)) for t, x in enumerate(logits)], params.top_n_sigma)
    cur = [c for c in cur if c[1] != NEG_INF]
    assert 2 < len(cur) < 40
    cur = _temperature(_typical(cur, params.typical_p, 1), params.temperature)
    expected = np.zeros(len(logits))
    expected[[t for t, _ in cur]] = _softmax([x for _, x in cur])
    # float64 on both sides, a sum over fewer than 40 kept tokens: ulps of 1
    np.testing.assert_allclose(distribution(logits, params), expected, atol=1e-12)


def test_typical_stops_only_past_the_mass_like_llamacpp():
    # The llama.cpp preset compares typical's float32 mass as llama.cpp does: strictly above
    # typical_p (transformers' rule, in the other presets, stops once it reaches it).
    # Probabilities 1/2, 1/4, 1/8, 1/16, 1/16 (exact in binary): H = 1.875 bits, so the
    # ranking by |-log2 p - H| starts 1/4 (0.125), 1/2 (0.875), 1/8 (1.125); after two
    # tokens the mass is exactly 0.75. llama.cpp needs > 0.75 and takes the third.
    logits = np.log([0.5, 0.25, 0.125, 0.0625, 0.0625])
    params = SamplingParams(typical_p=0.75, order="llama.cpp")
    assert np.flatnonzero(llamacpp_reference(logits, [], params)).tolist() == [0, 1, 2]
    assert np.flatnonzero(distribution(logits, params)).tolist() == [0, 1, 2]


def test_top_k_ignores_min_keep_like_llamacpp():
    # llama.cpp's top-k keeps exactly k; the llama.cpp preset too (the other presets keep
    # max(top_k, min_tokens_to_keep), as transformers' TopKLogitsWarper does).
    logits = LOGITS[1000][0]
    params = SamplingParams(top_k=2, min_tokens_to_keep=5, order="llama.cpp")
    ours = distribution(logits, params)
    assert np.count_nonzero(llamacpp_reference(logits, [], params)) == 2
    assert np.count_nonzero(ours) == 2
