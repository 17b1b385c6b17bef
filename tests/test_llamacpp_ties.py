"""The llama.cpp preset at ties, at exact thresholds and with masked (``-inf``) candidates,
with llama.cpp's own samplers (llama-cpp-python) as the oracle.

Each case builds a ``llama_token_data_array`` of a crafted row (every token present, masked
ones at ``-inf``, as the project's llama.cpp backend hands llama.cpp a whole row), applies one
llama.cpp sampler, and compares what it keeps with ``sampler.distribution(...,
order="llama.cpp")``. The rows are made of tied logits, so their probabilities are exact in
float32 (``expf(0) = 1`` over an integer count: 1/4, 1/8, ...) and a threshold can sit exactly
on them. Where llama.cpp's unstable sort chooses among tied tokens, the COUNT it keeps and the
probabilities are compared (sorted); which tokens is llama.cpp's unspecified order, ours the
lowest ids (asserted separately, as our documented choice).

Tolerance: 1e-6 on probabilities, a few float32 ulps (ε32 = 1.2e-7) of llama.cpp's float32
softmax against our float64 one; kept counts and kept sets exactly.
"""


import numpy as np
import pytest
from conftest import import_llama_cpp_or_skip
from test_llamacpp_samplers import llama_apply

from sampler import SamplingParams, distribution
from sampler.engine.presets import PRESETS

llama = import_llama_cpp_or_skip()

PROBABILITY_TOLERANCE = 1e-6
NEG = -np.inf


def llama_kept(row, samplers):
    """Apply llama.cpp's ``samplers`` (a list of ``llama_sampler_init_*`` results) in a chain
    to ``row``; return the ids of the finite candidates it leaves and their probabilities
    (softmax of their logits, float64)."""
    finite, probs = llama_apply(row, samplers)
    return finite["id"], probs


def ours_kept(row, **settings):
    probs = distribution(np.asarray(row, dtype=np.float32), SamplingParams(**settings))
    kept = np.flatnonzero(probs > 0)
    return kept, probs[kept]


def assert_same_count_and_probs(theirs, ours):
    (their_ids, their_p), (our_ids, our_p) = theirs, ours
    assert len(our_ids) == len(their_ids)
    assert np.abs(np.sort(our_p) - np.sort(their_p)).max() <= PROBABILITY_TOLERANCE


# Rows: four tokens tied at the top (1/4 each over those four, exact), then a tie of three,
# masked tokens among them (-inf entries that stay in llama.cpp's array).
TIES = np.array([0.0, 0.0, 0.0, 0.0, -1.0, -1.0, -1.0, -3.0], dtype=np.float32)
TIES_MASKED = np.array([0.0, NEG, 0.0, 0.0, NEG, -1.0, 0.0, -1.0, NEG, -1.0], dtype=np.float32)
FLAT4 = np.array([0.0, 0.0, 0.0, 0.0, NEG, NEG], dtype=np.float32)  # p = 1/4 exactly
FLAT8 = np.zeros(8, dtype=np.float32)  # p = 1/8 exactly

