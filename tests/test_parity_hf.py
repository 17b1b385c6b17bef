"""`distribution()` under the `hf` order against transformers' own warpers, within 1e-6."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
generation = pytest.importorskip("transformers.generation.logits_process")

from sampler import SamplingParams, distribution  # noqa: E402


def hf_processors(params: SamplingParams) -> list:
    """The processors `generate(do_sample=True)` builds for these settings, in its order."""
    g = generation
    chain = []
    if params.repetition_penalty != 1:
        chain.append(g.RepetitionPenaltyLogitsProcessor(params.repetition_penalty))
    if params.temperature != 1:
        chain.append(g.TemperatureLogitsWarper(params.temperature))
    if params.top_h:
        chain.append(g.TopHLogitsWarper(params.top_h))
    if params.top_k:
        chain.append(g.TopKLogitsWarper(params.top_k))
    if params.top_p < 1:
        chain.append(g.TopPLogitsWarper(params.top_p))
    if params.min_p:
        chain.append(g.MinPLogitsWarper(params.min_p))
    if params.typical_p < 1:
        chain.append(g.TypicalLogitsWarper(params.typical_p))
    if params.epsilon:
        chain.append(g.EpsilonLogitsWarper(params.epsilon))
    if params.eta:
        chain.append(g.EtaLogitsWarper(params.eta))
    return chain


def hf_distribution(logits: np.ndarray, params: SamplingParams, history) -> np.ndarray:
    scores = torch.from_numpy(logits.copy())
    input_ids = torch.tensor(np.array(history), dtype=torch.long)
    for processor in hf_processors(params):
        scores = processor(input_ids, scores)
    return torch.softmax(scores, dim=-1).numpy()


def _logit_sets():
    rng = np.random.default_rng(2024)
    vocab = 2000
    normal = rng.normal(0, 3, (6, vocab))
    peaked = rng.normal(0, 1, (4, vocab))
    peaked[:, 7] = 25.0  # near-degenerate: one token holds almost all the mass
    long_tail = -1.1 * np.log(np.arange(1, vocab + 1))[None, :] + rng.normal(0, 0.05, (4, vocab))
    masked = rng.normal(0, 2, (4, vocab))
    masked[:, ::3] = -np.inf
    flat = rng.normal(0, 0.01, (3, vocab))
    tied_top = rng.normal(0, 1, (3, vocab))
    tied_top[:, [3, 10, 11]] = 9.0  # tied maxima
    return {
        "normal": normal,
        "peaked": peaked,
        "long_tail": long_tail,
        "masked": masked,
        "flat": flat,
        "tied_top": tied_top,
    }


LOGIT_SETS = _logit_sets()
SETTINGS = [
    {"temperature": 0.7},
    {"temperature": 1.6},
    {"top_k": 1},
    {"top_k": 50},
    {"top_p": 0.9},
    {"top_p": 0.3, "temperature": 0.5},
    {"min_p": 0.05},
    {"min_p": 0.3, "temperature": 1.5},
    {"typical_p": 0.9},
    {"typical_p": 0.4},
    {"epsilon": 3e-4},
    {"eta": 3e-4},
    {"eta": 0.05},
    {"repetition_penalty": 1.3},
    {"temperature": 0.7, "top_k": 50, "top_p": 0.9, "min_p": 0.05},
    {"temperature": 1.2, "top_k": 200, "typical_p": 0.8, "epsilon": 1e-4, "eta": 1e-3},
    {"repetition_penalty": 0.8, "temperature": 0.9, "top_p": 0.95, "min_p": 0.02},
    {"top_h": 0.4},
    {"top_h": 0.8, "temperature": 0.7, "top_k": 50, "top_p": 0.9},
]


def _case_id(setting: dict) -> str:
    return ",".join(f"{k}={v}" for k, v in setting.items())


# The only cases where transformers and we part: the three tied maxima of `tied_top` straddle
# the top-p cut. TopPLogitsWarper keeps tokens by sort position, so it keeps one of the three;
# we keep equal logits together (docs/engine.md's one deliberate difference). Every other tie case,
# typical_p included, matches transformers exactly.
# Top-H parts the same way: its cut falls inside the three tied maxima, and TopHLogitsWarper
# keeps the first one or two of them in its sort order (tests/test_top_h.py checks that we keep
# exactly its set plus the rest of the tie).
SPLIT_TIES = {
    ("tied_top", "top_p=0.3,temperature=0.5"): "top-p",
    ("tied_top", "top_h=0.4"): "top-H",
    ("tied_top", "top_h=0.8,temperature=0.7,top_k=50,top_p=0.9"): "top-H",
}
# One more, in float32 only: on `peaked` (one logit at 25, p = 1 − 3e-8) the entropy the warper
# computes is about 3e-7, while float32 resolves log q near q = 1 only to about 6e-8 per term:
# its top-H cut there is decided by rounding (it keeps 24 to 28 tokens per row where the
# float64 warper keeps 21 to 26, as we do). The float64 run of the same case matches.
FLOAT32_NOISE = {("peaked", "top_h=0.4")}


@pytest.mark.parametrize("setting", SETTINGS, ids=_case_id)
@pytest.mark.parametrize("name", sorted(LOGIT_SETS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_matches_transformers_warpers(setting, name, dtype, request):
    case = (name, _case_id(setting))
    if case in SPLIT_TIES:
        stage = SPLIT_TIES[case]
        request.applymarker(
            pytest.mark.xfail(
                strict=True,
                raises=AssertionError,
                reason=f"tie at the {stage} cut: transformers keeps part of 3 tied tokens, we "
                "keep 3",
            )
        )
    if case in FLOAT32_NOISE and dtype == np.float32:
        request.applymarker(
            pytest.mark.xfail(
                strict=True,
                raises=AssertionError,
                reason="float32 entropy of a near-one-hot row is below float32's resolution",
            )
        )
    logits = LOGIT_SETS[name].astype(dtype)
    params = SamplingParams(**setting, order="hf")
    rng = np.random.default_rng(5)
    history = rng.integers(0, logits.shape[1], (logits.shape[0], 40))
    ours = distribution(logits, params, history=history)
    theirs = hf_distribution(logits, params, history)
    assert ours.dtype == dtype
    np.testing.assert_allclose(ours, theirs, atol=1e-6, rtol=0)
    assert ((ours > 0) == (theirs > 0)).all(), "kept sets differ"


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_split_tie_cases_differ_only_by_the_tie(dtype):
    """What the strict xfails above stand for, exactly: on `tied_top` at τ = 0.5, top-p 0.3,
    we keep the three tied maxima (tokens 3, 10, 11) with a third each; transformers keeps one
    of them with all the mass."""
    logits = LOGIT_SETS["tied_top"].astype(dtype)
    params = SamplingParams(top_p=0.3, temperature=0.5, order="hf")
    ours = distribution(logits, params)
    theirs = hf_distribution(logits, params, np.zeros((len(logits), 1), dtype=np.int64))
    for row_ours, row_theirs in zip(ours, theirs, strict=True):
        assert np.flatnonzero(row_ours).tolist() == [3, 10, 11]
        # thirds of float32 weights: the module's 1e-6 (float32 rounding, a few 6e-8)
        np.testing.assert_allclose(row_ours[[3, 10, 11]], 1 / 3, atol=1e-6)
        kept = np.flatnonzero(row_theirs)
        assert len(kept) == 1 and kept[0] in (3, 10, 11) and row_theirs[kept[0]] == 1


def test_typical_keeps_ties_at_the_cut_as_transformers_does():
    """TypicalLogitsWarper cuts on the typicality score (``sorted_scores > score at the cut``
    is removed), so tokens with equal logits, which have equal scores, stay together there.

    p ≈ [0.474, 0.174, 0.174, 0.174, 0.003], H ≈ 1.286; the score |−log p − H| ranks the three
    tied tokens first (0.461 each), then token 0 (0.539). Their running mass 0.174, 0.349 crosses
    typical_p = 0.3 at the second tied token: a cut by position would keep two of the three.
    """
    logits = np.array([[2.0, 1.0, 1.0, 1.0, -3.0]])
    params = SamplingParams(typical_p=0.3)
    theirs = hf_distribution(logits, params, [[0]])[0]
    ours = distribution(logits, params)[0]
    # thirds and zeros from equal logits: exact up to an ulp or two
    np.testing.assert_allclose(theirs, [0, 1 / 3, 1 / 3, 1 / 3, 0], atol=1e-12)
    np.testing.assert_allclose(ours, theirs, atol=1e-12)


def test_top_p_keeps_ties_together_where_transformers_splits_them():
    """Our one deliberate difference: equal logits are kept or dropped together."""
    logits = np.array([[2.0, 1.0, 1.0, 1.0, -3.0]], dtype=np.float32)
    params = SamplingParams(top_p=0.75)
    ours = distribution(logits, params)[0]
    # 2.0 holds 0.58 of the mass; the three tied 1.0 logits cross 0.75 together.
    assert (ours[:4] > 0).all() and ours[4] == 0
    theirs = hf_distribution(logits, params, [[0]])[0]
    assert (theirs[:4] > 0).sum() < 4  # transformers keeps only some of the tied tokens


@pytest.mark.parametrize("keep", [257, 1000])
def test_top_p_keeps_min_tokens_beyond_its_first_head(keep):
    """min_tokens_to_keep above the 256-token head the nucleus search starts from (it once
    kept only 256)."""
    logits = np.random.default_rng(7).normal(0.0, 2.5, 3000).astype(np.float32)
    ours = distribution(logits, SamplingParams(top_p=0.5, min_tokens_to_keep=keep))
    scores = torch.from_numpy(logits[None, :].copy())
    theirs = generation.TopPLogitsWarper(0.5, min_tokens_to_keep=keep)(None, scores)
    expected = torch.softmax(theirs, dim=-1)[0].numpy()
    assert (ours > 0).sum() == (expected > 0).sum() == keep
    np.testing.assert_allclose(ours, expected, atol=1e-6)  # the module's parity tolerance
