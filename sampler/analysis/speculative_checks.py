"""Checking a speculative sampler against the exact laws: does its output follow the target?

:func:`joint_law` chains a law's conditionals into the exact probability of every sequence of
``length`` tokens likely enough to be tested; :func:`output_law_test` runs speculative sampling
from one context many times and tests the sequences it emits against that law with Pearson's
chi-square (:mod:`sampler.analysis.chi_square`). The cells are chosen from the target law alone
(every listed sequence, and one cell for all the others; cells expecting fewer than 5 runs
are pooled by :func:`sampler.engine.verify.chi_square`, the test ``sampler verify`` runs),
never from the counts, so a correct sampler fails at the test's nominal rate and no more.

Examples
--------
>>> law = lambda context: np.log([0.5, 0.3, 0.2])
>>> pairs = joint_law(law, (), 2, 0.05)  # (2, 2) has 0.04: below the floor
>>> len(pairs), round(pairs[(0, 1)], 3), (2, 2) in pairs
(8, 0.15, False)
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from sampler.analysis.speculative import Law, SpeculativeRun, speculative_generate
from sampler.engine.verify import chi_square

__all__ = ["LawTest", "joint_law", "output_law_test"]

# Listed sequences are those expected at least this many times (the chi-square rule of thumb).
MIN_EXPECTED = 5


class LawTest(NamedTuple):
    """Pearson's chi-square of the emitted sequences against the target's joint law."""

    statistic: float
    p_value: float
    cells: int  # after pooling
    runs: int


def joint_law(
    law: Law, context: Sequence[int], length: int, min_probability: float
) -> dict[tuple[int, ...], float]:
    """Every continuation of ``length`` tokens whose probability under ``law`` is at least
    ``min_probability``, with that probability (the product of its conditionals).

    A prefix below ``min_probability`` is not extended (its continuations are rarer still),
    so this asks ``law`` about at most ``length / min_probability`` contexts.
    """
    level: dict[tuple[int, ...], float] = {(): 1.0}
    for _ in range(length):
        deeper: dict[tuple[int, ...], float] = {}
        for prefix, probability in level.items():
            joint = probability * np.exp(law((*context, *prefix)))
            for token in np.flatnonzero(joint >= min_probability):
                deeper[(*prefix, int(token))] = float(joint[token])
        level = deeper
    return level


def output_law_test(
    target: Law,
    draft: Law,
    context: Sequence[int],
    k: int,
    length: int,
    runs: int,
    rng: np.random.Generator,
) -> tuple[LawTest, SpeculativeRun]:
    """Run speculative sampling ``runs`` times from ``context`` for ``length`` tokens; test
    the emitted sequences against the target's exact joint law.

    Returns the test and every run's counts folded together (its acceptances, for
    :func:`~sampler.analysis.speculative.acceptance_z`).
    """
    counts: Counter[tuple[int, ...]] = Counter()
    total = SpeculativeRun()
    for _ in range(runs):
        run = speculative_generate(target, draft, context, length, k, rng)
        counts[tuple(run.tokens)] += 1
        total.add(run)
    total.tokens = []  # the sequences are in the counts
    law = joint_law(target, context, length, MIN_EXPECTED / runs)
    listed = list(law)
    # the last cell: every sequence not listed (rarer than MIN_EXPECTED runs each)
    probabilities = np.array([law[s] for s in listed] + [max(0.0, 1.0 - sum(law.values()))])
    observed = np.array([counts.get(s, 0) for s in listed], dtype=np.float64)
    observed = np.append(observed, runs - observed.sum())
    statistic, p_value, cells = chi_square(observed, probabilities)
    return LawTest(statistic, p_value, cells, runs), total
