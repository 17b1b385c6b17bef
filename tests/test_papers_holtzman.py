"""Holtzman experiment: its paired differences against per-prompt sums computed here.

The oracle reads the logged steps itself: the log perplexity under the base model of a
temperature is Σ surprisal_base / Σ steps over all rows of all prompts (the reports'
definition, a ratio of sums), and the finding is its difference between two temperatures.
Sums of the same float64 values in another order agree to 1e-12.
"""

from __future__ import annotations

import numpy as np
import pytest

from sampler.papers.generations import logged_run
from sampler.papers.holtzman import column_difference
from sampler.papers.records import Options
from sampler.report.prompt_sums import fold
from sampler.sources.synthetic_spec import parse_synthetic


def test_the_log_perplexity_difference_is_the_difference_of_pooled_means(tmp_path):
    source = parse_synthetic("synthetic:markov?vocab=200&seed=2")
    options = Options(db=str(tmp_path / "db.sqlite"))
    prompts = ["kalo mesu", "tira vone", "pali suke ropa"]
    _, completions = logged_run(options, source, prompts, [0.5, 1.5], 2, 12)
    by_temperature = {sums.temperature: sums for sums in fold(completions)}
    estimate = column_difference(
        by_temperature[0.5], by_temperature[1.5], "ppl_base", np.random.default_rng(0)
    )

    def pooled(tau: float) -> float:
        steps = [s for c in completions if c["temperature"] == tau for s in c["steps"]]
        return sum(s["surprisal_base"] for s in steps) / len(steps)

    # float64 means of the logged surprisals in another order: ulps
    assert estimate.value == pytest.approx(pooled(1.5) - pooled(0.5), abs=1e-12)
    assert estimate.clusters == 3 and estimate.few_clusters
    assert estimate.value > 0  # hotter text is less likely under the model
