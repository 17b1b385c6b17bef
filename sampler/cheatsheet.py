"""The softmax cheat sheet: one set of logits seen through several temperatures.

:func:`cheat_sheet` computes everything as a plain dict (the ``sampler softmax --json``
contract); :func:`format_cheat_sheet` renders it as an aligned terminal table.

Examples
--------
>>> sheet = cheat_sheet([3.0, 1.0, 0.2], temperatures=[1.0])
>>> [round(p, 5) for p in sheet["rows"][0]["probs"]]
[0.83602, 0.11314, 0.05084]
>>> round(sheet["rows"][0]["entropy_nats"], 6)
0.547737
"""

from __future__ import annotations

import math
import string
from collections.abc import Sequence
from typing import Any

import numpy as np

from sampler.entropy import softmax_entropy
from sampler.errors import InvalidInputError
from sampler.softmax import (
    argmax,
    argmin,
    as_logits,
    check_temperatures,
    hardmax,
    log_softmax,
    softmax,
)
from sampler.tables import aligned_table, format_number

__all__ = ["CHEAT_SHEET_LOGITS", "CHEAT_SHEET_TEMPERATURES", "cheat_sheet", "format_cheat_sheet"]

CHEAT_SHEET_LOGITS = (3.0, 1.0, 0.2)
CHEAT_SHEET_LABELS = ("A", "B", "C")
CHEAT_SHEET_TEMPERATURES = (0.0, 0.1, 0.5, 1.0, 2.0, 5.0, 10.0)


def default_labels(size: int) -> list[str]:
    """``A, B, C, ...`` for up to 26 tokens, else the token indices as strings."""
    if size <= len(string.ascii_uppercase):
        return list(string.ascii_uppercase[:size])
    return [str(i) for i in range(size)]


def _json_number(value: float) -> float | None:
    # JSON has no -inf; null marks a masked token (logit or log-probability -inf).
    return None if math.isinf(value) else float(value)


def _json_list(values: np.ndarray) -> list[float | None]:
    return [_json_number(v) for v in values.tolist()]


def cheat_sheet(
    logits: Sequence[float] = CHEAT_SHEET_LOGITS,
    temperatures: Sequence[float] = CHEAT_SHEET_TEMPERATURES,
    labels: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Softmax, log-softmax, entropy and argmax of ``logits`` at each temperature.

    Parameters
    ----------
    logits
        One row of logits (finite, or ``-inf`` for a masked token).
    temperatures
        Temperatures >= 0; 0 is the hardmax limit.
    labels
        One name per logit; default ``A, B, C, ...``.

    Returns
    -------
    dict
        ``logits``, ``labels``, ``rows`` (one per temperature: ``temperature``, ``probs``,
        ``log_probs``, ``entropy_nats``, ``entropy_bits``, ``argmax``, ``argmax_label``), and at
        τ = 1: ``max``, ``min``, ``argmax``, ``argmin`` (+ ``_label``), ``hardmax``,
        ``log_softmax``, ``softmax``. ``null`` stands for ``-inf``.
    """
    x = as_logits(np.asarray(logits, dtype=np.float64))
    if x.ndim != 1:
        raise InvalidInputError(f"the cheat sheet takes one row of logits, got shape {x.shape}")
    names = list(labels) if labels is not None else default_labels(x.size)
    if len(names) != x.size:
        raise InvalidInputError(
            f"{len(names)} labels given for {x.size} logits: give exactly one label per logit"
        )
    if not temperatures:
        raise InvalidInputError("no temperature given: give at least one temperature >= 0")
    rows = []
    for temperature in check_temperatures(temperatures):
        nats = float(softmax_entropy(x, temperature))
        probs = softmax(x, temperature)
        best = int(np.argmax(probs))  # lowest index among ties, like greedy decoding
        rows.append(
            {
                "temperature": temperature,
                "probs": probs.tolist(),
                "log_probs": _json_list(log_softmax(x, temperature)),
                "entropy_nats": nats,
                "entropy_bits": nats / math.log(2),
                "argmax": best,
                "argmax_label": names[best],
            }
        )
    top, bottom = int(argmax(x)), int(argmin(x))
    return {
        "logits": _json_list(x),
        "labels": names,
        "rows": rows,
        "max": float(x[top]),
        "min": _json_number(float(x[bottom])),
        "argmax": top,
        "argmax_label": names[top],
        "argmin": bottom,
        "argmin_label": names[bottom],
        "hardmax": hardmax(x).tolist(),
        "log_softmax": _json_list(log_softmax(x)),
        "softmax": softmax(x).tolist(),
    }


def format_cheat_sheet(sheet: dict[str, Any]) -> str:
    """Render a :func:`cheat_sheet` dict as aligned plain text."""
    labels = sheet["labels"]
    logits = ", ".join(format_number(v, 4).rstrip("0").rstrip(".") for v in sheet["logits"])
    out = [f"softmax(x / τ) for logits x = [{logits}], labels {', '.join(labels)}", ""]
    header = ["τ", *(f"P({name})" for name in labels), "H nats", "H bits", "argmax"]
    body = []
    for row in sheet["rows"]:
        tau = row["temperature"]
        name = "0 (hardmax)" if tau == 0 else f"{tau:g}"
        probs = [format_number(p) for p in row["probs"]]
        entropy = [format_number(row["entropy_nats"]), format_number(row["entropy_bits"])]
        body.append([name, *probs, *entropy, row["argmax_label"]])
    out += aligned_table(header, body)
    out += ["", "at τ = 1:"]
    per_token = [
        ["logit", *(format_number(v, 4) for v in sheet["logits"])],
        ["softmax", *(format_number(v) for v in sheet["softmax"])],
        ["log-softmax", *(format_number(v) for v in sheet["log_softmax"])],
        ["hardmax", *(format_number(v, 4) for v in sheet["hardmax"])],
    ]
    out += ["  " + line for line in aligned_table(["", *labels], per_token)]
    out += [
        "",
        f"  max     {format_number(sheet['max'], 4)} ({sheet['argmax_label']})",
        f"  min     {format_number(sheet['min'], 4)} ({sheet['argmin_label']})",
        f"  argmax  {sheet['argmax']} ({sheet['argmax_label']})  greedy: lowest index on ties",
        f"  argmin  {sheet['argmin']} ({sheet['argmin_label']})",
    ]
    return "\n".join(out)
