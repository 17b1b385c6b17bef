"""llama.cpp's grammar resampling (``grammar_mode``, sampler/engine/resample.py).

The law's oracle is llama.cpp itself, through llama-cpp-python: on real SmolLM2 rows along a
JSON generation, ``q`` is what llama.cpp's own chain (top-k → top-p → temperature, built with
its C API) leaves on the raw logits, ``r`` what it leaves after llama.cpp's own grammar
sampler, and the test combines them as ``common_sampler_sample`` does (a transcription,
below); :func:`sampler.distribution` must give the same law. The draws are checked against
that exact law by a chi-square test; greedy against masked greedy; a row alone against the
same row in a batch; adaptive-p's state against the pass that drew. The page's twin and the
bad input paths: tests/test_grammar_resample_inputs.py.
"""

import ctypes
from pathlib import Path

import numpy as np
import pytest
from conftest import import_llama_cpp_or_skip
from scipy import stats as scipy_stats

from sampler import Sampler, SamplingParams, distribution
from sampler.engine.state import matcher_array

GRAMMAR = 'root ::= "a"'  # switches the stage on; the matchers below decide the mask
GRAMMARS = Path(__file__).parent / "fixtures" / "grammars"


class MaskOf:
    """A matcher that allows a fixed set of tokens whatever it is given."""

    def __init__(self, allowed, size):
        self.mask = np.zeros(size, dtype=bool)
        self.mask[list(allowed)] = True

    def allowed(self):
        return self.mask

    def advance(self, token):
        pass

    def copy(self):
        return self


def _state(matcher, rows=1):
    return {"grammar_matcher": matcher_array([matcher] * rows)}


def _row(size=40, seed=4):
    return np.random.default_rng(seed).normal(0.0, 2.0, size).astype(np.float32)


# --- the law against llama.cpp ----------------------------------------------------------------

# Why 1e-6: both sides compute each pass's kept set exactly alike (checked: the supports must
# be equal) and its probabilities as a softmax of the same float32 logits (llama.cpp divides
# by τ in float32, as the llama.cpp preset does), ours with float32 weights, the oracle's in
# float64: a probability differs by a few float32 roundings, each at most 2**-24 ≈ 6e-8 of it;
# the mixture adds one product and one sum of such numbers. 1e-6 is eight float32 steps at 1,
# and far below the mass of any token one side keeps and the other cuts.
TOLERANCE = 1e-6
TOP_K, TOP_P, TAU = 40, 0.95, 0.8


def _llama_pass(row, grammar, llama):
    """``[V]`` float64: the law llama.cpp's chain top-k → top-p → temperature leaves on
    ``row`` (its ``dist`` sampler's, without the draw), after ``grammar`` when given."""
    from test_llamacpp_samplers import TOKEN_DATA  # imports llama-cpp-python (or skips)

    data = np.zeros(len(row), dtype=TOKEN_DATA)
    data["id"], data["logit"] = np.arange(len(row)), row
    candidates = llama.llama_token_data_array(
        data.ctypes.data_as(ctypes.POINTER(llama.llama_token_data)), len(row), -1, False
    )
    if grammar is not None:
        llama.llama_sampler_apply(grammar, ctypes.byref(candidates))
    chain = llama.llama_sampler_chain_init(llama.llama_sampler_chain_default_params())
    for sampler in (
        llama.llama_sampler_init_top_k(TOP_K),
        llama.llama_sampler_init_top_p(TOP_P, 1),
        llama.llama_sampler_init_temp(TAU),
    ):
        llama.llama_sampler_chain_add(chain, sampler)
    try:
        llama.llama_sampler_apply(chain, ctypes.byref(candidates))
        left = (llama.llama_token_data * candidates.size).from_address(
            ctypes.addressof(candidates.data.contents)
        )
        kept = np.frombuffer(left, dtype=TOKEN_DATA).copy()
    finally:
        llama.llama_sampler_free(chain)
    kept = kept[np.isfinite(kept["logit"])]
    weights = np.exp(kept["logit"].astype(np.float64) - kept["logit"].max())
    law = np.zeros(len(row))
    law[kept["id"]] = weights / weights.sum()
    return law


