"""Exact, numerically stable softmax with temperature, and its relatives.

Everything here is pure numpy, batched over the last axis, and keeps float32 or float64 as
given (other inputs become float64). Logits may be any finite number or ``-inf`` (a masked
token); NaN, ``+inf`` and rows that are entirely ``-inf`` are rejected with
:class:`~sampler.errors.InvalidInputError`.

The two limits of temperature are handled exactly rather than approximately:

* ``temperature = 0`` is the τ → 0 limit, :func:`hardmax` (uniform over the tied maxima);
* ``temperature = inf`` is the τ → ∞ limit, uniform over the tokens that are not masked.

Examples
--------
>>> import numpy as np
>>> from sampler.softmax import softmax, log_softmax, entropy
>>> p = softmax([3.0, 1.0, 0.2])
>>> np.round(p, 5).tolist()
[0.83602, 0.11314, 0.05084]
>>> np.round(log_softmax([3.0, 1.0, 0.2]), 5).tolist()
[-0.1791, -2.1791, -2.9791]
>>> round(float(entropy(p)), 6)
0.547737
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike

from sampler.errors import InvalidInputError

__all__ = [
    "argmax",
    "argmin",
    "as_logits",
    "check_temperature",
    "entropy",
    "hardmax",
    "log_softmax",
    "scaled_logits",
    "softmax",
    "softmax_entropy",
    "validated_logits",
]

EntropyBase = Literal["nats", "bits"] | float


def as_logits(logits: ArrayLike) -> np.ndarray:
    """Return ``logits`` as a float array with at least one axis, validated.

    Raises
    ------
    InvalidInputError
        If the array is empty, holds NaN or ``+inf``, or a row is entirely ``-inf``.
    """
    return validated_logits(logits)[0]


def validated_logits(logits: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """:func:`as_logits` and the row maxima it found on the way (``[...]``)."""
    x = np.asarray(logits)
    if x.dtype not in (np.float32, np.float64):
        x = x.astype(np.float64)
    if x.ndim == 0:
        x = x.reshape(1)
    if x.shape[-1] == 0:
        raise InvalidInputError("logits are empty: give at least one logit")
    # One reduction finds every bad case: NaN and +inf propagate to the row max, and a row of
    # only -inf has max -inf. The full scan for the culprit runs only on the error path.
    row_max = x.max(axis=-1)
    if not np.isfinite(row_max).all():
        raise InvalidInputError(_describe_bad_logits(x))
    return x, row_max


def _describe_bad_logits(x: np.ndarray) -> str:
    allowed = "logits must be finite numbers or -inf (a masked token)"
    for bad, name in ((np.isnan(x), "nan"), (np.isposinf(x), "+inf")):
        if bad.any():
            index = np.unravel_index(int(np.argmax(bad)), x.shape)
            where = ", ".join(str(int(i)) for i in index)
            return f"logits[{where}] is {name}: {allowed}"
    rows = np.argwhere(np.isneginf(x).all(axis=-1))
    row = ", ".join(str(int(i)) for i in rows[0]) if rows.size else "0"
    where = f"row {row}" if x.ndim > 1 else "every logit"
    return f"{where} is -inf, so no token is allowed: at least one logit must be finite"


def check_temperature(temperature: float) -> float:
    """Validate one temperature: any number >= 0 (0 is the hardmax limit, inf is uniform)."""
    try:
        value = float(temperature)
    except (TypeError, ValueError):
        raise InvalidInputError(
            f"temperature {temperature!r} is not a number: use a number >= 0"
        ) from None
    if math.isnan(value) or value < 0:
        raise InvalidInputError(
            f"temperature {value:g} is invalid: use a number >= 0 (0 means greedy/hardmax)"
        )
    return value


def _temperature_array(temperature: float | ArrayLike, x: np.ndarray) -> float | np.ndarray:
    """A scalar, or per-row temperatures shaped to broadcast against ``x`` ([..., 1])."""
    if np.ndim(temperature) == 0:
        return check_temperature(temperature)  # type: ignore[arg-type]
    temps = np.asarray(temperature, dtype=np.float64)
    if temps.shape != x.shape[:-1]:
        raise InvalidInputError(
            f"temperature has shape {temps.shape}: give one number or one per row {x.shape[:-1]}"
        )
    for value in temps.ravel():
        check_temperature(value)
    return temps[..., None]


def scaled_logits(logits: ArrayLike, temperature: float | ArrayLike = 1.0) -> np.ndarray:
    """Return ``y = (x - max x) / temperature``: the shifted logits every function here uses.

    The maximum of each row of ``y`` is exactly 0, so ``exp(y)`` cannot overflow and its sum
    lies in ``[1, V]``. Temperature 0 gives 0 on the tied maxima and ``-inf`` elsewhere (the
    hardmax limit); temperature ``inf`` gives 0 on every unmasked token (the uniform limit).
    ``temperature`` is one number or one per row (shape ``logits.shape[:-1]``).
    """
    x = as_logits(logits)
    temps = _temperature_array(temperature, x)
    shifted = x - x.max(axis=-1, keepdims=True)
    if np.ndim(temps) == 0:
        if temps == 0:
            return np.where(shifted == 0, 0.0, -np.inf).astype(x.dtype)
        if math.isinf(temps):
            return np.where(np.isneginf(x), -np.inf, 0.0).astype(x.dtype)
        return shifted if temps == 1 else shifted / x.dtype.type(temps)
    with np.errstate(divide="ignore", invalid="ignore"):
        y = shifted / temps.astype(x.dtype)
    y = np.where(temps == 0, np.where(shifted == 0, 0.0, -np.inf), y)
    y = np.where(np.isinf(temps), np.where(np.isneginf(x), -np.inf, 0.0), y)
    return y.astype(x.dtype, copy=False)


def softmax(logits: ArrayLike, temperature: float | ArrayLike = 1.0) -> np.ndarray:
    """Probabilities ``exp(x_i/τ) / Σ_j exp(x_j/τ)`` over the last axis, computed stably.

    Examples
    --------
    >>> softmax([1.0, 1.0, 0.0], temperature=0).tolist()
    [0.5, 0.5, 0.0]
    >>> softmax([5.0, 0.0, -float("inf")], temperature=float("inf")).tolist()
    [0.5, 0.5, 0.0]
    """
    y = scaled_logits(logits, temperature)
    weights = np.exp(y)
    return weights / weights.sum(axis=-1, keepdims=True)


def log_softmax(logits: ArrayLike, temperature: float | ArrayLike = 1.0) -> np.ndarray:
    """``x/τ - logsumexp(x/τ)`` computed directly: finite wherever the logit is finite.

    Unlike ``log(softmax(x))``, this stays finite for tokens whose probability underflows to 0.
    At temperature 0 it is ``log(hardmax(x))``: ``-log(ties)`` on the maxima, ``-inf`` elsewhere.
    """
    y = scaled_logits(logits, temperature)
    return y - np.log(np.exp(y).sum(axis=-1, keepdims=True))


def softmax_entropy(logits: ArrayLike, temperature: float | ArrayLike = 1.0) -> np.ndarray:
    """Entropy in nats of ``softmax(logits, temperature)``, as ``log Z - Σ p_i y_i``.

    This needs no logarithm of probabilities, so tokens whose probability underflows still
    contribute exactly (their ``p_i y_i`` is 0 to working precision).
    """
    y = scaled_logits(logits, temperature)
    weights = np.exp(y)
    total = weights.sum(axis=-1)
    # Masked tokens have weight 0 and y = -inf; their term is 0 by the 0·log 0 = 0 convention.
    terms = np.multiply(weights, y, out=np.zeros_like(weights), where=weights > 0)
    weighted = terms.sum(axis=-1)
    return np.log(total) - weighted / total


def hardmax(logits: ArrayLike) -> np.ndarray:
    """One-hot on the maximum; ties share the mass evenly (softmax's τ → 0 limit).

    Examples
    --------
    >>> hardmax([[2.0, 1.0, 2.0], [0.0, 3.0, 1.0]]).tolist()
    [[0.5, 0.0, 0.5], [0.0, 1.0, 0.0]]
    """
    x = as_logits(logits)
    is_max = x == x.max(axis=-1, keepdims=True)
    return (is_max / is_max.sum(axis=-1, keepdims=True)).astype(x.dtype)


def argmax(logits: ArrayLike) -> np.ndarray | int:
    """Index of the largest logit over the last axis; the lowest index wins a tie (greedy)."""
    x = as_logits(logits)
    index = np.argmax(x, axis=-1)
    return int(index) if index.ndim == 0 else index


def argmin(logits: ArrayLike) -> np.ndarray | int:
    """Index of the smallest logit over the last axis; the lowest index wins a tie."""
    x = as_logits(logits)
    index = np.argmin(x, axis=-1)
    return int(index) if index.ndim == 0 else index


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
    nats = -terms.sum(axis=-1)
    if base == "nats":
        return nats
    if base == "bits":
        return nats / math.log(2)
    if isinstance(base, int | float) and base > 1:
        return nats / math.log(base)
    raise InvalidInputError(f"entropy base {base!r} is invalid: use 'nats', 'bits' or a number > 1")
