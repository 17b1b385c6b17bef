"""Entropy: of probabilities, and of a softmax straight from its logits (one helper for both).

Entropy is in nats unless a base is asked for, with ``0 · log 0 = 0``. From logits it is
``H = log Z - Σ p_i y_i``: no logarithm of a probability is taken, so tokens whose probability
underflows still count exactly. :func:`entropy_from_weights` is the one place the project
computes an entropy from logits; the engine's filters, step statistics and traces call it.

Examples
--------
>>> round(float(softmax_entropy([3.0, 1.0, 0.2])), 6)
0.547737
>>> float(entropy([0.5, 0.5], base="bits"))
1.0
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike

from sampler.errors import InvalidInputError
from sampler.softmax import scaled_logits

__all__ = [
    "Normalized",
    "entropy",
    "entropy_from_weights",
    "normalize",
    "row_dot",
    "row_softmax_sums",
    "scratch",
    "softmax_entropy",
    "weight_sums",
    "weighted_sum",
]

EntropyBase = Literal["nats", "bits"] | float


@dataclass(frozen=True)
class Normalized:
    """A softmax over the last axis held as its pieces, from one exponential pass.

    ``shifted = x - peak``, ``weights = exp(shifted)``, ``total = Σ weights`` (float64), and
    the entropy in nats. ``log p = shifted - log_total``; ``log Z = peak + log_total``.
    """

    peak: np.ndarray
    shifted: np.ndarray
    weights: np.ndarray
    total: np.ndarray
    entropy: np.ndarray

    @property
    def log_total(self) -> np.ndarray:
        return np.log(self.total)

    @property
    def log_z(self) -> np.ndarray:
        """``log Σ exp(x)`` per row, in the logits' dtype."""
        return (self.peak + self.log_total).astype(self.shifted.dtype)


def weighted_sum(weights: np.ndarray, values: np.ndarray) -> np.ndarray:
    """``Σ_j w_j v_j`` over the last axis in float64, with ``0 · (-inf) = 0``."""
    with np.errstate(invalid="ignore"):  # 0 · (-inf) is NaN here; those rows are redone
        sums = (weights * values).sum(axis=-1, dtype=np.float64)
    bad = np.isnan(sums)
    if bad.any() and sums.ndim == 0:
        kept = weights > 0
        return np.multiply(weights, values, out=np.zeros_like(weights), where=kept).sum(
            dtype=np.float64
        )
    if bad.any():  # only rows with masked tokens: redo them with the 0·log 0 convention
        kept = weights[bad] > 0
        masked = np.multiply(weights[bad], values[bad], out=np.zeros_like(weights[bad]), where=kept)
        sums[bad] = masked.sum(axis=-1, dtype=np.float64)
    return sums


def row_dot(
    weights: np.ndarray, values: np.ndarray, product: np.ndarray, in_float64: bool = True
) -> float:
    """``Σ_j w_j v_j`` of one row, ``0 · (-inf) = 0``; ``product`` is scratch.

    Products in the row's dtype, summed pairwise: in float64 by default, the same numbers as
    :func:`weighted_sum` on that row, so a row's result does not depend on the path or the
    batch that computed it; with ``in_float64=False``, in the row's dtype (see
    :func:`weight_sums`). (BLAS's dot is not used: its float32 dot accumulates in float32 in
    an order of its own.)
    """
    accumulator = np.float64 if in_float64 else None
    with np.errstate(invalid="ignore"):
        np.multiply(weights, values, out=product)
    result = float(product.sum(dtype=accumulator))
    if math.isnan(result):  # a masked token (0 · -inf): sum over the positive weights only
        np.multiply(weights, values, out=product, where=weights > 0)
        np.copyto(product, 0, where=weights <= 0)
        result = float(product.sum(dtype=accumulator))
    return result


def weight_sums(
    weights: np.ndarray, shifted: np.ndarray, product: np.ndarray, top: int | None = None
) -> tuple[float, float]:
    """``(Σ w, Σ w · shifted)`` of one row, ``w = exp(shifted)``; ``product`` is scratch.

    Without ``top``: float64 sums (what the filters use: a draw must not depend on float32
    rounding). With ``top``, the column of the row's maximum, where ``w = 1`` exactly:
    pairwise sums in the row's dtype, about 3× cheaper on float32 rows, with that 1 added
    in float64. The relative error stays near the dtype's epsilon (about 1e-7 in float32)
    however peaked the row: a row whose tail holds 1e-9 of the mass keeps its entropy to
    seven digits, where a float32 sum of all the weights would round the tail away. Step
    statistics use this.
    """
    if top is None:
        return float(weights.sum(dtype=np.float64)), row_dot(weights, shifted, product)
    total = 1.0 + float(weights[:top].sum()) + float(weights[top + 1 :].sum())
    return total, row_dot(weights, shifted, product, in_float64=False)


