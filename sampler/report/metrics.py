"""Text-diversity metrics from the decoding literature, on sequences of hashable tokens.

Every function takes tokens (e.g. token ids), not text: tokenise first. A metric that is
undefined for its input (no n-gram to count, fewer than two sequences, ...) returns
``float('nan')`` rather than a made-up 0 or 1; callers show it as "–".

Examples
--------
>>> from sampler.report.metrics import distinct_n, self_bleu
>>> samples = [[1, 2, 3, 4, 5], [1, 2, 3, 4, 6]]
>>> distinct_n(samples, 2), round(self_bleu(samples), 6)
(0.625, 0.66874)
"""

from __future__ import annotations

import bisect
import math
import reprlib
from collections import Counter
from collections.abc import Hashable, Iterable, Sequence
from numbers import Integral

import numpy as np

from sampler.errors import InvalidInputError

__all__ = [
    "bleu",
    "distinct_n",
    "ngrams",
    "perplexity",
    "repetition_rate",
    "self_bleu",
    "seq_rep_n",
    "zipf_coefficient",
]

# Chen & Cherry (2014) smoothing method 1 with NLTK's default epsilon, as Texygen uses it.
_EPSILON = 0.1


def _order(n: int, name: str = "n", minimum: int = 1) -> int:
    if isinstance(n, bool) or not isinstance(n, Integral) or n < minimum:
        raise InvalidInputError(f"{name} is {n!r}: use an integer >= {minimum}")
    return int(n)


def _as_list(items: Iterable, name: str, allowed: str) -> list:
    # A str is iterable, but here it is almost always untokenised text, not tokens.
    if isinstance(items, str | bytes) or not isinstance(items, Iterable):
        raise InvalidInputError(f"{name} is {reprlib.repr(items)}: give {allowed}")
    # tolist() turns numpy scalars into Python ones, which hash and print like plain ids.
    return items.tolist() if isinstance(items, np.ndarray) else list(items)


def _tokens(tokens: Iterable[Hashable], name: str) -> list[Hashable]:
    out = _as_list(tokens, name, "a sequence of hashable tokens (e.g. token ids)")
    for i, token in enumerate(out):
        try:
            hash(token)
        except TypeError:
            raise InvalidInputError(f"{name}[{i}] is {token!r}: tokens must be hashable") from None
    return out


def _sequences(sequences: Iterable[Sequence[Hashable]], name: str) -> list[list[Hashable]]:
    items = _as_list(sequences, name, "a list of token sequences")
    return [_tokens(seq, f"{name}[{i}]") for i, seq in enumerate(items)]


def ngrams(tokens: Sequence[Hashable], n: int) -> list[tuple]:
    """The contiguous n-grams of ``tokens`` in order (empty when ``len(tokens) < n``).

    Examples
    --------
    >>> ngrams([1, 2, 3], 2)
    [(1, 2), (2, 3)]
    """
    n = _order(n)
    seq = _tokens(tokens, "tokens")
    return list(zip(*(seq[i:] for i in range(n)), strict=False))


def distinct_n(sequences: Sequence[Sequence[Hashable]], n: int) -> float:
    """Distinct-n: unique n-grams / total n-grams, pooled over all ``sequences``.

    Li et al. (2016) scaled the unique count by the number of generated *tokens*; nearly all
    later work, and this function, divides by the number of *n-grams*, so the value is in
    (0, 1] and 1 means no n-gram occurs twice. NaN when there is no n-gram at all (every
    sequence shorter than ``n``): an empty set is neither diverse nor repetitive.

    Examples
    --------
    >>> distinct_n([[1, 2, 3], [1, 2, 4]], 2)
    0.75
    """
    n = _order(n)
    grams = [g for seq in _sequences(sequences, "sequences") for g in ngrams(seq, n)]
    return len(set(grams)) / len(grams) if grams else math.nan


def seq_rep_n(tokens: Sequence[Hashable], n: int = 4) -> float:
    """Welleck et al. (2019) seq-rep-n: ``1 - unique n-grams / n-grams`` within one sequence.

    0 means no repeated n-gram; NaN when the sequence has fewer than ``n`` tokens.

    Examples
    --------
    >>> round(seq_rep_n([1, 2, 3, 4, 1, 2, 3, 4], 4), 6)
    0.2
    """
    grams = ngrams(tokens, n)
    return 1.0 - len(set(grams)) / len(grams) if grams else math.nan