def _common_sampler_law(q, r, legal):
    """A transcription of ``common_sampler_sample`` (common/sampling.cpp, grammar_first=false)
    as a law: it applies the chain and draws ``id`` from ``q``; ``is_valid`` (the grammar
    sampler on the one-token array) keeps it, with probability ``q(id)`` for each legal
    ``id``; otherwise (probability ``Σ_illegal q``) it resets the logits, applies the grammar
    and the chain, and draws from ``r``."""
    return np.where(legal, q, 0.0) + q[~legal].sum() * r


def test_the_law_is_llama_cpp_s_common_sampler_on_smollm2_rows(gguf):
    from test_constraint_parity import llama_grammar_allows

    from sampler.engine.constraints.matcher import RowConstraint, constraint_vocabulary

    llama = import_llama_cpp_or_skip()
    pytest.importorskip("llguidance")
    text = (GRAMMARS / "json.gbnf").read_text(encoding="utf-8")
    vocab = llama.llama_model_get_vocab(gguf.model)
    grammar = llama.llama_sampler_init_grammar(vocab, text.encode(), b"root")
    ours = RowConstraint(constraint_vocabulary(gguf), "gbnf", text)
    params = SamplingParams(
        grammar=text, order="llama.cpp", top_k=TOP_K, top_p=TOP_P, temperature=TAU
    )
    assert params.resamples  # the llama.cpp preset's default
    context = list(gguf.encode("Describe a cat as a JSON object.", chat=True))
    logits, session = gguf.start([context])
    compared, apart = 0, []
    try:
        for _ in range(24):
            row = logits[0].astype(np.float32)
            legal = llama_grammar_allows(grammar, gguf.vocab_size)
            if not np.array_equal(legal, ours.allowed()):
                apart.append(compared)  # only where the grammar may end (end tokens differ)
            else:
                q, r = _llama_pass(row, None, llama), _llama_pass(row, grammar, llama)
                expected = _common_sampler_law(q, r, legal)
                got = distribution(row, params, state=_state(ours.copy()))
                assert np.array_equal(got > 0, expected > 0), compared
                assert np.abs(got - expected).max() <= TOLERANCE, compared
                compared += 1
            token = int(np.argmax(np.where(legal, row, -np.inf)))  # the masked greedy path
            llama.llama_sampler_accept(grammar, token)
            ours.advance(token)
            logits = session.advance(np.array([token]))
    finally:
        llama.llama_sampler_free(grammar)
    assert compared >= 20 and len(apart) <= 4, (compared, apart)


# --- the draws against the law ----------------------------------------------------------------


def test_the_draws_follow_the_mixture_law_and_resample_at_the_rejected_mass():
    row = _row()
    legal = np.argsort(-row)[[1, 3, 4, 6, 10, 15]]  # the top token illegal, much of the head
    params = SamplingParams(
        grammar=GRAMMAR, order="llama.cpp", top_k=8, temperature=0.9, seed=11,
        xtc_probability=0.5, xtc_threshold=0.1,
    )
    matcher = MaskOf(legal, len(row))
    law = distribution(row, params, state=_state(matcher))
    draws = 40_000  # one step of a batch of independent rows (own streams: row keys)
    sampler = Sampler([params] * draws, row_keys=[(i,) for i in range(draws)],
                      state=_state(matcher, draws))
    tokens, stats = sampler.step(np.tile(row, (draws, 1)))
    counts = np.bincount(tokens, minlength=len(row))
    support = law > 0
    assert not counts[~support].any()
    # chi-square at a false-alarm rate of 1e-3 (fixed seed: one outcome, always the same)
    chi = scipy_stats.chisquare(counts[support], law[support] * draws / law[support].sum())
    assert chi.pvalue > 1e-3, chi
    # the resampled share against the exact rejected mass Σ_illegal q (q: the chain without
    # the mask, as the mask mode's chain with the grammar off gives it); 4.5σ: false alarm ~7e-6
    q = distribution(row, SamplingParams(**{**_fields(params), "grammar": ""}))
    rejected = q[~matcher.mask].sum()
    share = stats.grammar_resampled.mean()
    assert abs(share - rejected) <= 4.5 * np.sqrt(rejected * (1 - rejected) / draws)
    assert 0.2 < rejected < 0.8  # both passes matter on this row: the check is not void


