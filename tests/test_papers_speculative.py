"""The speculative-decoding reproduction: exact acceptance along texts, checked against
``1 - TV`` written out here from the engine's own distributions position by position, the
kept-mass identity of a truncated draft, the joint-law enumeration, and a tiny run on two
synthetic sources (one drafting for the other) whose sampler must match the exact values."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from sampler import SamplingParams, distribution
from sampler.analysis.speculative import SpeculativeRun
from sampler.analysis.speculative_checks import joint_law, output_law_test
from sampler.papers.records import Options
from sampler.papers.speculative import make_pairs, run, sampler_findings
from sampler.papers.speculative_acceptance import acceptance_along
from sampler.papers.texts import Document
from sampler.sources.synthetic_spec import parse_synthetic

ALPHA = 0.001  # a correct sampler's chi-square p-value falls below this with chance 0.1 %


def _sources():
    target = parse_synthetic("synthetic:markov?vocab=80&seed=5")
    draft = parse_synthetic("synthetic:markov?vocab=80&seed=5&sharpness=1.4")
    return draft, target


def _probabilities(source, context, params):
    logits, _ = source.start([list(context)])
    return distribution(logits[0].astype(np.float64), params)


def test_exact_acceptance_along_texts_is_one_minus_total_variation():
    draft, target = _sources()
    documents = [Document("a", [0], [3, 9, 4, 1]), Document("b", [7, 2], [5, 5])]
    pairs = make_pairs(draft, target)
    temperatures = [0.5, 1.5]
    out = acceptance_along(pairs, temperatures, [(draft, documents), (target, documents)])
    for pair in pairs:
        for t, temperature in enumerate(temperatures):
            draft_params, target_params = pair.params(temperature)
            for d, document in enumerate(documents):
                for position in range(4):
                    value = out[pair.name][t, d, position]
                    if position >= len(document.targets):
                        assert np.isnan(value)
                        continue
                    context = [*document.context, *document.targets[:position]]
                    q = _probabilities(pair.draft, context, draft_params)
                    p = _probabilities(pair.target, context, target_params)
                    # float32 logits, float64 laws here and there: sums of 80 terms ≤ 1, so
                    # ≤ 80 u ≈ 1e-14 apart
                    assert value == pytest.approx(1 - 0.5 * np.abs(p - q).sum(), abs=1e-12)


def test_a_top_k_draft_on_one_model_is_accepted_with_its_kept_mass():
    draft, target = _sources()
    documents = [Document("a", [0], [3, 9, 4])]
    pair = next(p for p in make_pairs(draft, target) if "top-k 20 drafts" in p.name)
    out = acceptance_along([pair], [0.7], [(draft, documents), (target, documents)])
    for position in range(3):
        p = _probabilities(
            target, [0, *documents[0].targets[:position]], SamplingParams(temperature=0.7)
        )
        # float64 laws, sums of ≤ 80 terms: ≤ 80 u apart (as above)
        assert out[pair.name][0, 0, position] == pytest.approx(np.sort(p)[-20:].sum(), abs=1e-12)


def test_joint_law_lists_every_likely_sequence_with_its_product():
    _, target = _sources()
    from sampler.analysis.speculative import source_law

    law = source_law(target, SamplingParams())
    out = joint_law(law, (0,), 2, 0.01)
    for (a, b), value in out.items():
        p1 = _probabilities(target, [0], SamplingParams())
        p2 = _probabilities(target, [0, a], SamplingParams())
        # a product of two float64 probabilities, each ≤ 80 u off: ≤ 160 u relative
        assert value == pytest.approx(p1[a] * p2[b], rel=1e-12) and value >= 0.01
    p1 = _probabilities(target, [0], SamplingParams())
    missing = [
        (a, b)
        for a, b in itertools.product(np.flatnonzero(p1 >= 0.01), range(80))
        if p1[a] * _probabilities(target, [0, a], SamplingParams())[b] >= 0.0101
        and (a, b) not in out
    ]
    assert missing == []


def test_the_sampler_on_synthetic_sources_follows_the_target():
    draft, target = _sources()
    from sampler.analysis.speculative import source_law

    rng = np.random.default_rng(9)
    goal = source_law(target, SamplingParams(temperature=1.2))
    guess = source_law(draft, SamplingParams(temperature=1.2, top_k=10))
    test, total = output_law_test(goal, guess, (0,), 3, 2, 3000, rng)
    assert test.p_value > ALPHA and test.cells > 20
    assert 0.3 < total.accepted / total.checked < 0.95  # the residual is exercised


def test_sampler_findings_compare_accepted_with_expected_per_prompt():
    runs = {
        "x": [
            SpeculativeRun([1] * 5, 2, 10, 9, 8.5, 0.7),
            SpeculativeRun([1] * 4, 2, 8, 6, 6.5, 1.0),
        ]
    }
    findings, table = sampler_findings(runs, np.random.default_rng(0))
    # a ratio of small float64 sums: approx's default 1e-6 only absorbs their ulps
    assert findings[0].estimate.value == pytest.approx((9 - 8.5 + 6 - 6.5) / 18)
    z = (15 - 15.0) / np.sqrt(1.7)
    assert table.rows[0][4] == f"{z:+.2f}" and table.rows[0][6] == f"{9 / 4:.2f}"


def test_a_tiny_run_on_a_synthetic_source(tmp_path: Path):
    source = parse_synthetic("synthetic:gaussian?vocab=300&seed=6")
    options = Options(source=source, db=str(tmp_path / "runs.db"), seed=1)
    outcome = run(options, source)
    # the source drafts for itself (no torch twin): every acceptance is exactly 1
    rates = [f for f in outcome.findings if "measured minus exact" in f.statement]
    assert rates and all(f.estimate.value == pytest.approx(0, abs=1e-12) for f in rates)
    assert all(f.verdict == "reproduced" for f in outcome.findings[: len(rates)])
    assert len(outcome.runs) == 1 and outcome.figures[0].file_name == "speculative_acceptance.png"
