"""Divergence results as text and JSON: the per-position table, the preset-pair table, the
JSON record (an infinite KL is the string "inf": JSON has no infinity)."""

from __future__ import annotations

import math
from typing import Any

from sampler.analysis.divergence import Divergence
from sampler.engine.presets import PRESETS
from sampler.tables import aligned_table

__all__ = ["divergence_record", "format_divergences", "format_orders", "format_pair", "pair_record"]


def _number(value: float) -> float | str:
    """A JSON-safe number: an infinite KL becomes the string "inf" (JSON has no inf)."""
    return value if math.isfinite(value) else "inf"


def pair_record(result: Divergence) -> dict[str, Any]:
    """One comparison as plain JSON values: per-position lists, means and counts."""
    record: dict[str, Any] = {"a": result.a, "b": result.b}
    for name in ("entropy_a", "entropy_b", "kl_ab", "kl_ba", "tv", "same_token"):
        record[name] = [_number(float(v)) for v in getattr(result, name)]
    record |= {
        "kept_a": [int(v) for v in result.kept_a],
        "kept_b": [int(v) for v in result.kept_b],
        "kept_differ": [bool(v) for v in result.kept_differ],
    }
    means = result.means()
    record["mean"] = {k: _number(v) for k, v in means.items() if isinstance(v, float)}
    return record | {k: v for k, v in means.items() if isinstance(v, int)}


def _cell(value: float) -> str:
    return "inf" if math.isinf(value) else f"{value:.4f}"


def format_pair(result: Divergence) -> str:
    """Both sides, a line per position, and the means over the text."""
    header = ["pos", "next token", "H A", "H B", "KL A‖B", "KL B‖A", "TV", "same p", "kept A/B"]
    body = [
        [
            str(i),
            repr(label),
            *(
                _cell(float(getattr(result, name)[i]))
                for name in ("entropy_a", "entropy_b", "kl_ab", "kl_ba", "tv", "same_token")
            ),
            f"{result.kept_a[i]}/{result.kept_b[i]}" + (" ≠" if result.kept_differ[i] else ""),
        ]
        for i, label in enumerate(result.labels)
    ]
    m = result.means()
    summary = (
        f"mean over {m['positions']} positions: H A {_cell(m['entropy_a'])}, "
        f"H B {_cell(m['entropy_b'])}, KL A‖B {_cell(m['kl_ab'])} (infinite at "
        f"{m['infinite_kl_ab']}), KL B‖A {_cell(m['kl_ba'])} (infinite at {m['infinite_kl_ba']}), "
        f"TV {_cell(m['tv'])}, same-token p {_cell(m['same_token'])}; kept sets differ at "
        f"{m['kept_differ_count']} of {m['positions']}"
    )
    lines = [f"A: {result.a}", f"B: {result.b}", "", *aligned_table(header, body), "", summary]
    return "\n".join(lines)


def format_orders(results: list[Divergence], orders: list[str]) -> str:
    """Each preset's chain, then one line per pair of presets: means over the text."""
    lines = [f"order {name}: {' → '.join(PRESETS[name])}" for name in orders]
    header = ["A", "B", "mean TV", "mean same p", "kept differ", "mean KL A‖B", "mean KL B‖A"]
    body = []
    for result in results:
        m = result.means()
        body.append(
            [
                result.a,
                result.b,
                _cell(m["tv"]),
                _cell(m["same_token"]),
                f"{m['kept_differ_count']}/{m['positions']}",
                _cell(m["kl_ab"]) + (f" ({m['infinite_kl_ab']}×∞)" if m["infinite_kl_ab"] else ""),
                _cell(m["kl_ba"]) + (f" ({m['infinite_kl_ba']}×∞)" if m["infinite_kl_ba"] else ""),
            ]
        )
    return "\n".join([*lines, "", *aligned_table(header, body)])


def divergence_record(results: list[Divergence], orders: list[str]) -> dict[str, Any]:
    """What ``divergence --json`` prints: the tokens, the presets compared (if any), the pairs."""
    record: dict[str, Any] = {"tokens": results[0].labels}
    if orders:
        record["orders"] = {name: list(PRESETS[name]) for name in orders}
    record["pairs"] = [pair_record(result) for result in results]
    return record


def format_divergences(results: list[Divergence], orders: list[str]) -> str:
    """The preset-pair table when presets were compared, else the one pair's table."""
    return format_orders(results, orders) if orders else format_pair(results[0])