def _fields(params):
    return {name: getattr(params, name) for name in params.__dataclass_fields__}


def test_the_mixture_differs_from_masking_first_when_the_chain_truncates():
    row = _row()
    legal = np.argsort(-row)[[1, 3, 4, 6, 10, 15]]
    state = _state(MaskOf(legal, len(row)))
    resample = SamplingParams(grammar=GRAMMAR, order="llama.cpp", top_k=3, seed=1)
    mask = SamplingParams(**{**_fields(resample), "grammar_mode": "mask"})
    assert resample.resamples and not mask.resamples
    # top-k 3 after the mask keeps ranks 1, 3, 4; before it, rank 1 is drawn in the first
    # pass with its top-k-3 probability: the laws differ
    assert np.abs(distribution(row, resample, state=state)
                  - distribution(row, mask, state=state)).max() > 0.01
    # temperature alone only reweights: resampling is rejection sampling, the same law
    plain = SamplingParams(grammar=GRAMMAR, order="llama.cpp", temperature=0.7)
    plain_mask = SamplingParams(**{**_fields(plain), "grammar_mode": "mask"})
    np.testing.assert_allclose(
        distribution(row, plain, state=state), distribution(row, plain_mask, state=state),
        atol=1e-7,
    )


def test_greedy_resampling_is_masked_greedy():
    # The first pass takes the argmax; legal, it is also the best legal token (nothing above
    # it); illegal, the second pass takes the best legal token: masked greedy either way.
    rng = np.random.default_rng(2)
    for trial in range(50):
        row = rng.normal(0, 1, 30).astype(np.float32)
        row[rng.integers(0, 30, 3)] = row.max()  # ties at the top: lowest id wins on each side
        matcher = MaskOf(rng.choice(30, 7, replace=False), 30)
        tokens = {}
        for mode in ("resample", "mask"):
            params = SamplingParams(
                grammar=GRAMMAR, temperature=0, top_k=5, order="llama.cpp", grammar_mode=mode
            )
            tokens[mode] = Sampler([params], state=_state(matcher)).step(row[None])[0][0]
        assert tokens["resample"] == tokens["mask"], trial


def test_a_resampling_row_draws_the_same_alone_and_in_any_batch():
    row = _row()
    matcher = MaskOf(np.argsort(-row)[[1, 2, 5, 9]], len(row))
    resampling = SamplingParams(grammar=GRAMMAR, order="llama.cpp", top_k=6, seed=5,
                                xtc_probability=0.5, xtc_threshold=0.1)
    others = [SamplingParams(seed=1), SamplingParams(grammar=GRAMMAR, order="vllm", seed=2)]
    alone = Sampler([resampling], state=_state(matcher))
    batch = Sampler([others[0], resampling, others[1]], state=_state(matcher, 3))
    for _ in range(30):
        mine = alone.step(row[None])[0][0]
        assert batch.step(np.tile(row, (3, 1)))[0][1] == mine


def test_adaptive_p_takes_the_prior_of_the_pass_that_drew():
    # top-k 1 keeps the argmax, illegal here: every step resamples, and adaptive-p's average
    # takes the token's probability in the second pass (llama.cpp: adaptive_p_apply stores the
    # pending token of the last pass, adaptive_p_accept takes it)
    row = _row()
    matcher = MaskOf(np.argsort(-row)[[1, 2, 3]], len(row))
    params = SamplingParams(
        grammar=GRAMMAR, order="llama.cpp", top_k=1, adaptive_target=0.3, seed=3
    )
    sampler = Sampler([params], state=_state(matcher))
    before = sampler.state
    tokens, stats = sampler.step(row[None])
    assert stats.grammar_resampled[0] == 1
    # what adaptive-p receives in the second pass: the masked chain, adaptive-p off
    received = distribution(
        row, SamplingParams(grammar=GRAMMAR, order="llama.cpp", top_k=1, grammar_mode="mask"),
        state=_state(matcher),
    )
    expected = received[tokens[0]] + 0.9 * before["adaptive_p_sum"][0]
    assert sampler.state["adaptive_p_sum"][0] == pytest.approx(expected, rel=1e-6)
