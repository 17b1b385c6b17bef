"""Diversity metrics: closed forms on tiny inputs, hypothesis properties, NLTK as BLEU oracle.

A bare ``pytest.approx()`` here compares a closed form (2/3, exp(1 - 5/4)) with the same number
from a few float64 operations: only their rounding (ulps) differs, which approx's default
relative 1e-6 absorbs.
"""

import math
import random

import numpy as np
import pytest
import scipy.stats
from hypothesis import given
from hypothesis import strategies as st

from sampler.errors import InvalidInputError
from sampler.report.metrics import (
    bleu,
    distinct_n,
    ngrams,
    perplexity,
    repetition_rate,
    self_bleu,
    seq_rep_n,
    zipf_coefficient,
)

tokens = st.lists(st.integers(0, 4), max_size=30)
corpora = st.lists(tokens, max_size=8)


def naive_self_bleu(seqs, max_n=4):
    # the literal definition; empty sequences have no BLEU of their own and are skipped
    scores = [bleu(s, seqs[:i] + seqs[i + 1 :], max_n) for i, s in enumerate(seqs) if s]
    return sum(scores) / len(scores) if scores else math.nan


def test_ngrams():
    assert ngrams([1, 2, 3], 1) == [(1,), (2,), (3,)]
    assert ngrams([1, 2, 3], 3) == [(1, 2, 3)]
    assert ngrams([1, 2, 3], 4) == []
    assert ngrams(np.array([4, 5]), 2) == [(4, 5)]


def test_distinct_n_closed_forms():
    assert distinct_n([[1, 2, 1, 2]], 2) == pytest.approx(2 / 3)
    assert distinct_n([[1, 2, 1, 2]], 1) == pytest.approx(2 / 4)
    # Pooled: the bigram (1, 2) of the second sequence repeats one of the first.
    assert distinct_n([[1, 2, 3], [1, 2]], 2) == pytest.approx(2 / 3)
    assert distinct_n([[5, 5, 5]], 3) == 1.0
    assert math.isnan(distinct_n([[1], [2]], 2))
    assert math.isnan(distinct_n([], 1))


def test_seq_rep_n_closed_forms():
    assert seq_rep_n([7] * 10) == pytest.approx(1 - 1 / 7)  # 7 four-grams, all the same
    assert seq_rep_n([1, 2, 3, 4, 5, 6]) == 0.0
    assert seq_rep_n([1, 2, 1, 2, 1], 2) == pytest.approx(1 - 2 / 4)
    assert seq_rep_n([1, 2, 3, 4]) == 0.0
    assert math.isnan(seq_rep_n([1, 2, 3]))


def test_repetition_rate_skips_short_sequences():
    assert repetition_rate([[7] * 10, [1, 2, 3, 4, 5], [1, 2]]) == pytest.approx((6 / 7 + 0) / 2)
    assert math.isnan(repetition_rate([[1, 2], []]))
    assert math.isnan(repetition_rate([]))


def test_bleu_closed_forms():
    assert bleu([1, 2, 3, 4], [[1, 2, 3, 4]]) == 1.0
    assert bleu([1, 2, 3], [[4, 5, 6]]) == 0.0  # no unigram match: 0 even with smoothing
    assert math.isnan(bleu([], [[1, 2]]))  # 0/0 precisions: undefined (nltk says 0.0)
    # Precisions 3/4, 2/3, 1/2 and a smoothed 0.1/1 for the missing 4-gram.
    expected = (3 / 4 * 2 / 3 * 1 / 2 * 0.1) ** 0.25
    assert bleu([1, 2, 3, 5], [[1, 2, 3, 4]]) == pytest.approx(expected, rel=1e-14)
    # Clipping: "the the the the" against a reference with two "the"s.
    assert bleu([0] * 4, [[0, 0, 1, 2]], max_n=1) == pytest.approx(2 / 4)
    # Brevity penalty exp(1 - r/c) with perfect precision.
    assert bleu([1, 2, 3, 4], [[1, 2, 3, 4, 5, 6]]) == pytest.approx(math.exp(1 - 6 / 4))
    # Orders longer than the hypothesis score 0/1, smoothed to 0.1 (as NLTK does).
    assert bleu([1, 2], [[1, 2]]) == pytest.approx(math.sqrt(0.1))


