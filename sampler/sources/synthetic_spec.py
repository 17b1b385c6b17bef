"""Synthetic source specs: ``synthetic:KIND[?KEY=VALUE[&KEY=VALUE...]]`` parsed and checked.

Each key at most once, omitted keys at their defaults (:data:`SYNTHETIC_KINDS`). ``vocab`` is an
integer in [2, 2_000_000], ``seed`` an integer >= 0; ``exponent``, ``scale``, ``alpha`` lie in
(0, 1e6] and ``sharpness`` in [0, 1e6] (the upper bound keeps every logit finite in float32).
The kinds themselves are described in :mod:`sampler.sources.synthetic`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from sampler.cheatsheet import CHEAT_SHEET_LOGITS, default_labels
from sampler.errors import InvalidInputError
from sampler.sources.synthetic import PREFIX, SYNTHETIC_KINDS, SyntheticSource

__all__ = ["parse_synthetic"]

_INT_RANGES = {"vocab": (2, 2_000_000), "seed": (0, None)}
_MAX_FLOAT_PARAM = 1e6
_FLOAT32_MAX = float(np.finfo(np.float32).max)


def _parse_number(text: str, what: str, allowed: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise InvalidInputError(f"{what} {text!r} is not a number: give {allowed}") from None


def _parse_value(key: str, text: str) -> int | float:
    if key in _INT_RANGES:
        low, high = _INT_RANGES[key]
        allowed = f"an integer from {low} to {high}" if high else f"an integer >= {low}"
        value = _parse_number(text, key, allowed)
        if not (math.isfinite(value) and value.is_integer()):
            raise InvalidInputError(f"{key} {text!r} is not an integer: give {allowed}")
        # int(text) keeps huge seeds exact; float() only for forms like 1e3.
        number = int(text) if text.strip().lstrip("+-").isdigit() else int(value)
        if number < low or (high is not None and number > high):
            raise InvalidInputError(f"{key} {number} is out of range: give {allowed}")
        return number
    bound = ">= 0" if key == "sharpness" else "> 0"
    allowed = f"a number {bound} and <= {_MAX_FLOAT_PARAM:.0f}"
    value = _parse_number(text, key, allowed)
    above_low = value >= 0 if key == "sharpness" else value > 0
    if not (math.isfinite(value) and above_low and value <= _MAX_FLOAT_PARAM):
        raise InvalidInputError(f"{key} {text!r} is out of range: give {allowed}")
    return value


def _parse_fixed(given: dict[str, str]) -> dict[str, Any]:
    logits = list(CHEAT_SHEET_LOGITS)
    if "logits" in given:
        if not given["logits"].strip():
            raise InvalidInputError("logits are empty: give at least one number, e.g. logits=3,1")
        items = given["logits"].split(",")
        logits = [_parse_number(item, "logits entry", "numbers like 3,1,0.2") for item in items]
        for item, value in zip(items, logits, strict=True):
            if not (value == -math.inf or abs(value) <= _FLOAT32_MAX):
                raise InvalidInputError(
                    f"logits entry {item!r} is not allowed: give finite float32 numbers or -inf"
                )
        if all(v == -math.inf for v in logits):
            raise InvalidInputError("logits are all -inf: give at least one finite logit")
    labels = default_labels(len(logits))
    if "labels" in given:
        labels = given["labels"].split(",")
        if len(labels) != len(logits):
            raise InvalidInputError(
                f"{len(labels)} labels given for {len(logits)} logits: give one label per logit"
            )
        for label in labels:
            if not label or label != "".join(label.split()):  # '' and 'a b' never re-encode
                raise InvalidInputError(f"label {label!r} is not allowed: give space-free words")
        if len(set(labels)) < len(labels):
            raise InvalidInputError(f"labels={given['labels']!r} repeat a label: make them unique")
    return {"logits": logits, "labels": labels}


def _canonical(kind: str, params: dict[str, Any]) -> str:
    def text(value: Any) -> str:
        if isinstance(value, list):
            return ",".join(text(v) for v in value)
        return repr(float(value)) if isinstance(value, float) else str(value)

    return f"{PREFIX}{kind}?" + "&".join(f"{k}={text(params[k])}" for k in sorted(params))


def parse_synthetic(spec: str) -> SyntheticSource:
    """Build the synthetic source a spec names (grammar and defaults in the module docstring).

    Raises
    ------
    InvalidInputError
        For a missing ``synthetic:`` prefix, an unknown kind or key, a repeated key, or a value
        that is not a number or out of range.

    Examples
    --------
    >>> source = parse_synthetic("synthetic:fixed?logits=3,1,0.2&labels=A,B,C")
    >>> source.fingerprint
    'synthetic:fixed?labels=A,B,C&logits=3.0,1.0,0.2'
    >>> logits, _ = source.start([[0], []])
    >>> bool((logits == np.float32([3, 1, 0.2])).all())
    True
    >>> source.decode(source.encode("C A", chat=False))
    'C A'
    """
    if not isinstance(spec, str) or not spec.startswith(PREFIX):
        raise InvalidInputError(
            f"synthetic spec {spec!r} must start with {PREFIX!r}, e.g. synthetic:markov?vocab=500"
        )
    kind, _, query = spec[len(PREFIX) :].partition("?")
    if kind not in SYNTHETIC_KINDS:
        raise InvalidInputError(
            f"unknown synthetic kind {kind!r}: choose one of {', '.join(sorted(SYNTHETIC_KINDS))}"
        )
    allowed = SYNTHETIC_KINDS[kind]
    given: dict[str, str] = {}
    for part in query.split("&") if query else []:
        key, equals, value = part.partition("=")
        if not equals:
            raise InvalidInputError(f"spec part {part!r} is not key=value in {spec!r}")
        if key not in allowed:
            raise InvalidInputError(
                f"unknown key {key!r} for synthetic:{kind}: allowed keys are "
                f"{', '.join(sorted(allowed))}"
            )
        if key in given:
            raise InvalidInputError(f"key {key!r} is given twice in {spec!r}: give it once")
        given[key] = value
    if kind == "fixed":
        params = _parse_fixed(given)
    else:
        params = {**allowed, **{key: _parse_value(key, value) for key, value in given.items()}}
    return SyntheticSource(kind, params, _canonical(kind, params))
