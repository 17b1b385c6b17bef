"""Synthetic logit sources: determinism, shapes, each kind's law, vocabulary and bad specs."""

import itertools
import math
import subprocess
import sys
import zlib

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sampler.entropy import softmax_entropy
from sampler.errors import InvalidInputError
from sampler.softmax import softmax
from sampler.sources.synthetic import (
    SYNTHETIC_CONTEXT,
    SYNTHETIC_KINDS,
    SyntheticSource,
    pseudo_word,
    word_index,
)
from sampler.sources.synthetic_spec import parse_synthetic

SMALL_SPECS = [
    "synthetic:fixed?logits=3,1,0.2,-inf&labels=w,x,y,z",
    "synthetic:zipf?vocab=64&seed=3",
    "synthetic:gaussian?vocab=64&seed=3",
    "synthetic:dirichlet?vocab=64&seed=3",
    "synthetic:markov?vocab=64&seed=3",
]
CONTEXT_DEPENDENT = SMALL_SPECS[2:]


def logits_after(source: SyntheticSource, prompt: list[int]) -> np.ndarray:
    return source.start([prompt])[0][0]


@pytest.mark.parametrize("spec", SMALL_SPECS)
def test_shapes_dtypes_and_session(spec):
    source = parse_synthetic(spec)
    size = source.vocab_size
    logits, session = source.start([[], [1], [0, 2, 1]])
    assert logits.shape == (3, size) and logits.dtype == np.float32
    assert not np.isnan(logits).any() and not np.isposinf(logits).any()
    after = session.advance(np.array([1, 2, 0]))
    assert after.shape == (3, size) and after.dtype == np.float32
    after[:] = 0  # the caller owns the array: writing must not touch the source's cache
    assert np.array_equal(session.advance(np.array([1, 2, 0])), source.start([[1], [2], [0]])[0])
    assert source.start([])[0].shape == (0, size)
    assert source.context_limit == SYNTHETIC_CONTEXT and source.is_chat is False


@pytest.mark.parametrize("spec", SMALL_SPECS)
def test_pure_function_of_spec_and_context(spec):
    first, second = parse_synthetic(spec), parse_synthetic(spec)
    prompts = [[], [0], [2, 1], [1, 1, 2]]
    for prompt in prompts:
        alone = logits_after(first, prompt)
        assert np.array_equal(alone, logits_after(second, prompt))
        batch = second.start([[1], *prompts, [0]])[0]
        assert np.array_equal(alone, batch[1 + prompts.index(prompt)])
    # Extending a session and restarting from the longer prompt agree.
    _, session = first.start([[2], []])
    assert np.array_equal(session.advance(np.array([1, 0])), first.start([[2, 1], [0]])[0])


@pytest.mark.parametrize("spec", CONTEXT_DEPENDENT)
def test_context_dependent_kinds_depend_on_the_previous_token_only(spec):
    source = parse_synthetic(spec)
    assert not np.array_equal(logits_after(source, [1]), logits_after(source, [2]))
    assert not np.array_equal(logits_after(source, []), logits_after(source, [1]))
    assert np.array_equal(logits_after(source, [5, 9, 1]), logits_after(source, [1]))


def test_seeds_and_kinds_give_different_tables():
    rows = {
        spec: logits_after(parse_synthetic(spec), [1])
        for spec in ("synthetic:gaussian?vocab=64&seed=0", "synthetic:gaussian?vocab=64&seed=1")
    }
    assert not np.array_equal(*rows.values())


