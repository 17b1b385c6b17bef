"""Top-nσ experiment: its kept-set sums against the rules transcribed here from their papers.

The oracle teacher-forces each document alone (no batch) through the synthetic source and
counts with numpy: top-nσ keeps ``x >= max - n σ`` (σ the population standard deviation,
Tang et al. Algorithm 1), top-p the shortest prefix by probability whose mass reaches p (the
crossing token kept), min-p ``p >= min_p p_max``. The logits are float32 draws with no ties
near a boundary, so the counts must agree exactly.
"""

from __future__ import annotations

import numpy as np

from sampler.papers.texts import Document
from sampler.papers.top_n_sigma import controlled_kept
from sampler.sources.synthetic_spec import parse_synthetic

RULES = (("top_n_sigma", 1.0), ("top_p", 0.9), ("min_p", 0.1))
TEMPERATURES = (0.5, 1.0, 3.0)


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max())
    return e / e.sum()


def _oracle_count(name: str, value: float, logits: np.ndarray, tau: float) -> int:
    if name == "top_n_sigma":
        return int((logits >= logits.max() - value * logits.std()).sum())
    probs = _softmax(logits / tau)
    if name == "min_p":
        return int((probs >= value * probs.max()).sum())
    ordered = np.sort(probs)[::-1]
    above = np.cumsum(ordered) - ordered
    return int((above < value).sum())


def test_controlled_kept_matches_the_rules_computed_one_document_at_a_time():
    source = parse_synthetic("synthetic:markov?vocab=300&seed=3")
    documents = [
        Document(f"d{i}", source.encode(words, False)[:1], source.encode(words, False)[1:])
        for i, words in enumerate(
            ["kalo mesu tira vone pali suke", "mesu mesu ropa lina", "tira kalo bemo sa nu ki"]
        )
    ]
    sums, steps = controlled_kept(source, documents, RULES, TEMPERATURES)
    assert steps.tolist() == [len(d.targets) for d in documents]
    expected = np.zeros_like(sums)
    for g, document in enumerate(documents):
        logits, session = source.start([document.context])
        for token in document.targets:
            row = logits[0].astype(np.float64)
            for r, (name, value) in enumerate(RULES):
                for t, tau in enumerate(TEMPERATURES):
                    expected[r, t, g] += _oracle_count(name, value, row, tau)
            logits = session.advance(np.array([token]))
    np.testing.assert_array_equal(sums, expected)
    # the claim, on this source: top-nσ's sum is the same at every τ, top-p's grows
    assert (sums[0] == sums[0, :1]).all() and (np.diff(sums[1].sum(axis=1)) > 0).all()