def repetition_rate(sequences: Sequence[Sequence[Hashable]], n: int = 4) -> float:
    """Mean :func:`seq_rep_n` over ``sequences``, skipping those shorter than ``n`` (NaN if all).

    Examples
    --------
    >>> repetition_rate([[7] * 5, [1, 2, 3, 4, 5], [1]])
    0.25
    """
    n = _order(n)
    reps = [seq_rep_n(seq, n) for seq in _sequences(sequences, "sequences")]
    reps = [r for r in reps if not math.isnan(r)]
    return math.fsum(reps) / len(reps) if reps else math.nan


def _bleu_score(matches: list[int], totals: list[int], hyp_len: int, ref_len: int) -> float:
    # The arithmetic follows nltk's corpus_bleu step by step (same divisions, fsum, order of
    # operations), so results agree to the last bit rather than merely to rounding.
    if hyp_len == 0:
        return math.nan  # no n-gram: every precision is 0/0 (nltk says 0.0; undefined here)
    if matches[0] == 0:
        return 0.0  # nltk returns 0 before smoothing when no unigram matches
    weight = 1 / len(matches)
    logs = []
    for match, total in zip(matches, totals, strict=True):
        # nltk floors the denominator at 1, so an order longer than the hypothesis counts
        # as 0/1 and is smoothed to epsilon rather than being dropped.
        denominator = max(1, total)
        logs.append(weight * math.log((match or _EPSILON) / denominator))
    penalty = 1.0 if hyp_len > ref_len else math.exp(1 - ref_len / hyp_len)
    return penalty * math.exp(math.fsum(logs))


def _closest_length(hyp_len: int, lengths: Iterable[int]) -> int:
    # Ties go to the shorter reference, as in nltk and mteval-v13a.
    return min(lengths, key=lambda r: (abs(r - hyp_len), r))


def bleu(
    hypothesis: Sequence[Hashable], references: Sequence[Sequence[Hashable]], max_n: int = 4
) -> float:
    """Smoothed sentence BLEU of ``hypothesis`` against one or more ``references``.

    Uniform weights ``1/max_n``, clipped n-gram precision (each n-gram counted at most as
    often as in the reference that has it most), brevity penalty against the closest
    reference length (ties: the shorter), and smoothing method 1 of Chen & Cherry (2014):
    a zero match count becomes 0.1. Equals nltk's ``sentence_bleu(references, hypothesis,
    smoothing_function=SmoothingFunction().method1)`` -- mind the argument order -- including
    its edge cases: 0.0 when no unigram matches, and orders longer than the hypothesis
    scored as 0.1 rather than skipped. One difference, by this module's rule: an empty
    hypothesis has no n-gram to score, so its BLEU is undefined (NaN), where nltk says 0.0.

    Examples
    --------
    >>> bleu([1, 2, 3, 4], [[1, 2, 3, 4]])
    1.0
    >>> round(bleu([1, 2, 3, 5], [[1, 2, 3, 4], [9, 2, 3, 5]]), 6)
    0.562341
    """
    max_n = _order(max_n, "max_n")
    hyp = _tokens(hypothesis, "hypothesis")
    refs = _sequences(references, "references")
    if not refs:
        raise InvalidInputError("references is empty: give at least one reference sequence")
    matches, totals = [], []
    for n in range(1, max_n + 1):
        counts = Counter(ngrams(hyp, n))
        ref_counts = [Counter(ngrams(ref, n)) for ref in refs]
        matches.append(sum(min(c, max(r[g] for r in ref_counts)) for g, c in counts.items()))
        totals.append(counts.total())
    ref_len = _closest_length(len(hyp), (len(ref) for ref in refs))
    return _bleu_score(matches, totals, len(hyp), ref_len)


