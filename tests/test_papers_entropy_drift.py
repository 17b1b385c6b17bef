"""Entropy-drift experiment, run tiny on a synthetic source, against sums computed here.

The oracle reads the logged steps from the run log and recomputes the first finding (pooled
mean entropy over the last third of positions minus over the first third, pooled over
documents), and teacher-forces each human continuation alone for the second (log loss =
mean −log p of the true token, numpy float64). Same float64 values summed in another order:
agreement to 1e-9.
"""

from __future__ import annotations

import numpy as np
import pytest

from sampler.papers import entropy_drift
from sampler.papers.records import Options
from sampler.papers.texts import human_documents
from sampler.runlog.store import open_run_log
from sampler.sources.synthetic_spec import parse_synthetic


def test_a_tiny_run_matches_the_logged_steps_and_the_forced_text(tmp_path, monkeypatch):
    monkeypatch.setattr(entropy_drift, "DOCUMENTS", 3)
    monkeypatch.setattr(entropy_drift, "PREFIX", 4)
    monkeypatch.setattr(entropy_drift, "TOKENS", 12)
    source = parse_synthetic("synthetic:gaussian?vocab=300&seed=4")
    options = Options(db=str(tmp_path / "db.sqlite"))
    outcome = entropy_drift.run(options, source)
    drift, above, _ = (f.estimate for f in outcome.findings)
    store = open_run_log(options.db, create=False)
    pure = store.completions(outcome.runs[0])
    early = [s["entropy_final"] for c in pure for s in c["steps"] if s["step"] < 4]
    late = [s["entropy_final"] for c in pure for s in c["steps"] if 8 <= s["step"] < 12]
    # means of the logged float64 entropies (≤ log 300 ≈ 5.7) in another order: ≲ n u · 5.7
    assert drift.value == pytest.approx(np.mean(late) - np.mean(early), abs=1e-9)
    losses = []
    for document in human_documents(source, 3, 4 + 12):
        ids = document.context + document.targets
        logits, session = source.start([source.encode(source.decode(ids[:5]), False)])
        for position, token in enumerate(ids[5:]):
            x = logits[0].astype(np.float64)
            if position >= 8:
                losses.append(np.logaddexp.reduce(x) - x[token])
            logits = session.advance(np.array([token]))
    # the losses: a float64 log-sum-exp of 300 float32 logits on both sides, ≲ 300 u · |x|
    assert above.value == pytest.approx(np.mean(late) - np.mean(losses), abs=1e-9)
    assert drift.clusters == 3 and drift.few_clusters
    assert all(len(c["steps"]) == 12 for c in pure)  # no EOS here: every position counts
