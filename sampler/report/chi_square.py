"""Pearson's chi-square goodness-of-fit test, in numpy alone.

``import sampler`` needs only numpy (scipy is a test dependency), so the survival function of
the chi-square law is written out: for ``k`` degrees of freedom it is the regularised upper
incomplete gamma ``Q(k/2, x/2)``, a finite sum for every integer ``k`` (Abramowitz & Stegun
26.4.4 and 26.4.5): ``e^{-x/2} Σ_{i<k/2} (x/2)^i / i!`` for even ``k``, and
``erfc(√(x/2)) + e^{-x/2} Σ_{i=1}^{(k-1)/2} (x/2)^{i-1/2} / Γ(i+1/2)`` for odd ``k``. The terms
are summed in logs, so hundreds of degrees of freedom neither overflow nor underflow early.

Examples
--------
>>> round(chi_square_sf(3.841459, 1), 6)  # the 95 % point of chi-square(1)
0.05
>>> result = goodness_of_fit({"a": 0.5, "b": 0.5}, {"a": 40, "b": 60})
>>> result.dof, round(result.statistic, 3), round(result.p_value, 4)
(1, 4.0, 0.0455)
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping
from dataclasses import dataclass

import numpy as np

__all__ = ["MIN_EXPECTED", "ChiSquare", "chi_square_sf", "goodness_of_fit"]

# Cochran's rule: the chi-square law approximates Pearson's statistic well when every
# expected count is at least 5; rarer cells are pooled into one.
MIN_EXPECTED = 5.0


def chi_square_sf(statistic: float, dof: int) -> float:
    """``P(X >= statistic)`` for ``X ~ chi-square(dof)``, ``dof >= 1`` an integer."""
    if dof < 1:
        raise ValueError(f"dof={dof} must be at least 1")
    if statistic <= 0:
        return 1.0
    half = statistic / 2
    if dof % 2 == 0:
        powers = np.arange(dof // 2, dtype=np.float64)
        logs = powers * math.log(half) - np.array([math.lgamma(i + 1) for i in powers])
        head = 0.0
    else:
        powers = np.arange(1, (dof - 1) // 2 + 1, dtype=np.float64) - 0.5
        logs = powers * math.log(half) - np.array([math.lgamma(i + 1) for i in powers])
        head = math.erfc(math.sqrt(half))
    if logs.size == 0:
        return min(1.0, head)
    peak = float(logs.max())
    tail = math.exp(peak - half) * float(np.exp(logs - peak).sum())
    return min(1.0, head + tail)


@dataclass(frozen=True)
class ChiSquare:
    """A goodness-of-fit test: the statistic, its degrees of freedom, the p-value, the cells."""

    statistic: float
    dof: int
    p_value: float
    cells: int  # cells tested, the pooled one included
    samples: int


def goodness_of_fit(
    probabilities: Mapping[Hashable, float],
    counts: Mapping[Hashable, int],
    min_expected: float = MIN_EXPECTED,
) -> ChiSquare:
    """Pearson's test of observed ``counts`` against a law given by ``probabilities``.

    Parameters
    ----------
    probabilities
        The law's probability of each outcome listed; what they leave (``1 - Σ``) is the
        probability of every other outcome together.
    counts
        How often each outcome was observed; an outcome not in ``probabilities`` counts
        towards "every other outcome".
    min_expected
        Outcomes expected fewer times than this are pooled with the unlisted ones into one
        cell (chosen from the law alone, never from the counts, so the test keeps its size).

    Returns
    -------
    ChiSquare
        With ``dof = cells - 1``; ``p_value`` is 1 when fewer than two cells remain.
    """
    samples = int(sum(counts.values()))
    kept = [key for key, p in probabilities.items() if p * samples >= min_expected]
    expected = [probabilities[key] * samples for key in kept]
    observed = [counts.get(key, 0) for key in kept]
    rest_expected = samples - sum(expected)
    rest_observed = samples - sum(observed)
    # The pooled cell stands alone when it is expected often enough; else it joins the last
    # listed cell (decided from the law alone, so the cells never depend on the counts).
    if rest_expected >= min_expected or not expected:
        expected.append(rest_expected)
        observed.append(rest_observed)
    else:
        expected[-1] += rest_expected
        observed[-1] += rest_observed
    cells = len(expected)
    if cells < 2:
        return ChiSquare(0.0, 0, 1.0, cells, samples)
    exp = np.asarray(expected, np.float64)
    statistic = float((((np.asarray(observed, np.float64) - exp) ** 2) / exp).sum())
    return ChiSquare(statistic, cells - 1, chi_square_sf(statistic, cells - 1), cells, samples)