def self_bleu(sequences: Sequence[Sequence[Hashable]], max_n: int = 4) -> float:
    """Texygen self-BLEU: the mean of :func:`bleu` of each sequence against all the others.

    Higher means the sequences resemble each other more (less diverse). Unlike Texygen,
    every sequence is used (Texygen's default fast mode keeps the first 500). It equals the literal
    ``mean(bleu(s[i], s[:i] + s[i+1:]))`` but runs in about linear time: for each n-gram
    it keeps the two largest per-sequence counts, so "the largest count among the others"
    is a lookup. Empty sequences are references but get no score of their own (their BLEU is
    undefined); NaN with fewer than two sequences, or when every sequence is empty.

    Examples
    --------
    >>> self_bleu([[1, 2, 3, 4], [1, 2, 3, 4], [1, 2, 3, 4]])
    1.0
    """
    max_n = _order(max_n, "max_n")
    seqs = _sequences(sequences, "sequences")
    if len(seqs) < 2:
        return math.nan
    per_order = []
    for n in range(1, max_n + 1):
        counts = [Counter(ngrams(seq, n)) for seq in seqs]
        top: dict[tuple, list[int]] = {}  # n-gram -> [largest, its sequence, second largest]
        for j, seq_counts in enumerate(counts):
            for g, c in seq_counts.items():
                best = top.setdefault(g, [0, -1, 0])
                if c > best[0]:
                    best[:] = [c, j, best[0]]
                elif c > best[2]:
                    best[2] = c
        per_order.append((counts, top))
    lengths = sorted(len(seq) for seq in seqs)
    scores = []
    for i, seq in enumerate(seqs):
        matches, totals = [], []
        for counts, top in per_order:
            others_max = {g: top[g][2] if top[g][1] == i else top[g][0] for g in counts[i]}
            matches.append(sum(min(c, others_max[g]) for g, c in counts[i].items()))
            totals.append(counts[i].total())
        # Drop one copy of this length; only its neighbours in sorted order can be closest.
        at = bisect.bisect_left(lengths, len(seq))
        ref_len = _closest_length(len(seq), lengths[max(at - 1, 0) : at] + lengths[at + 1 : at + 2])
        scores.append(_bleu_score(matches, totals, len(seq), ref_len))
    scored = [score for score in scores if not math.isnan(score)]
    return math.fsum(scored) / len(scored) if scored else math.nan


def zipf_coefficient(sequences: Sequence[Sequence[Hashable]], top: int = 1000) -> float:
    """Zipf coefficient: minus the least-squares slope of log(count) on log(rank).

    Fitted over the ``top`` most frequent tokens of all ``sequences`` pooled, ranks 1, 2, ...
    in order of decreasing count, as in Holtzman et al. (2020). Human text is near 1;
    larger means a more peaked (less diverse) vocabulary. NaN with fewer than 2 distinct
    tokens.

    Examples
    --------
    >>> round(zipf_coefficient([[1] * 12 + [2] * 6 + [3] * 4 + [4] * 3]), 6)
    1.0
    """
    top = _order(top, "top", minimum=2)
    counts = Counter(t for seq in _sequences(sequences, "sequences") for t in seq)
    ranked = sorted(counts.values(), reverse=True)[:top]
    if len(ranked) < 2:
        return math.nan
    x = np.log(np.arange(1, len(ranked) + 1, dtype=np.float64))
    y = np.log(np.asarray(ranked, dtype=np.float64))
    x -= x.mean()
    return float(-(x @ (y - y.mean())) / (x @ x))


def perplexity(surprisals_nats: Sequence[float]) -> float:
    """Perplexity ``exp(mean surprisal)`` of per-token surprisals ``-log p`` in nats.

    NaN for no tokens; ``inf`` if a surprisal is ``inf`` (a token of probability 0).

    Examples
    --------
    >>> round(perplexity([math.log(4)] * 3), 12)
    4.0
    """
    try:
        values = [float(v) for v in surprisals_nats]
    except (TypeError, ValueError):
        raise InvalidInputError(
            f"surprisals_nats is {reprlib.repr(surprisals_nats)}: give numbers >= 0"
        ) from None
    bad = [i for i, v in enumerate(values) if not v >= 0]  # NaN fails every comparison
    if bad:
        raise InvalidInputError(
            f"surprisals_nats[{bad[0]}] is {values[bad[0]]}: surprisals are -log p, numbers >= 0"
        )
    try:
        return math.exp(math.fsum(values) / len(values)) if values else math.nan
    except OverflowError:
        return math.inf
