"""η-sampling experiment: cuts and kept-set sizes against the rules transcribed from the papers.

The oracle teacher-forces each document alone through the synthetic source and applies each
rule to ``p = softmax(logits)`` (τ = 1) with numpy: top-k keeps the k largest; top-p the
shortest prefix by probability whose mass reaches p (Holtzman et al.); min-p ``p >= m p_max``
(Nguyen et al.); ε ``p >= ε`` and η ``p >= min(η, √η e^{-H})`` (Hewitt et al. eq. 4-5), each
keeping the most likely token when nothing passes; typical the shortest run of tokens ranked by
``|-log p - H|`` whose mass reaches the value (Meister et al.); top-nσ ``x >= max - n σ``. The
logits are float32 draws with no ties at a boundary, so counts must agree exactly.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from sampler.papers.texts import Document
from sampler.papers.truncation_cuts import count_cuts, share_at_size
from sampler.sources.synthetic_spec import parse_synthetic

GRIDS = {
    "top_k": (50, 5),
    "top_p": (0.95, 0.5),
    "min_p": (0.01, 0.2),
    "epsilon": (1e-3, 2e-2),
    "eta": (1e-3, 2e-2),
    "typical_p": (0.9, 0.5),
    "top_n_sigma": (2.0, 0.5),
}


def _prefix_reaching(probs_in_order: np.ndarray, mass: float) -> int:
    above = np.cumsum(probs_in_order) - probs_in_order
    return int((above < mass).sum())


def _kept_mask(name: str, value: float, logits: np.ndarray) -> np.ndarray:
    probs = np.exp(logits - logits.max())
    probs /= probs.sum()
    entropy = -(probs * np.log(probs)).sum()
    keep = np.zeros(len(probs), dtype=bool)
    if name == "top_k":
        keep[np.argsort(-probs)[: int(value)]] = True
    elif name == "top_p":
        order = np.argsort(-probs)
        keep[order[: _prefix_reaching(probs[order], value)]] = True
    elif name == "typical_p":
        order = np.argsort(np.abs(-np.log(probs) - entropy))
        keep[order[: _prefix_reaching(probs[order], value)]] = True
    elif name == "min_p":
        keep = probs >= value * probs.max()
    elif name in ("epsilon", "eta"):
        floor = value if name == "epsilon" else min(value, math.sqrt(value) * math.exp(-entropy))
        keep = probs >= min(floor, probs.max())
    else:
        keep = logits >= logits.max() - value * logits.std()
    return keep


def test_count_cuts_matches_each_rule_applied_to_each_document_alone():
    source = parse_synthetic("synthetic:markov?vocab=300&seed=5")
    texts = ["kalo mesu tira vone pali suke ropa", "mesu ropa lina kalo", "tira bemo sa nu ki lo"]
    documents = []
    for i, text in enumerate(texts):
        ids = source.encode(text, False)
        documents.append(Document(f"d{i}", ids[:1], ids[1:]))
    counts = count_cuts(source, documents, GRIDS)
    cut, kept = np.zeros_like(counts.cut), np.zeros_like(counts.kept)
    for g, document in enumerate(documents):
        logits, session = source.start([document.context])
        for token in document.targets:
            row = logits[0].astype(np.float64)
            for s, (name, value) in enumerate(counts.settings):
                mask = _kept_mask(name, value, row)
                kept[s, g] += mask.sum()
                cut[s, g] += not mask[token]
            logits = session.advance(np.array([token]))
    np.testing.assert_array_equal(counts.kept, kept)
    np.testing.assert_array_equal(counts.cut, cut)
    assert counts.steps.tolist() == [len(d.targets) for d in documents]
    assert cut.sum() > 0  # the strict settings do cut true tokens here: the test has teeth


def test_share_at_size_interpolates_in_log_size_and_refuses_to_extrapolate():
    sizes, shares = np.array([100.0, 10.0, 1.0]), np.array([0.0, 0.2, 0.6])
    # halfway between 10 and 100 in log size is √1000
    assert share_at_size(sizes, shares, math.sqrt(1000)) == pytest.approx(0.1)
    assert share_at_size(sizes, shares, 10.0) == pytest.approx(0.2)
    assert math.isnan(share_at_size(sizes, shares, 1000.0))