def test_bleu_brevity_tie_goes_to_shorter_reference():
    # References of lengths 3 and 5 are equally close to 4: the shorter one means no penalty.
    hyp = [1, 2, 3, 4]
    assert bleu(hyp, [[1, 2, 3], [1, 2, 3, 4, 9]], max_n=1) == 1.0
    assert bleu(hyp, [[1, 2, 3, 4, 9], [1, 2, 3]], max_n=1) == 1.0
    assert bleu(hyp, [[1, 2, 3, 4, 9]], max_n=1) == pytest.approx(math.exp(1 - 5 / 4))


def test_self_bleu_closed_forms():
    assert self_bleu([[1, 2, 3, 4]] * 3) == 1.0
    assert self_bleu([[1, 2], [3, 4]]) == 0.0
    assert math.isnan(self_bleu([[1, 2, 3, 4]]))
    assert math.isnan(self_bleu([]))
    # identical empty completions: nothing to score, not "no overlap"
    assert math.isnan(self_bleu([[], [], []]))
    # an empty completion is no hypothesis, but still a (useless) reference for the others
    assert self_bleu([[], [1, 2, 3, 4], [1, 2, 3, 4]]) == 1.0
    seqs = [[1, 2, 3, 4, 5], [1, 2, 3], [1, 2, 3, 4, 6], [2, 3, 4]]
    assert self_bleu(seqs) == naive_self_bleu(seqs)


def test_zipf_coefficient_of_exact_power_laws():
    one_over_r = [[0] * 60 + [1] * 30 + [2] * 20 + [3] * 15 + [4] * 12]  # counts 60 / rank
    assert zipf_coefficient(one_over_r) == pytest.approx(1.0, abs=1e-12)
    one_over_r2 = [[0] * 144, [1] * 36, [2] * 16, [3] * 9]  # counts 144 / rank**2
    assert zipf_coefficient(one_over_r2) == pytest.approx(2.0, abs=1e-12)
    assert zipf_coefficient([[5, 6, 7, 8]]) == 0.0  # all equally frequent: flat
    # Only the top 2 count: 36 and 9 give slope log(9/36)/log(2).
    assert zipf_coefficient([[0] * 36, [1] * 9, [2] * 8], top=2) == pytest.approx(2.0)
    assert math.isnan(zipf_coefficient([[3, 3, 3]]))
    assert math.isnan(zipf_coefficient([]))


def test_zipf_coefficient_matches_scipy_linregress():
    rng = np.random.default_rng(1)
    seqs = [rng.zipf(1.7, size=200).tolist() for _ in range(5)]
    counts = sorted(np.unique(np.concatenate(seqs), return_counts=True)[1], reverse=True)[:50]
    fit = scipy.stats.linregress(np.log(np.arange(1, len(counts) + 1)), np.log(counts))
    # the same least-squares slope over 50 points, two float64 formulas: ≲ 50 u relative
    assert zipf_coefficient(seqs, top=50) == pytest.approx(-fit.slope, rel=1e-12)


def test_perplexity():
    # exp of a float64 mean of ≤ 5 logs: a few ulps (2.2e-16 each) of the result
    assert perplexity([math.log(7)] * 5) == pytest.approx(7.0, rel=1e-14)
    assert perplexity([0.0, 0.0]) == 1.0
    assert perplexity([math.log(2), math.log(8)]) == pytest.approx(4.0, rel=1e-14)
    assert perplexity(np.array([math.log(3)])) == pytest.approx(3.0, rel=1e-14)
    assert math.isnan(perplexity([]))
    assert perplexity([1.0, math.inf]) == math.inf
    assert perplexity([1000.0]) == math.inf  # overflows a float, and says so


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: ngrams([1, 2], 0), "n is 0"),
        (lambda: ngrams([1, 2], True), "n is True"),
        (lambda: distinct_n([[1, 2]], 1.5), "n is 1.5"),
        (lambda: distinct_n(["the cat sat"], 1), r"sequences\[0\] is 'the cat sat'"),
        (lambda: distinct_n([1, 2, 3], 1), r"sequences\[0\] is 1"),
        (lambda: seq_rep_n([[1], [2]], 1), r"tokens\[0\] is \[1\]: tokens must be hashable"),
        (lambda: bleu([1, 2], []), "references is empty"),
        (lambda: bleu([1, 2], [[1, 2]], max_n=0), "max_n is 0"),
        (lambda: self_bleu(7), "sequences is 7"),
        (lambda: zipf_coefficient([[1, 2]], top=1), "top is 1"),
        (lambda: perplexity([0.5, -0.1]), r"surprisals_nats\[1\] is -0.1"),
        (lambda: perplexity([math.nan]), r"surprisals_nats\[0\] is nan"),
        (lambda: perplexity(["x"]), "surprisals_nats is"),
    ],
)
def test_bad_input_raises_one_line(call, match):
    with pytest.raises(InvalidInputError, match=match) as info:
        call()
    assert "\n" not in str(info.value)


