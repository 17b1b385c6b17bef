"""The temperature axis the run plots share: a tick per temperature (0 greedy, ∞ uniform), where
each temperature sits on x, and a colour per temperature from cold to hot."""

from __future__ import annotations

import colorsys
import math
from typing import Any

import numpy as np

__all__ = ["temperature_axis", "temperature_colours", "temperature_positions", "temperature_tick"]


def temperature_tick(temperature: float) -> str:
    """A temperature's tick label: ``0 (greedy)``, ``∞ (uniform)`` or the number."""
    if temperature == 0:
        return "0 (greedy)"
    return "∞ (uniform)" if math.isinf(temperature) else f"{temperature:g}"


_LINEAR_AXIS_MAX = 1e6


def temperature_positions(temperatures: list[float]) -> list[float]:
    """x of each temperature: τ itself, and τ = ∞ one mean spacing right of the largest finite τ.

    Above τ = 1e6 (τ may be up to 1.8e308) a linear axis would overflow and crush every other
    temperature into one point: the temperatures are then evenly spaced in order, labelled.
    """
    finite = [t for t in temperatures if math.isfinite(t)]
    top = max(finite, default=0.0)
    if top > _LINEAR_AXIS_MAX:
        ranks = sorted(range(len(temperatures)), key=lambda index: temperatures[index])
        return [float(ranks.index(index)) for index in range(len(temperatures))]
    spacing = (top - min(finite, default=0.0)) / max(len(finite) - 1, 1) or 1.0
    return [t if math.isfinite(t) else top + spacing for t in temperatures]


def temperature_colours(plt: Any, count: int) -> list[tuple[float, float, float]]:
    """coolwarm from cold to hot, with its pale middle darkened so lines show on white."""
    colours = []
    for red, green, blue, _ in plt.get_cmap("coolwarm")(np.linspace(0, 1, count)):
        hue, lightness, saturation = colorsys.rgb_to_hls(red, green, blue)
        colours.append(colorsys.hls_to_rgb(hue, min(lightness, 0.6), saturation))
    return colours


def temperature_axis(axes: Any, temperatures: list[float]) -> None:
    """Put a tick at each temperature's position on ``axes``, with a margin either side."""
    positions = temperature_positions(temperatures)
    axes.set_xticks(
        positions,
        [temperature_tick(t) for t in temperatures],
        rotation=30 if len(temperatures) > 6 else 0,
    )
    axes.set_xlabel("temperature τ")
    span = max(positions) - min(positions) or 1.0
    axes.set_xlim(min(positions) - 0.08 * span, max(positions) + 0.08 * span)