def row_softmax_sums(
    row: np.ndarray,
    peak: float,
    shifted: np.ndarray,
    weights: np.ndarray,
    product: np.ndarray,
    top: int | None = None,
) -> tuple[float, float]:
    """For one row: ``shifted = row - peak``, ``weights = exp(shifted)`` (written into the
    buffers given; ``product`` is scratch), and :func:`weight_sums` of them (``top``: the
    column of the maximum, for the cheaper sums). A row whose peak is 0 is used as its own
    ``shifted``, which is then not written.

    One row at a time, so that its passes run in the CPU's cache: over a batch of 150k-token
    rows this is about 3× faster than whole-batch array operations.
    """
    if peak == 0:
        shifted = row  # already shifted (the temperature stage's output): no copy
    else:
        with np.errstate(over="ignore"):  # a spread beyond the dtype: -inf, weight 0
            np.subtract(row, row.dtype.type(peak), out=shifted)
    np.exp(shifted, out=weights)
    return weight_sums(weights, shifted, product, top)


_scratch = threading.local()


def scratch(owner: str, count: int, width: int, dtype: np.dtype) -> list[np.ndarray]:
    """``count`` distinct work rows of ``width`` elements for ``owner``, reused by its later
    calls on the same thread (two owners never share one).

    A fresh 200 kB array is mapped from the kernel and page-faulted on every call, which at
    batch 1 cost more than the arithmetic; these stay mapped. Never return them to a caller.
    """
    key = (owner, width, np.dtype(dtype).str)
    pool: dict[tuple[str, int, str], list[np.ndarray]] = getattr(_scratch, "pool", None) or {}
    _scratch.pool = pool
    rows = pool.get(key, [])
    if len(rows) < count:
        rows = rows + [np.empty(width, dtype) for _ in range(count - len(rows))]
        pool[key] = rows
    return rows[:count]


# Below this many columns whole-batch operations are cheaper than a loop over rows.
_ROW_LOOP_WIDTH = 4096


def entropy_from_weights(weights: np.ndarray, shifted: np.ndarray, total: np.ndarray) -> np.ndarray:
    """The entropy of ``softmax(x)`` from ``shifted = x - c``, ``exp(shifted)`` and their sum.

    ``H = log Z - Σ p_i y_i`` needs no logarithm of a probability, so tokens whose probability
    underflows still count exactly (their ``p_i y_i`` is 0 to working precision). This is the
    one place the project computes an entropy from logits.
    """
    return np.log(total) - weighted_sum(weights, shifted) / total


def normalize(logits: np.ndarray, peak: np.ndarray | None = None) -> Normalized:
    """:class:`Normalized` pieces of ``softmax(logits)`` over the last axis (no validation).

    ``peak`` is the row maximum when the caller already has it.
    """
    peak = logits.max(axis=-1) if peak is None else np.asarray(peak)
    width = logits.shape[-1]
    if width < _ROW_LOOP_WIDTH or logits.ndim == 0:
        with np.errstate(over="ignore"):  # a spread beyond the dtype: -inf, weight 0
            shifted = logits - peak[..., None].astype(logits.dtype)
        weights = np.exp(shifted)
        total = weights.sum(axis=-1, dtype=np.float64)
        entropy = entropy_from_weights(weights, shifted, total)
        return Normalized(peak, shifted, weights, total, entropy)
    rows = np.ascontiguousarray(logits).reshape(-1, width)
    flat_peak = peak.reshape(-1)
    shifted, weights = np.empty_like(rows), np.empty_like(rows)
    (product,) = scratch("normalize", 1, width, rows.dtype)
    total, weighted = np.empty(len(rows)), np.empty(len(rows))
    for i, row in enumerate(rows):
        total[i], weighted[i] = row_softmax_sums(
            row, flat_peak[i], shifted[i], weights[i], product
        )
    shape = logits.shape[:-1]
    total, weighted = total.reshape(shape), weighted.reshape(shape)
    entropy = np.log(total) - weighted / total
    return Normalized(
        peak, shifted.reshape(logits.shape), weights.reshape(logits.shape), total, entropy
    )


def softmax_entropy(logits: ArrayLike, temperature: float | ArrayLike = 1.0) -> np.ndarray:
    """Entropy in nats of ``softmax(logits, temperature)``, as ``log Z - Σ p_i y_i``.

    See :func:`entropy_from_weights`. Masked tokens contribute 0 (``0 · log 0 = 0``).
    """
    y = scaled_logits(logits, temperature)
    return normalize(y, np.zeros(y.shape[:-1], dtype=y.dtype)).entropy


def entropy(probs: ArrayLike, base: EntropyBase = "nats") -> np.ndarray:
    """Shannon entropy ``-Σ p_i log p_i`` over the last axis, with ``0 · log 0 = 0``.

    Parameters
    ----------
    probs
        Probabilities (each row should sum to 1; this is not renormalised).
    base
        ``"nats"`` (natural log), ``"bits"`` (log base 2), or a positive number as log base.

    Examples
    --------
    >>> float(entropy([0.5, 0.5], base="bits"))
    1.0
    """
    p = np.asarray(probs, dtype=np.result_type(np.asarray(probs).dtype, np.float32))
    if np.isnan(p).any() or (p < 0).any():
        raise InvalidInputError("probabilities must be non-negative numbers (found NaN or < 0)")
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0)
    nats = 0.0 - terms.sum(axis=-1)  # not -sum: a certain outcome has entropy 0.0, not -0.0
    if base == "nats":
        return nats
    if base == "bits":
        return nats / math.log(2)
    if isinstance(base, int | float) and base > 1:
        return nats / math.log(base)
    raise InvalidInputError(f"entropy base {base!r} is invalid: use 'nats', 'bits' or a number > 1")
