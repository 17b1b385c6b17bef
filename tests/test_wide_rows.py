"""Full-vocabulary rows (49,152 and 151,936 tokens), where the engine takes its fast paths:
the top-k head found from block maxima, statistics computed row by row, a batch split across
cores. Oracles: transformers' TopKLogitsWarper, scipy, and the same rows run on one core."""

import numpy as np
import pytest
import scipy.special
import scipy.stats
from test_step_stats import U32, float32_nats

from sampler import Sampler, SamplingParams, distribution
from sampler.engine import parallel

torch = pytest.importorskip("torch")
generation = pytest.importorskip("transformers.generation.logits_process")


def _wide_rows(vocab: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(151)
    normal = rng.normal(0, 3, (3, vocab)).astype(np.float32)
    quantized = np.round(rng.normal(0, 3, (3, vocab)) * 2) / 2  # many ties at every value
    tied_at_cut = rng.normal(0, 1, (2, vocab))
    tied_at_cut[:, rng.choice(vocab, 80, replace=False)] = 9.0  # 80 tokens tie at the top
    masked = rng.normal(0, 2, (2, vocab))
    masked[0, : vocab - 30] = -np.inf  # only 30 tokens allowed: fewer than k
    masked[1, ::2] = -np.inf
    flat = np.zeros((1, vocab))
    one_block = rng.normal(0, 1, (1, vocab))
    one_block[0, 1000:1100] += 20  # the whole head inside one block
    return {
        "normal": normal,
        "quantized": quantized.astype(np.float32),
        "tied_at_cut": tied_at_cut.astype(np.float32),
        "masked": masked.astype(np.float32),
        "flat": flat.astype(np.float32),
        "one_block": one_block.astype(np.float32),
    }


@pytest.mark.parametrize("vocab", [49_152, 151_936])
@pytest.mark.parametrize("k", [1, 50, 700])
def test_top_k_on_full_vocabularies_matches_transformers(vocab, k):
    for name, logits in _wide_rows(vocab).items():
        warped = generation.TopKLogitsWarper(k)(None, torch.from_numpy(logits.copy()))
        expected = torch.softmax(warped, dim=-1).numpy()
        got = distribution(logits, SamplingParams(top_k=k))
        # float32 on both sides: x - max rounds by ≤ u|x - max| (≤ 2u max|x|), exp and the
        # division by u each, a sum over the k kept weights by ≤ (k - 1) u; the same again there
        finite = logits[np.isfinite(logits)]
        rtol = 2 * (k + 2 + 2 * float(np.abs(finite).max())) * U32
        np.testing.assert_allclose(got, expected, rtol=rtol, atol=0, err_msg=f"{name}, k={k}")
        kept = (got > 0).sum(axis=1)
        assert (kept == (expected > 0).sum(axis=1)).all(), name


def test_a_batch_split_across_cores_draws_and_measures_exactly_as_one_core(monkeypatch):
    rows = _wide_rows(151_936)
    eight = np.concatenate([rows["normal"], rows["quantized"], rows["tied_at_cut"]])
    logits = np.concatenate([eight, eight[::-1], eight])  # 24 rows: enough for 3 slices
    params = [
        SamplingParams(temperature=0.8, top_k=50, top_p=0.9, min_p=0.02, seed=row)
        if row % 2
        else SamplingParams(temperature=1.3, seed=row)
        for row in range(len(logits))
    ]
    results = {}
    for cores in (1, 2, 3):
        monkeypatch.setattr(parallel, "cores", lambda cores=cores: cores)
        assert len(parallel.slices(np.arange(len(logits)), logits.shape[1])) == cores
        sampler = Sampler(params)
        results[cores] = [sampler.step(logits) for _ in range(3)]
    for cores in (2, 3):
        for (tokens, stats), (tokens_one, stats_one) in zip(
            results[cores], results[1], strict=True
        ):
            np.testing.assert_array_equal(tokens, tokens_one)
            for field in stats.__dataclass_fields__:
                np.testing.assert_array_equal(getattr(stats, field), getattr(stats_one, field))


@pytest.mark.parametrize("setting", [{"temperature": 0.7}, {"temperature": 0.7, "top_k": 40}])
def test_statistics_of_full_vocabulary_rows_match_scipy(setting):
    logits = _wide_rows(151_936)["normal"]
    sampler = Sampler(SamplingParams(**setting, seed=3))
    tokens, stats = sampler.step(logits)
    wide = logits.astype(np.float64)
    base = scipy.special.softmax(wide, axis=1)
    tempered = scipy.special.softmax(wide / setting["temperature"], axis=1)
    final = distribution(logits, SamplingParams(**setting)).astype(np.float64)
    final /= final.sum(axis=1, keepdims=True)
    rows = np.arange(len(logits))
    # float32 logits: entropies are float32 weights summed in float64 (float32_nats' bound)
    np.testing.assert_allclose(
        stats.entropy_base, scipy.stats.entropy(base, axis=1), atol=float32_nats(base))
    np.testing.assert_allclose(
        stats.entropy_temp, scipy.stats.entropy(tempered, axis=1), atol=float32_nats(tempered))
    np.testing.assert_allclose(
        stats.entropy_final, scipy.stats.entropy(final, axis=1), atol=float32_nats(final))
    # -log p = log Z - y: y's float32 rounding (2u|y|, |y| ≤ -log p) and log Z's (a few u)
    surprisal = -np.log(base[rows, tokens])
    surprisal_bound = 4 * U32 * (1 + surprisal.max())
    np.testing.assert_allclose(stats.surprisal_base, surprisal, atol=surprisal_bound)
    np.testing.assert_allclose(
        stats.kl_final_base, scipy.stats.entropy(final, base, axis=1),
        atol=float32_nats(final, base),
    )
    # each weight off by ≤ 2u|y| relative, |y| ≤ |log p|: the kept mass by ≤ 2u (1 + H(base))
    mass_bound = 2 * U32 * (1 + scipy.stats.entropy(base, axis=1).max())
    np.testing.assert_allclose(
        stats.kept_mass, np.where(final > 0, base, 0).sum(axis=1), atol=mass_bound)
    assert (stats.kept_tokens == (final > 0).sum(axis=1)).all()
    assert (stats.base_argmax == logits.argmax(axis=1)).all()


def test_statistics_keep_seven_digits_when_one_token_holds_almost_all_the_mass():
    # The tail holds about 1e-9 of the mass: a float32 sum of all weights would round it away.
    rng = np.random.default_rng(9)
    logits = rng.normal(0, 1, (2, 151_936)).astype(np.float32)
    logits[:, 4242] = 33.0
    _, stats = Sampler(SamplingParams(temperature=0.9, seed=1)).step(logits)
    wide = logits.astype(np.float64)
    for got, tau in ((stats.entropy_base, 1.0), (stats.entropy_temp, 0.9)):
        probs = scipy.special.softmax(wide / tau, axis=1)
        expected = scipy.stats.entropy(probs, axis=1)
        assert (expected < 1e-6).all() and (expected > 1e-9).all()
        # the tail's float32 weights are off by ≤ 2u|y| relative (|y| ≤ max|x - 33| / τ), and
        # so are their p log p terms, summed in float64: relative to the tiny entropy itself
        spread = float(np.abs(wide - 33.0).max()) / tau
        np.testing.assert_allclose(got, expected, rtol=2 * U32 * (2 * spread + 4))
