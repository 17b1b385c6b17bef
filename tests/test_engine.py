"""The engine: per-row streams, modes, statistics against closed forms, and bad input."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sampler import InvalidInputError, Sampler, SamplingParams, distribution


def _logits(batch: int, vocab: int, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal((batch, vocab)) * 3).astype(np.float32)


def _run(sampler: Sampler, logits_per_step: list[np.ndarray]) -> np.ndarray:
    return np.stack([sampler.step(logits)[0] for logits in logits_per_step], axis=1)


def test_row_with_seed_7_draws_the_same_alone_and_in_a_batch_of_16_others():
    vocab, steps = 5000, 12
    ours = SamplingParams(temperature=0.9, top_k=40, top_p=0.9, seed=7)
    # Neighbours with other chains: some force the batch dense, some compact, some greedy.
    others = [
        SamplingParams(temperature=1.3, seed=100 + i)
        if i % 3 == 0
        else SamplingParams(temperature=0.0)
        if i % 3 == 1
        else SamplingParams(top_k=5 + i, min_p=0.05, seed=200 + i, order="vllm")
        for i in range(16)
    ]
    logits = [_logits(17, vocab, seed=step) for step in range(steps)]
    alone = _run(Sampler([ours]), [x[8:9] for x in logits])[0]
    mixed = [*others[:8], ours, *others[8:]]
    in_batch = _run(Sampler(mixed), logits)[8]
    np.testing.assert_array_equal(alone, in_batch)
    # And when the batch is shuffled, the row follows its own stream.
    order = np.random.default_rng(3).permutation(17)
    shuffled = _run(Sampler([mixed[i] for i in order]), [x[order] for x in logits])
    np.testing.assert_array_equal(shuffled[int(np.nonzero(order == 8)[0][0])], alone)


def test_same_seed_same_tokens_and_other_seed_other_tokens():
    logits = [_logits(1, 1000, seed=s) for s in range(40)]
    first = _run(Sampler([SamplingParams(seed=11)]), logits)
    again = _run(Sampler([SamplingParams(seed=11)]), logits)
    other = _run(Sampler([SamplingParams(seed=12)]), logits)
    np.testing.assert_array_equal(first, again)
    assert (first != other).any()


def test_one_params_for_a_batch_gives_each_row_its_own_stream():
    logits = np.zeros((4, 50), dtype=np.float32)  # uniform: rows differ only by their streams
    tokens = _run(Sampler(SamplingParams(seed=1)), [logits] * 20)
    assert len({tuple(row) for row in tokens}) == 4


def test_greedy_takes_the_lowest_index_among_tied_maxima():
    logits = np.array([[1.0, 5.0, 2.0, 5.0]])
    for params in (SamplingParams(temperature=0), SamplingParams(mode="greedy", top_p=0.5)):
        tokens, stats = Sampler([params]).step(logits)
        assert tokens.tolist() == [1]
        assert stats.entropy_final[0] == 0 and stats.kept_tokens[0] == 1
        np.testing.assert_array_equal(distribution(logits, params), [[0, 1, 0, 0]])


def test_hardmax_splits_ties_evenly():
    logits = np.array([1.0, 5.0, 2.0, 5.0])
    probs = distribution(logits, SamplingParams(mode="hardmax"))
    np.testing.assert_array_equal(probs, [0, 0.5, 0, 0.5])
    _, stats = Sampler([SamplingParams(mode="hardmax", seed=0)]).step(logits)
    # two halves: float rounding of log 2 only; approx's default 1e-6 absorbs it
    assert stats.entropy_final[0] == pytest.approx(np.log(2))


# The presets of docs/engine.md's "Chain order and the peers" table, transcribed (only the stages
# the closed-form cases use) rather than read from sampler.engine.stages: an independent oracle.
def test_inputs_are_never_modified():
    raw = _logits(3, 500)
    raw.setflags(write=False)
    history = [np.arange(10)] * 3
    params = SamplingParams(
        temperature=0.7, top_k=50, top_p=0.9, repetition_penalty=1.2, logit_bias={3: 5.0}, seed=0
    )
    before = raw.copy()
    distribution(raw, params, history=history)
    Sampler(params).step(raw, history=history)
    np.testing.assert_array_equal(raw, before)


@st.composite
def chains(draw):
    return (
        SamplingParams(
            temperature=draw(st.sampled_from([0.0, 0.05, 0.7, 1.0, 3.0])),
            top_k=draw(st.sampled_from([0, 1, 2, 10])),
            top_p=draw(st.sampled_from([1.0, 0.01, 0.5, 0.95])),
            min_p=draw(st.sampled_from([0.0, 0.1, 0.9, 1.0])),
            typical_p=draw(st.sampled_from([1.0, 0.01, 0.5])),
            epsilon=draw(st.sampled_from([0.0, 0.3, 0.9])),
            eta=draw(st.sampled_from([0.0, 0.5])),
            order=draw(
                st.sampled_from(
                    [
                        "hf",
                        ["temperature", "min_p", "top_k", "top_p", "typical_p", "epsilon", "eta"],
                    ]
                )
            ),
            min_tokens_to_keep=draw(st.sampled_from([1, 3])),
        )
        if not draw(st.booleans())
        else SamplingParams(
            temperature=draw(st.sampled_from([0.0, 0.7, 2.0])),
            top_n_sigma=draw(st.sampled_from([0.0, 0.01, 1.0])),
            top_k=draw(st.sampled_from([0, 1, 3])),
            typical_p=draw(st.sampled_from([1.0, 0.2])),
            top_p=draw(st.sampled_from([1.0, 0.3])),
            min_p=draw(st.sampled_from([0.0, 0.5])),
            order="llama.cpp",
        )
    )


@given(chains(), st.integers(0, 2**32 - 1), st.sampled_from([1, 7, 300]))
def test_every_chain_keeps_a_token_and_gives_a_distribution(params, seed, vocab):
    rng = np.random.default_rng(seed)
    raw = np.round(rng.normal(0, 2, (3, vocab)), 1)  # rounding makes ties common
    raw[1, rng.integers(0, vocab, vocab // 2)] = -np.inf
    raw[1, 0] = 0.0
    probs = distribution(raw, params)
    assert (probs >= 0).all()
    # float64 logits, ≤ vocab terms summed: ≤ vocab · u ≈ 1e-13 for these sizes
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-9)
    assert (probs[np.isneginf(raw)] == 0).all()
    tokens, _ = Sampler(params).step(raw)
    assert (probs[np.arange(3), tokens] > 0).all()


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: Sampler([SamplingParams()]).step([[1.0, np.nan]]), r"logits\[0, 1\] is nan"),
        (
            lambda: Sampler([SamplingParams()] * 2).step([[1.0, 2.0], [np.inf, 0.0]]),
            r"logits\[1, 0\] is \+inf",
        ),
        (lambda: distribution(np.zeros((2, 2, 2)), SamplingParams()), r"shape \(2, 2, 2\)"),
        (lambda: distribution(np.zeros((2, 0)), SamplingParams()), "empty"),
        (
            lambda: distribution(np.zeros((3, 4)), [SamplingParams()] * 2),
            "2 SamplingParams for a batch of 3",
        ),
        (
            lambda: distribution(np.zeros((2, 4)), SamplingParams(), history=[[1]]),
            "history has 1 rows for a batch of 2",
        ),
        (
            lambda: distribution(np.zeros((1, 4)), SamplingParams(), history=[[1, 9]]),
            "history\\[0\\] holds token 9, outside the vocabulary 0..3",
        ),
        (
            lambda: distribution(np.zeros((1, 4)), SamplingParams(), history=[[0.5]]),
            "integer token ids",
        ),
        (
            lambda: distribution(np.zeros(4), SamplingParams(logit_bias={7: 1.0})),
            "logit_bias token 7 is outside the vocabulary",
        ),
        (lambda: distribution(np.full(3, -np.inf), SamplingParams()), "row 0 is -inf"),
    ],
)
def test_bad_input_raises_one_clear_line(call, message):
    with pytest.raises(InvalidInputError, match=message) as error:
        call()
    assert "\n" not in str(error.value)


def test_batch_size_must_stay_the_same_between_steps():
    sampler = Sampler([SamplingParams(seed=0)] * 2)
    sampler.step(np.zeros((2, 5)))
    with pytest.raises(InvalidInputError, match="logits have 3 rows but the sampler has 2"):
        sampler.step(np.zeros((3, 5)))


@pytest.mark.parametrize(
    ("field", "value", "allowed"),
    [
        ("temperature", -0.1, ">= 0"),
        ("temperature", float("nan"), "nan"),
        ("top_k", -2, "-1, 0 \\(off\\)"),
        ("top_k", 2.5, "positive integer"),
        ("top_p", 0.0, "0 < top_p <= 1"),
        ("top_p", 1.01, "0 < top_p <= 1"),
        ("min_p", 1.5, "0 <= min_p <= 1"),
        ("typical_p", 0.0, "0 < typical_p <= 1"),
        ("epsilon", 1.0, "0 <= epsilon < 1"),
        ("eta", -0.1, "0 <= eta < 1"),
        ("top_n_sigma", -1.0, "0 <= top_n_sigma"),
        ("repetition_penalty", 0.0, "> 0"),
        ("frequency_penalty", 2.5, "-2 <= frequency_penalty <= 2"),
        ("presence_penalty", -3.0, "-2 <= presence_penalty <= 2"),
        ("penalty_last_n", -1, "0 \\(all\\)"),
        ("min_tokens_to_keep", 0, ">= 1"),
        ("mode", "beam", "sample, greedy, hardmax"),
        ("seed", -5, "integer >= 0"),
        ("order", "openai", "hf, llama.cpp, vllm"),
        ("order", ["temperature", "top_q"], "stage 'top_q' is unknown"),
        ("order", ["top_k"], "temperature stage"),
        ("logit_bias", {1: 500.0}, "-100 <= bias <= 100"),
        ("logit_bias", {"a": 1.0}, "integer id"),
    ],
)
def test_params_name_the_field_and_the_allowed_range(field, value, allowed):
    with pytest.raises(InvalidInputError, match=allowed) as error:
        SamplingParams(**{field: value})
    assert field.split("_")[0] in str(error.value) or "stage" in str(error.value)


def test_a_filter_missing_from_the_chosen_order_is_an_error():
    with pytest.raises(InvalidInputError, match="top_n_sigma is set but the chain"):
        SamplingParams(top_n_sigma=1.0, order="hf")
    with pytest.raises(InvalidInputError, match="epsilon is set"):
        SamplingParams(epsilon=0.01, order="llama.cpp")


def test_base_argmax_is_the_greedy_token_of_the_raw_logits():
    raw = _logits(5, 300, seed=2)
    raw[0, [4, 9]] = raw[0].max() + 1  # a tie: the lowest id is greedy's choice
    greedy, _ = Sampler(SamplingParams(temperature=0)).step(raw)
    _, stats = Sampler(SamplingParams(temperature=1.3, seed=0)).step(raw)
    np.testing.assert_array_equal(stats.base_argmax, greedy)
    assert stats.base_argmax[0] == 4
