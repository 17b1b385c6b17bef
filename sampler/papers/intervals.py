"""95 % intervals over clusters (prompts, documents) for the reproductions' findings.

Clusters are the independent units: steps of one generation, or tokens of one document, share
its difficulty, so every interval resamples whole clusters. The methods are the reports'
(:mod:`sampler.report.bootstrap`): a ratio of sums over clusters gets its expanded percentile
bootstrap from 8 clusters on and ``R ± t se`` below; any other statistic of cluster weights
(a difference of two ratios, an interpolated curve) gets the expanded percentile bootstrap of
:func:`bootstrap_estimate`. Below 8 clusters an :class:`~sampler.papers.records.Estimate` says
so (``few_clusters``) and the writer prints the reports' warning.

Examples
--------
>>> rng = np.random.default_rng(0)
>>> estimate = ratio_estimate(np.array([4.0, 6.0, 5.0, 7.0]), np.ones(4), rng)
>>> estimate.value, estimate.clusters, estimate.few_clusters
(5.5, 4, True)
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from sampler.papers.records import Estimate
from sampler.report.bootstrap import (
    CONFIDENCE,
    RESAMPLES,
    expanded_tail,
    ratio_interval,
    resample_counts,
)

__all__ = ["bootstrap_estimate", "difference_estimate", "ratio_estimate", "ratio_of_weights"]

# a statistic of cluster weights: [R, G] weights (how often each cluster is drawn) -> [R]
Statistic = Callable[[np.ndarray], np.ndarray]


def ratio_estimate(
    numerators: np.ndarray,
    denominators: np.ndarray,
    rng: np.random.Generator,
    unit: str = "",
    bounds: tuple[float, float] = (-math.inf, math.inf),
) -> Estimate:
    """``Σ numerators / Σ denominators`` over clusters (``[G]`` each) with its interval.

    A cluster whose denominator is 0 has no value and is left out (as in the reports).
    """
    a, b = np.asarray(numerators, np.float64), np.asarray(denominators, np.float64)
    keep = b > 0
    value = float(a[keep].sum() / b[keep].sum()) if keep.any() else math.nan
    low, high = ratio_interval(a, b, rng, bounds=bounds)
    return Estimate(value, low, high, int(keep.sum()), unit)


def ratio_of_weights(numerators: np.ndarray, denominators: np.ndarray) -> Statistic:
    """The statistic ``Σ w a / Σ w b`` (``a, b`` ``[G]``) for :func:`bootstrap_estimate`."""
    a, b = np.asarray(numerators, np.float64), np.asarray(denominators, np.float64)

    def ratio(weights: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):  # no weight on a valued cluster
            return (weights @ a) / (weights @ b)

    return ratio


def bootstrap_estimate(
    statistic: Statistic,
    clusters: int,
    rng: np.random.Generator,
    unit: str = "",
    resamples: int = RESAMPLES,
    confidence: float = CONFIDENCE,
) -> Estimate:
    """The expanded percentile bootstrap interval of any statistic of cluster weights.

    ``statistic(weights)`` maps ``[R, G]`` weights to ``[R]`` values; the estimate is its value
    at weights of one (every cluster once). The tails are Hesterberg's expanded ones
    (:func:`~sampler.report.bootstrap.expanded_tail`); with fewer than 2 clusters the interval
    is NaN. Resamples whose statistic is NaN (a resample without any cluster that has a value)
    are left out (all of them: a NaN interval).
    """
    value = float(statistic(np.ones((1, clusters)))[0])
    if clusters < 2:
        return Estimate(value, math.nan, math.nan, clusters, unit)
    values = statistic(resample_counts(rng, clusters, resamples))
    values = values[~np.isnan(values)]
    if not values.size:
        return Estimate(value, math.nan, math.nan, clusters, unit)
    tail = expanded_tail(clusters, confidence)
    low, high = np.quantile(values, [tail, 1 - tail])
    return Estimate(value, float(low), float(high), clusters, unit)


def difference_estimate(
    before: tuple[np.ndarray, np.ndarray],
    after: tuple[np.ndarray, np.ndarray],
    rng: np.random.Generator,
    unit: str = "",
) -> Estimate:
    """``ratio(after) - ratio(before)`` over the same clusters (paired: one resample draws a
    cluster on both sides), each side ``(numerators [G], denominators [G])``; a cluster with a
    zero denominator on either side has no pair and is left out."""
    valued = (np.asarray(before[1]) > 0) & (np.asarray(after[1]) > 0)
    first = ratio_of_weights(*(np.asarray(part)[valued] for part in before))
    second = ratio_of_weights(*(np.asarray(part)[valued] for part in after))
    return bootstrap_estimate(
        lambda weights: second(weights) - first(weights), int(valued.sum()), rng, unit
    )
