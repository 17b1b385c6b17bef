"""Student's t distribution with integer degrees of freedom, in numpy alone.

``import sampler`` needs only numpy, so the reports cannot lean on scipy; integer degrees of
freedom (prompts - 1) are all they need, and for those the distribution function is a finite
series (Abramowitz & Stegun 26.7.3 and 26.7.4), exact up to rounding.

Examples
--------
>>> round(float(two_sided_p(2.776445, 4)), 6)  # the 97.5 % point of t(4)
0.05
>>> round(critical_value(0.95, 4), 6)
2.776445
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["critical_value", "two_sided_p"]


def two_sided_p(t: np.ndarray | float, df: int) -> np.ndarray:
    """``P(|T| >= |t|)`` for Student's t with an integer ``df >= 1``; ``t = ±inf`` gives 0.

    In ``θ = atan(|t| / √df)``, ``P(|T| < |t|)`` is ``(2/π)(θ + sin θ cos θ Σ)`` for odd
    ``df`` and ``sin θ Σ`` for even ``df``, each ``Σ`` a finite series in ``cos² θ``.
    """
    theta = np.arctan(np.abs(np.asarray(t, np.float64)) / math.sqrt(df))
    cos2 = np.cos(theta) ** 2
    term, series = np.ones_like(theta), np.ones_like(theta)
    if df % 2:
        for k in range(1, (df - 1) // 2):
            term = term * (2 * k) / (2 * k + 1) * cos2
            series = series + term
        inside = theta + (np.sin(theta) * np.cos(theta) * series if df > 1 else 0.0)
        within = 2 / math.pi * inside
    else:
        for k in range(1, df // 2):
            term = term * (2 * k - 1) / (2 * k) * cos2
            series = series + term
        within = np.sin(theta) * series
    return np.clip(1.0 - within, 0.0, 1.0)


def critical_value(confidence: float, df: int) -> float:
    """The ``t`` with ``P(|T| < t) = confidence``: a two-sided interval's half-width in se.

    Bisection on :func:`two_sided_p`, which falls as ``t`` grows, to float precision.
    """
    low, high = 0.0, 1.0
    while two_sided_p(high, df) > 1 - confidence:
        low, high = high, 2 * high
    for _ in range(200):
        middle = (low + high) / 2
        if middle in (low, high):
            break
        if two_sided_p(middle, df) > 1 - confidence:
            low = middle
        else:
            high = middle
    return high
