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
>>> from sampler.softmax import softmax, log_softmax
>>> from sampler.entropy import entropy
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
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from sampler.errors import InvalidInputError
from sampler.messages import shown

__all__ = [
    "MAX_TEMPERATURES",
    "TEMPERATURE_RULE",
    "argmax",
    "argmin",
    "as_logits",
    "check_temperature",
    "check_temperatures",
    "divide_by_temperature",
    "hardmax",
    "log_softmax",
    "scaled_logits",
    "softmax",
    "validated_logits",
]

TEMPERATURE_RULE = "temperature >= 0 (0 = greedy/hardmax, inf = uniform)"
# Every temperature is at least one row of a run (at most 10,000) or of a cheat sheet.
MAX_TEMPERATURES = 10_000


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


def check_temperature(temperature: Any) -> float:
    """The one temperature rule: a number ``τ >= 0``, or ``inf``; returns it as a float.

    ``τ = 0`` is the greedy/hardmax limit and ``τ = inf`` the uniform limit over the tokens still
    allowed; every function, class and command that takes a temperature checks it here.

    Examples
    --------
    >>> check_temperature("0.7"), check_temperature(float("inf"))
    (0.7, inf)
    >>> check_temperature(-1)
    Traceback (most recent call last):
    ...
    sampler.errors.InvalidInputError: temperature=-1 is out of range: allowed temperature >= 0 \
(0 = greedy/hardmax, inf = uniform)
    """
    if isinstance(temperature, bool):
        raise InvalidInputError(f"temperature={temperature!r} is not a number: {TEMPERATURE_RULE}")
    try:
        value = float(temperature)
    except OverflowError:  # an integer beyond float64 (a TOML or JSON number can be one)
        raise InvalidInputError(
            f"temperature={shown(temperature)} is beyond float64's range (about "
            f"1.8e308): {TEMPERATURE_RULE}"
        ) from None
    except (TypeError, ValueError):
        raise InvalidInputError(
            f"temperature={shown(temperature)} is not a number: {TEMPERATURE_RULE}"
        ) from None
    if math.isnan(value) or value < 0:
        raise InvalidInputError(
            f"temperature={value:g} is out of range: allowed {TEMPERATURE_RULE}"
        )
    return value


def check_temperatures(temperatures: Sequence[object]) -> list[float]:
    """Several temperatures: each by :func:`check_temperature`, none given twice.

    A repeated temperature would only repeat rows (same settings, same random stream), so a
    list with one is refused wherever lists of temperatures are taken. At most
    :data:`MAX_TEMPERATURES`, counted before any is read.
    """
    if len(temperatures) > MAX_TEMPERATURES:
        raise InvalidInputError(
            f"{len(temperatures)} temperatures are too many: at most {MAX_TEMPERATURES} (each "
            "is at least one row, and a run has at most 10000 rows)"
        )
    values: list[float] = []
    seen: set[float] = set()  # a set, not the list: a long list is checked in linear time
    for item in temperatures:
        value = check_temperature(item)
        if value in seen:
            raise InvalidInputError(f"temperature {value:g} is given twice: give each once")
        seen.add(value)
        values.append(value)
    return values


def _temperature_array(temperature: float | ArrayLike, x: np.ndarray) -> np.ndarray:
    """Temperatures shaped to broadcast against ``x`` (``[..., 1]``), each checked."""
    if np.ndim(temperature) == 0:
        return np.array([check_temperature(temperature)])
    temps = np.asarray(temperature, dtype=np.float64)
    if temps.ndim and temps.shape != x.shape[:-1]:
        raise InvalidInputError(
            f"temperature has shape {temps.shape}: give one number or one per row {x.shape[:-1]}"
        )
    for value in temps.ravel():
        check_temperature(value)
    return temps[..., None]


def divide_by_temperature(shifted: np.ndarray, temperature: ArrayLike) -> np.ndarray:
    """``shifted / τ`` for logits whose row maximum is 0, exact at both limits, never NaN.

    ``shifted`` is overwritten with the result (every caller passes an array it just made, so
    a full-vocabulary batch is not copied twice). ``temperature`` broadcasts against it (one
    number, or ``[..., 1]``). Rows at ``τ = 0`` (or a τ so small that it is 0 in the logits'
    dtype) keep 0 on their tied maxima and ``-inf`` elsewhere; rows at ``τ = inf`` get 0 on
    every unmasked token. A quotient too large for the dtype is ``-inf``: that token's
    probability is 0 at that temperature anyway.
    """
    with np.errstate(over="ignore"):  # a τ beyond the dtype's range is inf there: uniform
        divisor = np.asarray(temperature).astype(shifted.dtype)
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        y = np.divide(shifted, divisor, out=shifted)
    # Only the rows at a limit are mended, in place: the division left NaN exactly where it
    # met 0/0 (a maximum at τ = 0) or -inf/inf (a masked token at τ = inf).
    for at_limit, nan_becomes, rest_becomes in ((divisor == 0, 0.0, -np.inf),
                                                (np.isinf(divisor), -np.inf, 0.0)):
        if at_limit.any():
            rows = at_limit.reshape(y.shape[:-1]) if at_limit.size > 1 else ...
            y[rows] = np.where(np.isnan(y[rows]), nan_becomes, rest_becomes)
    return y


def scaled_logits(logits: ArrayLike, temperature: float | ArrayLike = 1.0) -> np.ndarray:
    """Return ``y = (x - max x) / temperature``: the shifted logits every function here uses.

    The maximum of each row of ``y`` is exactly 0, so ``exp(y)`` cannot overflow and its sum
    lies in ``[1, V]``. Temperature 0 gives 0 on the tied maxima and ``-inf`` elsewhere (the
    hardmax limit); temperature ``inf`` gives 0 on every unmasked token (the uniform limit).
    ``temperature`` is one number or one per row (shape ``logits.shape[:-1]``).

    A finite logit whose ``y`` lies below the dtype's most negative number (``x - max x`` can
    reach ``-2 * max`` for logits near ``±max``, e.g. ``1e308`` and ``-1e308`` in float64) gets
    ``y = -inf``: its probability is 0 and its true log-probability is not a number of that
    dtype. Above τ = 1 it is computed as ``x/τ - max x/τ`` and stays finite where it can.

    >>> scaled_logits([1e308, -1e308], 4.0).tolist()
    [0.0, -5e+307]
    """
    x, peak = validated_logits(logits)
    temps = _temperature_array(temperature, x)
    with np.errstate(over="ignore"):  # only for spreads beyond the dtype, documented above
        shifted = x - peak[..., None]
    overflowed = np.isneginf(shifted) & np.isfinite(x)
    if temps.size == 1 and temps.flat[0] == 1:
        return shifted
    y = divide_by_temperature(shifted, temps)
    recover = overflowed & (temps > 1) & np.isfinite(temps)
    if recover.any():
        # every row is divided (np.where takes whole arrays), τ = 0 rows included: no warnings
        with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
            divisor = temps.astype(x.dtype)
            y = np.where(recover, x / divisor - peak[..., None] / divisor, y)
    return y


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