def test_pinned_values_guard_against_numpy_stream_changes():
    # If numpy ever changes its Generator streams, these tables (and every fingerprint's
    # meaning) change: this test is the alarm.
    expected = {
        "zipf": [-4.057767391204834, -4.281002521514893, -3.0498476028442383],
        "gaussian": [3.459439516067505, 1.6102654933929443, 0.9341166019439697],
        "dirichlet": [-22.758018493652344, -11.862385749816895, -3.681861162185669],
        "markov": [-2.632354259490967, 3.619255781173706, -2.7343616485595703],
    }
    for kind, values in expected.items():
        row = logits_after(parse_synthetic(f"synthetic:{kind}?vocab=50&seed=7"), [3])
        # float32 values printed in full: only another libm's exp/log (≤ a few ulps, 6e-8 each)
        # can move them
        np.testing.assert_allclose(row[:3], values, rtol=1e-6)


def test_fixed_returns_the_given_logits_exactly():
    source = parse_synthetic("synthetic:fixed?logits=2.5,-1e-3,7,-inf&labels=up,down,left,right")
    expected = np.array([2.5, -1e-3, 7, -np.inf], dtype=np.float32)
    assert np.array_equal(logits_after(source, []), expected)
    assert np.array_equal(logits_after(source, [3, 0]), expected)
    assert [source.token_label(i) for i in range(4)] == ["up", "down", "left", "right"]
    assert source.eos_token_ids == frozenset() and source.vocab_size == 4


def test_fixed_defaults_to_the_cheat_sheet():
    source = parse_synthetic("synthetic:fixed")
    assert source.name == "synthetic:fixed?labels=A,B,C&logits=3.0,1.0,0.2"
    assert np.array_equal(logits_after(source, []), np.float32([3.0, 1.0, 0.2]))
    assert parse_synthetic("synthetic:fixed?logits=1,2,3,4").params["labels"] == list("ABCD")


@pytest.mark.parametrize("exponent", [0.5, 1.1, 3.0])
def test_zipf_logits_are_minus_exponent_log_rank_up_to_a_permutation(exponent):
    source = parse_synthetic(f"synthetic:zipf?vocab=300&exponent={exponent}&seed=5")
    logits = logits_after(source, [])
    expected = (-exponent * np.log(np.arange(1, 301))).astype(np.float32)
    assert np.array_equal(np.sort(logits)[::-1], expected)
    assert np.array_equal(logits, logits_after(source, [17]))
    other_seed = logits_after(parse_synthetic("synthetic:zipf?vocab=300&seed=6"), [])
    assert np.argmax(logits) != np.argmax(other_seed)  # the ranks really are a seeded shuffle


def test_gaussian_scale():
    source = parse_synthetic("synthetic:gaussian?vocab=20000&scale=3&seed=1")
    row = logits_after(source, [4])
    assert abs(row.mean()) < 0.1 and abs(row.std() - 3.0) < 0.1


@pytest.mark.parametrize("alpha", [1e-4, 0.1, 1.0, 50.0])
def test_dirichlet_logits_are_log_probabilities(alpha):
    source = parse_synthetic(f"synthetic:dirichlet?vocab=400&alpha={alpha}&seed=2")
    row = logits_after(source, [9]).astype(np.float64)
    assert np.isfinite(row).all() and row.min() >= math.log(1e-30) - 1e-4
    # The 1e-30 floor adds at most 400e-30 of mass: the row is normalised.
    # float32 log-probabilities: term i off by ≤ u32 |log p_i|, in all ≤ u32 H ≤ u32 log 400
    assert np.exp(row).sum() == pytest.approx(1.0, rel=2.0**-24 * math.log(400))
    if alpha == 1e-4:
        assert np.exp(row).max() > 0.99  # tiny alpha puts nearly all mass on one token


def test_markov_end_token_and_vocabulary():
    source = parse_synthetic("synthetic:markov?vocab=100&seed=0")
    assert source.eos_token_ids == frozenset({99}) and source.token_label(99) == "."
    words = [source.token_label(i) for i in range(99)]
    assert len(set(words)) == 99 and all(w.isalpha() and w.islower() for w in words)
    logits = logits_after(source, [4])
    after_word = softmax(logits.astype(np.float64))
    # 1/12 by construction; float32 logits move a probability by ≤ 2 u32 max|x| relative
    bound = 2 * 2.0**-24 * float(np.abs(logits[np.isfinite(logits)]).max())
    assert after_word[99] == pytest.approx(1 / 12, rel=bound)
    start = logits_after(source, [])
    assert start[99] == start.min()
    # "." closes a sentence: what follows is the start state again.
    assert np.array_equal(logits_after(source, [4, 99]), start)


