"""Typical-sampling experiment: surprisal − entropy against the definitions, computed here.

The oracle teacher-forces each document alone and computes, with numpy in float64,
``-log p[true] - H`` and ``-log max p - H`` from ``p = softmax(logits)``, ``H = -Σ p log p``
(Meister et al. eq. 5). Both are sums of a few float64 operations on the same float32 logits,
so they agree to 1e-9 nats (rounding of a 300-term sum is ~1e-13).
"""

from __future__ import annotations

import numpy as np

from sampler.papers.texts import Document
from sampler.papers.typical import human_deviations
from sampler.sources.synthetic_spec import parse_synthetic


def test_human_deviations_match_surprisal_minus_entropy_per_document():
    source = parse_synthetic("synthetic:markov?vocab=300&seed=7")
    texts = ["kalo mesu tira vone pali", "mesu ropa lina kalo suke bemo", "tira bemo"]
    documents = []
    for i, text in enumerate(texts):
        ids = source.encode(text, False)
        documents.append(Document(f"d{i}", ids[:1], ids[1:]))
    human, greedy = human_deviations(source, documents)
    for g, document in enumerate(documents):
        logits, session = source.start([document.context])
        expected_human, expected_greedy = [], []
        for token in document.targets:
            x = logits[0].astype(np.float64)
            p = np.exp(x - x.max())
            p /= p.sum()
            entropy = -(p * np.log(p)).sum()
            expected_human.append(-np.log(p[token]) - entropy)
            expected_greedy.append(-np.log(p.max()) - entropy)
            logits = session.advance(np.array([token]))
        # float64 from the same float32 logits on both sides: sums of the vocabulary's terms
        # (≤ 300 u · max|log p|), well under 1e-9
        np.testing.assert_allclose(human[g], expected_human, atol=1e-9)
        np.testing.assert_allclose(greedy[g], expected_greedy, atol=1e-9)
        assert (greedy[g] <= human[g] + 1e-12).all()  # greedy's token is the least surprising