CASES = {
    # top-k: exactly k, ties at the k-th broken by sort order; k beyond the finite tokens keeps
    # -inf entries (probability 0); no min_keep.
    "top-k inside a tie": (TIES, {"top_k": 2}, lambda: [llama.llama_sampler_init_top_k(2)]),
    "top-k 5 on a tie of 3": (TIES, {"top_k": 5}, lambda: [llama.llama_sampler_init_top_k(5)]),
    "top-k masked": (TIES_MASKED, {"top_k": 6}, lambda: [llama.llama_sampler_init_top_k(6)]),
    "top-k beyond the finite": (FLAT4, {"top_k": 5}, lambda: [llama.llama_sampler_init_top_k(5)]),
    "top-k ignores min_keep": (
        TIES,
        {"top_k": 2, "min_tokens_to_keep": 4},
        lambda: [llama.llama_sampler_init_top_k(2)],
    ),
    # top-p: the running sum reaches p exactly at the 2nd of four 1/4s (0.5 >= 0.5)
    "top-p exactly at p": (FLAT4, {"top_p": 0.5}, lambda: [llama.llama_sampler_init_top_p(0.5, 1)]),
    "top-p inside a tie": (FLAT8, {"top_p": 0.3}, lambda: [llama.llama_sampler_init_top_p(0.3, 1)]),
    "top-p min_keep": (
        FLAT8,
        {"top_p": 0.3, "min_tokens_to_keep": 5},
        lambda: [llama.llama_sampler_init_top_p(0.3, 5)],
    ),
    "top-p masked": (TIES_MASKED, {"top_p": 0.6}, lambda: [llama.llama_sampler_init_top_p(0.6, 1)]),
    # min-p: e^-1 against min_p = e^-1 rounded to float32 (the floor max + logf(p) in float32)
    "min-p exactly at the floor": (
        TIES,
        {"min_p": float(np.float32(np.exp(np.float32(-1.0))))},
        lambda: [llama.llama_sampler_init_min_p(float(np.float32(np.exp(np.float32(-1.0)))), 1)],
    ),
    "min-p min_keep inside a tie": (
        TIES,
        {"min_p": 0.9, "min_tokens_to_keep": 6},
        lambda: [llama.llama_sampler_init_min_p(0.9, 6)],
    ),
    "min-p masked": (
        TIES_MASKED,
        {"min_p": 0.5, "min_tokens_to_keep": 2},
        lambda: [llama.llama_sampler_init_min_p(0.5, 2)],
    ),
    # XTC (probability 1: always fires): p = 1/4 exactly at threshold 0.25 reaches it; four
    # tokens reach, llama.cpp removes three and keeps one of the tied four.
    "xtc threshold exactly p": (
        FLAT8[:4],
        {"xtc_probability": 1.0, "xtc_threshold": 0.25},
        lambda: [llama.llama_sampler_init_xtc(1.0, 0.25, 1, 7)],
    ),
    "xtc tie at the least likely reaching": (
        np.array([2.0, 0.0, 0.0, 0.0, -4.0], dtype=np.float32),
        {"xtc_probability": 1.0, "xtc_threshold": 0.05},
        lambda: [llama.llama_sampler_init_xtc(1.0, 0.05, 1, 7)],
    ),
    "xtc masked": (
        TIES_MASKED,
        {"xtc_probability": 1.0, "xtc_threshold": 0.1},
        lambda: [llama.llama_sampler_init_xtc(1.0, 0.1, 1, 7)],
    ),
    "xtc min_keep blocks": (
        FLAT8[:4],
        {"xtc_probability": 1.0, "xtc_threshold": 0.25, "min_tokens_to_keep": 2},
        lambda: [llama.llama_sampler_init_xtc(1.0, 0.25, 2, 7)],
    ),
    # top-n-σ: mean and σ over the finite logits only ([0,0,0,0,-1,-1,-1,-3]: exact floats)
    "top-n-sigma masked": (
        TIES_MASKED,
        {"top_n_sigma": 1.0},
        lambda: [llama.llama_sampler_init_top_n_sigma(1.0)],
    ),
    # chains: top-n-σ leaves -inf entries in the array, then top-k / top-p / min-p count them
    "top-n-sigma then top-k": (
        TIES,
        {"top_n_sigma": 0.5, "top_k": 6},
        lambda: [llama.llama_sampler_init_top_n_sigma(0.5), llama.llama_sampler_init_top_k(6)],
    ),
    "top-k then top-p": (
        TIES,
        {"top_k": 6, "top_p": 0.2},
        lambda: [llama.llama_sampler_init_top_k(6), llama.llama_sampler_init_top_p(0.2, 1)],
    ),
    # transformers' own top-p example: 0.5 + 0.3 at p = 0.8, in float32
    "top-p 0.5+0.3 at 0.8": (
        np.log(np.array([0.5, 0.3, 0.2], dtype=np.float32)),
        {"top_p": 0.8},
        lambda: [llama.llama_sampler_init_top_p(0.8, 1)],
    ),
    # typical: tied scores at the cut (llama.cpp keeps 3 of the 4 tied tokens here), and the
    # mass exactly at p (llama.cpp needs it strictly above: 1/2 + 1/4 = 0.75 is not enough)
    "typical inside a tie": (
        TIES,
        {"typical_p": 0.5},
        lambda: [llama.llama_sampler_init_typical(0.5, 1)],
    ),
    "typical mass exactly p": (
        np.log(np.array([0.5, 0.25, 0.125, 0.125], dtype=np.float32)),
        {"typical_p": 0.75},
        lambda: [llama.llama_sampler_init_typical(0.75, 1)],
    ),
    "typical min_keep": (
        TIES,
        {"typical_p": 0.1, "min_tokens_to_keep": 6},
        lambda: [llama.llama_sampler_init_typical(0.1, 6)],
    ),
    # XTC's min_keep counts llama.cpp's array, -inf entries included: 10 entries, 4 reach
    # 0.1, 3 are removed, 7 entries stay (4 finite) >= min_keep 6, so it cuts.
    "xtc min_keep counts -inf entries": (
        TIES_MASKED,
        {"xtc_probability": 1.0, "xtc_threshold": 0.1, "min_tokens_to_keep": 6},
        lambda: [llama.llama_sampler_init_xtc(1.0, 0.1, 6, 7)],
    ),
    # dynamic temperature: N = llama.cpp's array size, -inf entries included
    "dynatemp masked": (
        TIES_MASKED,
        {"temperature": 1.0, "dynatemp_range": 0.5},
        lambda: [llama.llama_sampler_init_temp_ext(1.0, 0.5, 1.0)],
    ),
    "top-k beyond the finite, then dynatemp": (
        [*FLAT4[:4].tolist(), -2.0, NEG, NEG, NEG],
        {"top_k": 6, "temperature": 1.5, "dynatemp_range": 1.0},
        lambda: [
            llama.llama_sampler_init_top_k(6),
            llama.llama_sampler_init_temp_ext(1.5, 1.0, 1.0),
        ],
    ),
    "top-n-sigma, then dynatemp": (
        TIES,
        {"top_n_sigma": 0.5, "temperature": 1.0, "dynatemp_range": 0.8},
        lambda: [
            llama.llama_sampler_init_top_n_sigma(0.5),
            llama.llama_sampler_init_temp_ext(1.0, 0.8, 1.0),
        ],
    ),
    "top-p, then dynatemp": (
        TIES_MASKED,
        {"top_p": 0.9, "temperature": 1.0, "dynatemp_range": 0.8},
        lambda: [
            llama.llama_sampler_init_top_p(0.9, 1),
            llama.llama_sampler_init_temp_ext(1.0, 0.8, 1.0),
        ],
    ),
    # mirostat (first step, μ = 2τ): v2 at -log2 p = μ exactly keeps (llama.cpp drops > μ);
    # below the top tie it keeps one token; v1 keeps exactly k inside a tie
    "mirostat v2 exactly mu": (
        FLAT4,
        {"mirostat": 2, "mirostat_tau": 1.0, "mirostat_eta": 0.1},
        lambda: [llama.llama_sampler_init_mirostat_v2(7, 1.0, 0.1)],
    ),
    "mirostat v2 below the top tie": (
        FLAT4,
        {"mirostat": 2, "mirostat_tau": 0.9, "mirostat_eta": 0.1},
        lambda: [llama.llama_sampler_init_mirostat_v2(7, 0.9, 0.1)],
    ),
    "mirostat v1 inside a tie": (
        np.repeat(np.float32([0.0, -0.5, -1.0, -2.0, -4.0]), 4),
        {"mirostat": 1, "mirostat_tau": 3.0, "mirostat_eta": 0.1},
        lambda: [llama.llama_sampler_init_mirostat(20, 7, 3.0, 0.1, 100)],
    ),
}