def test_markov_entropy_depends_on_context_and_falls_with_sharpness():
    contexts = [[]] + [[i] for i in range(200)]
    mean_entropies = []
    for sharpness in (0.0, 0.5, 1.0, 2.0, 4.0, 8.0):
        source = parse_synthetic(f"synthetic:markov?vocab=500&sharpness={sharpness}&seed=1")
        entropies = softmax_entropy(source.start(contexts)[0].astype(np.float64))
        if sharpness > 0:
            assert entropies.std() > 0.1, "entropy should differ across previous tokens"
        mean_entropies.append(entropies[1:].mean())
    assert all(a > b for a, b in itertools.pairwise(mean_entropies))


def test_markov_text_reads_as_sentences():
    source = parse_synthetic("synthetic:markov?seed=4")
    rng = np.random.default_rng(0)
    logits, session = source.start([[]] * 200)
    ended = np.zeros(200, dtype=bool)
    for _ in range(100):
        probs = softmax(logits.astype(np.float64))
        tokens = np.array([rng.choice(source.vocab_size, p=row) for row in probs])
        ended |= tokens == source.vocab_size - 1
        logits = session.advance(tokens)
    assert ended.mean() > 0.95


@pytest.mark.parametrize("spec", SMALL_SPECS)
def test_decode_encode_round_trip_and_unknown_words(spec):
    source = parse_synthetic(spec)
    ids = [*range(source.vocab_size), 1, 0, 1]
    text = source.decode(ids)
    assert source.encode(text, chat=False) == ids
    assert source.encode(text, chat=True) == ids
    assert source.decode(source.encode(text, chat=False)) == text
    assert source.encode("", chat=False) == [] and source.encode("  \n ", chat=False) == []
    ordinary = source.vocab_size - len(source.eos_token_ids)
    unknown = source.encode("Zebra! qq", chat=False)
    assert unknown == [zlib.crc32(b"Zebra!") % ordinary, zlib.crc32(b"qq") % ordinary]


def test_markov_words_beyond_the_vocabulary_are_hashed_not_eos():
    source = parse_synthetic("synthetic:markov?vocab=10")
    for word in (pseudo_word(9), pseudo_word(10), pseudo_word(5000)):
        assert source.encode(word, chat=False) == [zlib.crc32(word.encode()) % 9]


@given(st.integers(min_value=0, max_value=1_999_999))
def test_pseudo_words_are_a_bijection(index):
    word = pseudo_word(index)
    assert word_index(word) == index and word.isalpha() and " " not in word


def test_pseudo_words_are_unique_across_block_boundaries():
    words = [pseudo_word(i) for i in range(6300, 6500)] + [pseudo_word(i) for i in range(6400)]
    assert len(set(words)) == 6400 + 100
    assert word_index("") is None and word_index("kal") is None and word_index("xyxy") is None


def test_canonical_names_include_defaults_and_are_stable():
    source = parse_synthetic("synthetic:markov")
    assert source.name == source.fingerprint == "synthetic:markov?seed=0&sharpness=2.0&vocab=500"
    reordered = parse_synthetic("synthetic:markov?vocab=500.0&sharpness=2&seed=0")
    assert reordered.fingerprint == source.fingerprint
    for kind in SYNTHETIC_KINDS:
        name = parse_synthetic(f"synthetic:{kind}").name
        assert parse_synthetic(name).name == name
    assert parse_synthetic("synthetic:zipf?vocab=1e3").params["vocab"] == 1000
    assert parse_synthetic(f"synthetic:zipf?seed={2**80}").params["seed"] == 2**80


