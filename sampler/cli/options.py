"""Argument parsing shared by the commands: numbers with clear errors, sampling options."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import click

from sampler.errors import InvalidInputError

__all__ = ["DB_HELP", "open_store", "parse_logit", "parse_temperature", "sampling_options"]

DB_HELP = "Run log (SQLite). Default: runs/sampler.db under the working folder."


def open_store(db: str | None) -> Any:
    """The run log at ``db``, or the default ``runs/sampler.db`` (its folder created)."""
    from sampler.runlog.store import RunStore

    return RunStore.open_default() if db is None else RunStore(db)


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
    """One temperature from the command line (validated by the core)."""
    from sampler.softmax import check_temperature

    try:
        value = float(text)
    except ValueError:
        raise InvalidInputError(
            f"temperature {text!r} is not a number: use a number >= 0 (0 means hardmax)"
        ) from None
    return check_temperature(value)


def sampling_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The filter, mode and order options every sampling command takes (neutral defaults).

    They reach the command as keyword arguments named like ``SamplingParams`` fields.
    """
    options = [
        click.option("--top-k", default=0, show_default=True, help="0 = off."),
        click.option("--top-p", default=1.0, show_default=True, help="1 = off."),
        click.option("--min-p", default=0.0, show_default=True, help="0 = off."),
        click.option("--typical-p", default=1.0, show_default=True, help="1 = off."),
        click.option("--epsilon", default=0.0, show_default=True, help="0 = off."),
        click.option("--eta", default=0.0, show_default=True, help="0 = off."),
        click.option(
            "--top-n-sigma",
            default=0.0,
            show_default=True,
            help="0 = off (needs the llama.cpp order).",
        ),
        click.option("--repetition-penalty", default=1.0, show_default=True, help="1 = off."),
        click.option(
            "--mode",
            type=click.Choice(["sample", "greedy", "hardmax"]),
            default="sample",
            show_default=True,
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command
