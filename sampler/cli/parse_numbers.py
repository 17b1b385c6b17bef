"""Numbers from the command line: a logit, and one or several temperatures, each by its one
rule, with clear errors (re-exported by :mod:`sampler.cli.options`)."""

from __future__ import annotations

import math
from collections.abc import Sequence

from sampler.errors import InvalidInputError

__all__ = ["parse_logit", "parse_temperature", "parse_temperatures"]


def parse_logit(text: str) -> float:
    """One logit from the command line: a finite number or -inf."""
    try:
        value = float(text)
    except ValueError:
        raise InvalidInputError(
            f"logit {text!r} is not a number: give numbers such as 3.0 -1.5 2e-3, or -inf"
        ) from None
    if math.isnan(value) or value == math.inf:
        raise InvalidInputError(
            f"logit {text!r} is not allowed: logits must be finite numbers or -inf (masked)"
        )
    return value


def parse_temperature(text: str) -> float:
    """One temperature from the command line, by the one temperature rule."""
    from sampler.softmax import check_temperature

    return check_temperature(text.strip())


def parse_temperatures(texts: str | Sequence[str]) -> list[float]:
    """Temperatures from the command line: ``"0,0.7,1"``, or repeated ``-t`` values.

    Each is checked by the one temperature rule (:func:`sampler.softmax.check_temperature`),
    and none may repeat.
    """
    from sampler.softmax import check_temperatures

    texts = [texts] if isinstance(texts, str) else texts
    return check_temperatures([part.strip() for text in texts for part in text.split(",")])