@pytest.mark.parametrize(
    ("spec", "named"),
    [
        ("markov?vocab=10", "synthetic:"),
        ("hf:gpt2", "synthetic:"),
        ("synthetic:uniform", "'uniform'"),
        ("synthetic:uniform", "markov"),
        ("synthetic:", "''"),
        ("synthetic:markov?scale=2", "'scale'"),
        ("synthetic:markov?scale=2", "sharpness"),
        ("synthetic:fixed?vocab=3", "'vocab'"),
        ("synthetic:markov?vocab=10&vocab=20", "'vocab'"),
        ("synthetic:markov?vocab", "'vocab'"),
        ("synthetic:markov?vocab=10&", "''"),
        ("synthetic:markov?vocab=abc", "'abc'"),
        ("synthetic:markov?vocab=", "vocab"),
        ("synthetic:markov?vocab=1", "vocab 1"),
        ("synthetic:markov?vocab=2000001", "2000000"),
        ("synthetic:markov?vocab=2.5", "'2.5'"),
        ("synthetic:markov?seed=-1", "seed -1"),
        ("synthetic:markov?seed=1.5", "'1.5'"),
        ("synthetic:markov?seed=nan", "'nan'"),
        ("synthetic:markov?sharpness=-0.1", "'-0.1'"),
        ("synthetic:markov?sharpness=inf", "'inf'"),
        ("synthetic:markov?sharpness=1e7", "'1e7'"),
        ("synthetic:zipf?exponent=0", "exponent '0'"),
        ("synthetic:zipf?exponent=two", "'two'"),
        ("synthetic:gaussian?scale=-1", "scale '-1'"),
        ("synthetic:dirichlet?alpha=0", "alpha '0'"),
        ("synthetic:dirichlet?alpha=nan", "alpha 'nan'"),
        ("synthetic:fixed?logits=", "logits"),
        ("synthetic:fixed?logits=3,x,1", "'x'"),
        ("synthetic:fixed?logits=3,,1", "''"),
        ("synthetic:fixed?logits=1,nan", "'nan'"),
        ("synthetic:fixed?logits=1,inf", "'inf'"),
        ("synthetic:fixed?logits=1,1e39", "'1e39'"),
        ("synthetic:fixed?logits=-inf,-inf", "-inf"),
        ("synthetic:fixed?logits=1,2&labels=A,B,C", "3 labels"),
        ("synthetic:fixed?labels=A,B", "2 labels"),
        ("synthetic:fixed?logits=1,2&labels=A,A", "'A,A'"),
        ("synthetic:fixed?logits=1,2&labels=A,", "''"),
        ("synthetic:fixed?logits=1,2&labels=A,B C", "'B C'"),
    ],
)
def test_bad_specs_raise_one_line_errors_naming_the_value(spec, named):
    with pytest.raises(InvalidInputError) as error:
        parse_synthetic(spec)
    message = str(error.value)
    assert named in message and "\n" not in message


def test_bad_token_ids_are_rejected():
    source = parse_synthetic("synthetic:markov?vocab=10")
    with pytest.raises(InvalidInputError, match="10 is out of range: allowed 0 to 9"):
        source.start([[1, 10]])
    with pytest.raises(InvalidInputError, match="-1 is out of range"):
        source.token_label(-1)
    with pytest.raises(InvalidInputError, match="not an integer"):
        source.decode([1.5])
    _, session = source.start([[1], [2]])
    with pytest.raises(InvalidInputError, match="one token per row"):
        session.advance(np.array([1, 2, 3]))
    with pytest.raises(InvalidInputError, match="12 is out of range"):
        session.advance(np.array([1, 12]))


def test_import_does_not_pull_in_torch():
    code = (
        "import sys, sampler.sources.synthetic_spec as s\n"
        "s.parse_synthetic('synthetic:markov?vocab=20').start([[1]])\n"
        "print(','.join(m for m in ('torch', 'transformers') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
