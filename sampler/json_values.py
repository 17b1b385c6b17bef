"""JSON output with no invalid numbers: NaN and ±inf become ``null``.

Python's ``json`` writes them as ``NaN`` and ``Infinity``, which no JSON parser accepts; a
temperature of inf, a surprisal of a token a cut removed, a chi-square of a sampler that drew an
impossible token are such numbers. Every ``--json`` output of the command line, and every
answer of ``sampler serve``, goes through :func:`to_json` (``sampler softmax --json`` writes
``null`` for -inf the same way).
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np

__all__ = ["json_safe", "to_json"]


def json_safe(value: Any) -> Any:
    """``value`` with every non-finite float (NaN, ±inf) as ``None``, numpy scalars and arrays
    as plain Python values; dicts, lists and tuples are walked."""
    if isinstance(value, np.ndarray | np.generic):
        value = value.tolist()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(item) for item in value]
    return value


def to_json(value: Any, **options: Any) -> str:
    """``json.dumps`` of :func:`json_safe` ``(value)``; it cannot write NaN or Infinity."""
    return json.dumps(json_safe(value), allow_nan=False, **options)