@pytest.mark.parametrize("case", CASES)
def test_llama_cpp_preset_keeps_llama_cpps_count(case):
    row, settings, samplers = CASES[case]
    theirs = llama_kept(row, samplers())
    ours = ours_kept(row, order="llama.cpp", **settings)
    assert_same_count_and_probs(theirs, ours)


def test_an_order_equal_to_the_preset_takes_its_tie_rule():
    """The rule belongs to the preset: an explicit list equal to it ranks ties, any other
    list (here the llama.cpp stages with top-p and min-p swapped) keeps them together."""
    stages = list(PRESETS["llama.cpp"])
    assert len(ours_kept(TIES, order=stages, top_k=2)[0]) == 2
    top_p, min_p = stages.index("top_p"), stages.index("min_p")
    stages[top_p], stages[min_p] = stages[min_p], stages[top_p]
    assert len(ours_kept(TIES, order=stages, top_k=2)[0]) == 4


def test_ranked_ties_keep_the_lowest_ids():
    """Our documented choice where llama.cpp's sort leaves the order unspecified: among tied
    tokens the lowest ids rank first (so XTC keeps the highest id of the least likely tie)."""
    assert ours_kept(TIES, order="llama.cpp", top_k=2)[0].tolist() == [0, 1]
    assert ours_kept(TIES, order="llama.cpp", top_k=6)[0].tolist() == [0, 1, 2, 3, 4, 5]
    xtc = {"xtc_probability": 1.0, "xtc_threshold": 0.25}
    assert ours_kept(FLAT8[:4], order="llama.cpp", **xtc)[0].tolist() == [3]


OTHER_PRESETS = ["hf", "vllm", "webui"]
TOGETHER = {
    # setting, the row, and how many tokens a tie-keeping cut keeps
    "top-k": ({"top_k": 2}, TIES, 4),
    "top-p": ({"top_p": 0.5}, FLAT4, 4),
    "min-p min_keep": ({"min_p": 0.9, "min_tokens_to_keep": 6}, TIES, 7),
}


@pytest.mark.parametrize("preset", OTHER_PRESETS)
@pytest.mark.parametrize("stage", TOGETHER)
def test_other_presets_keep_ties_together(preset, stage):
    settings, row, together = TOGETHER[stage]
    assert len(ours_kept(row, order=preset, **settings)[0]) == together
    assert len(ours_kept(row, order="llama.cpp", **settings)[0]) < together


def test_webui_xtc_keeps_the_tie_at_the_least_likely_reaching_token():
    xtc = {"xtc_probability": 1.0, "xtc_threshold": 0.25}
    assert len(ours_kept(FLAT8[:4], order="webui", **xtc)[0]) == 4
    assert len(ours_kept(FLAT8[:4], order="llama.cpp", **xtc)[0]) == 1


def test_other_presets_mirostat_keeps_ties_together():
    settings = {"mirostat": 2, "mirostat_tau": 0.9, "mirostat_eta": 0.1}
    assert len(ours_kept(FLAT4, order="hf", **settings)[0]) == 4
    assert len(ours_kept(FLAT4, order="llama.cpp", **settings)[0]) == 1