@given(corpora, st.integers(1, 4))
def test_distinct_and_repetition_are_fractions(seqs, n):
    for value in (distinct_n(seqs, n), repetition_rate(seqs, n), self_bleu(seqs, n)):
        assert math.isnan(value) or 0.0 <= value <= 1.0
    for seq in seqs:
        value = seq_rep_n(seq, n)
        assert math.isnan(value) or 0.0 <= value <= 1.0


@given(st.lists(st.integers(), min_size=1, max_size=50, unique=True))
def test_distinct_1_of_unique_tokens_is_1(seq):
    assert distinct_n([seq], 1) == 1.0
    assert seq_rep_n(seq, 1) == 0.0


@given(tokens, st.lists(tokens, min_size=1, max_size=4), st.integers(1, 5))
def test_bleu_is_a_fraction_and_ignores_reference_order(hyp, refs, max_n):
    value = bleu(hyp, refs, max_n)
    if not hyp:
        assert math.isnan(value) and math.isnan(bleu(hyp, refs[::-1], max_n))
        return
    assert 0.0 <= value <= 1.0
    assert bleu(hyp, refs[::-1], max_n) == value


@given(st.lists(st.integers(0, 9), min_size=4, max_size=30))
def test_bleu_against_itself_is_1(seq):
    assert bleu(seq, [seq]) == 1.0


@given(st.lists(tokens, min_size=2, max_size=8), st.integers(1, 4))
def test_self_bleu_equals_its_definition(seqs, max_n):
    # the same float64 operations in another order, on scores ≤ 1: an ulp or so
    assert self_bleu(seqs, max_n) == pytest.approx(
        naive_self_bleu(seqs, max_n), abs=1e-15, nan_ok=True
    )


def _random_case(rng: random.Random):
    vocab = rng.randint(2, 6)  # small, so n-grams of every order match now and then

    def seq():
        return [rng.randrange(vocab) for _ in range(rng.randint(1, 30))]

    return seq(), [seq() for _ in range(rng.randint(1, 4))]


@pytest.mark.parametrize("max_n", [1, 2, 3, 4, 5])
def test_bleu_matches_nltk_sentence_bleu(max_n):
    bleu_score = pytest.importorskip("nltk.translate.bleu_score")
    smoothing = bleu_score.SmoothingFunction().method1
    weights = (1 / max_n,) * max_n
    rng = random.Random(max_n)
    cases = [_random_case(rng) for _ in range(200)]
    # NLTK's edge cases: empty reference, no unigram match, length ties. (The empty hypothesis
    # is the one deliberate difference, NaN here: test_bleu_closed_forms.)
    cases += [([1, 2], [[]]), ([1, 2], [[3, 4]])]
    cases += [([1, 2, 3, 4], [[1] * 3, [2] * 5]), ([1, 2, 3, 4], [[2] * 5, [1] * 3])]
    worst = 0.0
    for hyp, refs in cases:
        expected = bleu_score.sentence_bleu(refs, hyp, weights, smoothing_function=smoothing)
        worst = max(worst, abs(bleu(hyp, refs, max_n) - expected))
    assert worst <= 1e-12


def test_self_bleu_matches_texygen_loop_over_nltk():
    bleu_score = pytest.importorskip("nltk.translate.bleu_score")
    smoothing = bleu_score.SmoothingFunction().method1
    rng = random.Random(7)
    seqs = [[rng.randrange(4) for _ in range(rng.randint(1, 25))] for _ in range(40)]
    # Texygen's SelfBleu.get_bleu: each sentence against all the others, then the mean.
    texygen = np.mean(
        [
            bleu_score.sentence_bleu(
                seqs[:i] + seqs[i + 1 :], s, (0.25,) * 4, smoothing_function=smoothing
            )
            for i, s in enumerate(seqs)
        ]
    )
    # a mean of 40 BLEU scores ≤ 1, NLTK's float64 arithmetic against ours: ≲ 40 u each
    assert self_bleu(seqs) == pytest.approx(texygen, abs=1e-12)
