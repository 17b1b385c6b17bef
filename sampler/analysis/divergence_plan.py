"""What a divergence request compares: side A, side B, the presets of ``order="all"``, and which
comparison runs along a text or a logged completion. ``sampler divergence`` only reads flags.

Side B is side A with ``KEY=VALUE`` changes (:func:`parse_vs`). Under ``order="all"`` every
preset is compared with every other; a preset whose chain lacks a stage the user switched on is
left out (a note says so), and fewer than two presets left is an error.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields, replace
from typing import Any

from sampler.analysis.divergence import Divergence, Progress, check_forcible
from sampler.analysis.divergence_compare import (
    divergence_text,
    divergence_tokens,
    missing_stages,
    order_divergences,
)
from sampler.analysis.teacher_forced import forced_ids
from sampler.engine.params import SamplingParams
from sampler.engine.presets import PRESETS
from sampler.engine.stages import SETTINGS, STAGE_NAMES
from sampler.errors import InvalidInputError
from sampler.sources.base import LogitSource, use_chat

__all__ = ["VS_EXAMPLE", "Sides", "compare_sides", "parse_vs", "plan_sides"]

VS_EXAMPLE = "e.g. --vs order=llama.cpp --vs temperature=0.7"


@dataclass(frozen=True)
class Sides:
    """The two settings compared; with ``order="all"``, the presets compared (else empty)."""

    a: SamplingParams
    b: SamplingParams
    orders: list[str]


def plan_sides(
    temperature: float,
    order: str,
    settings: dict[str, Any],
    vs_items: Sequence[str],
    note: Callable[[str], None],
) -> Sides:
    """Both sides, checked for teacher forcing before any model loads.

    ``order`` is a preset name or ``"all"``; ``settings`` are side A's stage settings;
    ``note`` hears which presets ``"all"`` leaves out, and why.
    """
    params_a, orders = _side_a(temperature, order, settings, note)
    params_b = parse_vs(vs_items, params_a)
    for params in (params_a, params_b):
        check_forcible(params)
    return Sides(params_a, params_b, orders)


def _side_a(
    temperature: float, order: str, settings: dict[str, Any], note: Callable[[str], None]
) -> tuple[SamplingParams, list[str]]:
    """Side A's settings, and with ``order="all"`` the presets compared (else ``[]``).

    Under ``all`` the settings are first checked in a chain holding every stage, so that a
    stage some preset lacks leaves that preset out (a note), not the command.
    """
    if order != "all":
        return SamplingParams(temperature=temperature, order=order, **settings), []
    every = SamplingParams(temperature=temperature, order=list(STAGE_NAMES), **settings)
    missing = missing_stages(every)
    orders = [name for name in PRESETS if not missing[name]]
    if len(orders) < 2:
        raise InvalidInputError(
            f"fewer than two presets have every stage you set ({', '.join(orders) or 'none'}): "
            "nothing to compare"
        )
    for name, stages in missing.items():
        if stages:
            note(f"note: {name} left out: its chain has no {', '.join(stages)}")
    return SamplingParams(temperature=temperature, order=orders[0], **settings), orders


def parse_vs(items: Sequence[str], base: SamplingParams) -> SamplingParams:
    """Side B: ``base`` with ``KEY=VALUE`` items applied, validated by ``SamplingParams``.

    Numbers are converted when they parse; anything else goes to ``SamplingParams`` as text,
    so that a bad value is refused by the engine's own one-line rule for that field.
    """
    known = [f.name for f in fields(SamplingParams)]
    changes: dict[str, Any] = {}
    for item in items:
        key, equals, text = item.partition("=")
        key = key.strip().replace("-", "_")
        if not equals:
            raise InvalidInputError(f"--vs {item!r} is not KEY=VALUE: {VS_EXAMPLE}")
        if key not in known:
            raise InvalidInputError(
                f"--vs key {key!r} is not a SamplingParams field: use one of {', '.join(known)}"
            )
        if key == "logit_bias":
            token, _, bias = text.partition("=")
            try:
                changes.setdefault(key, {})[int(token)] = float(bias)
            except ValueError:
                raise InvalidInputError(
                    f"--vs {item!r} is not logit_bias=ID=BIAS: give e.g. --vs logit_bias=7=-100"
                ) from None
            continue
        if key in changes:
            raise InvalidInputError(f"--vs {key} is given twice: give it once")
        changes[key] = _vs_value(key, text.strip())
    return replace(base, **changes)


def _vs_value(key: str, text: str) -> Any:
    if key == "order":
        return text.split(",") if "," in text else text
    if key == "seed" and text.lower() == "none":
        return None
    kind = SETTINGS[key].kind if key in SETTINGS and key != "temperature" else None
    if key in ("seed", "min_tokens_to_keep") or kind is int:
        try:
            return int(text)
        except ValueError:
            return text
    if kind is float:
        try:
            return float(text)
        except ValueError:
            return text
    return text  # temperature (the one temperature rule parses text) and mode


def compare_sides(
    source: LogitSource,
    sides: Sides,
    raw: bool,
    *,
    text: str | None = None,
    prompt: str | None = None,
    logged: dict[str, Any] | None = None,
    source_b: LogitSource | None = None,
    progress: Progress | None = None,
) -> list[Divergence]:
    """The divergences along ``text`` (after ``prompt``) or along a ``logged`` completion
    (its ``prompt`` and ``token_ids``): one pair, or every pair of ``sides.orders``.
    ``progress(done, total)`` hears each forced position."""
    if text is not None and sides.orders:
        context, targets = forced_ids(source, text, prompt, use_chat(source, raw))
        return order_divergences(source, sides.a, context, targets, sides.orders, progress)
    if text is not None:
        return [
            divergence_text(source, text, sides.a, sides.b, prompt, raw, source_b, progress)
        ]
    if logged is None:
        raise InvalidInputError("give a text or a logged completion to compare along")

    def context_of(src: LogitSource) -> list[int]:
        return src.encode(logged["prompt"], use_chat(src, raw))

    targets = list(logged["token_ids"])
    if sides.orders:
        return order_divergences(
            source, sides.a, context_of(source), targets, sides.orders, progress
        )
    context_b = context_of(source_b) if source_b is not None else None
    return [
        divergence_tokens(
            source, sides.a, sides.b, context_of(source), targets, source_b, context_b, progress
        )
    ]
