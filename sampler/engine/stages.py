"""The stage table: every stage of the chain, its settings, their "off" values, ranges and peers.

Everything that lists stage settings is derived from :data:`STAGES`: the fields and validation
of :class:`~sampler.engine.params.SamplingParams`, ``active_stages``, the per-row arrays the
filters read, the sampling flags of ``generate``/``sweep``/``compare``/``chain``, the sweep's
TOML keys, the settings line of a report, and the page's lists (:func:`table_json`: its
sliders, what greys out, the stages its engine must pair). Adding a stage means writing its
pure function (``sampler/engine/filters/``), adding its row here or in one of the table's
other files (the shaping rows in :mod:`~sampler.engine.stages_shaping`, the later ones in
:mod:`~sampler.engine.stages_later`, the stateful ones in
:mod:`~sampler.engine.stages_stateful`; with a switched-on
``example`` per setting, and the page's words: a ``title`` per stage and setting, the stage's
``group`` and one-sentence ``summary``), its twin in the page's engine
(``sampler/serve/static/stages.js`` or ``stages_later.js``), testing it, and a line in
docs/engine.md.

Examples
--------
>>> [spec.name for spec in STAGES][:3]
['logit_bias', 'penalties', 'dry']
>>> SETTINGS["top_p"].check(1.5)
Traceback (most recent call last):
...
sampler.errors.InvalidInputError: top_p=1.5 is out of range: allowed 0 < top_p <= 1 (1 = off)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from sampler.engine.filters import truncation
from sampler.engine.settings import GROUPS, Setting, Slider, StageSpec, between
from sampler.engine.stages_later import LATER_STAGES
from sampler.engine.stages_shaping import SHAPING_STAGES
from sampler.engine.stages_stateful import STATEFUL_STAGES

__all__ = ["BY_NAME", "SETTINGS", "STAGES", "STAGE_NAMES", "switched_on", "table_json"]

STAGES: tuple[StageSpec, ...] = (
    *SHAPING_STAGES,
    StageSpec(
        "top_k",
        truncation.top_k,
        (
            Setting(
                "top_k",
                int,
                0,
                "-1, 0 (off) or a positive integer",
                "Keep the K most likely tokens and any tied with the K-th.",
                between(-1, math.inf, high_open=True),
                off_values=(-1,),
                title="Top-k (keep the k likeliest)",
                example=2,
                slider=Slider(0, 200, 1),
            ),
        ),
        "transformers TopKLogitsWarper (ties kept); llama.cpp top_k <= 0 off",
        title="Top-k",
        group="truncation",
        summary="Keeps only the k likeliest tokens (and any tied with the k-th).",
    ),
    StageSpec(
        "top_p",
        truncation.top_p,
        (
            Setting(
                "top_p",
                float,
                1.0,
                "0 < top_p <= 1 (1 = off)",
                "Nucleus: the shortest head whose mass reaches P.",
                between(0, 1, low_open=True),
                title="Top-p (nucleus)",
                example=0.8,
                slider=Slider(0.01, 1, 0.01),
            ),
        ),
        "transformers TopPLogitsWarper; llama.cpp top_p (crossing token kept)",
        title="Top-p (nucleus)",
        group="truncation",
        summary="Keeps the fewest likeliest tokens whose probabilities add up to at least p.",
    ),
    StageSpec(
        "min_p",
        truncation.min_p,
        (
            Setting(
                "min_p",
                float,
                0.0,
                "0 <= min_p <= 1 (0 = off)",
                "Keep tokens with p >= P × p_max.",
                between(0, 1),
                title="Min-p (share of the top probability)",
                example=0.1,
                slider=Slider(0, 1, 0.01),
            ),
        ),
        "transformers MinPLogitsWarper; llama.cpp and vLLM min_p",
        title="Min-p",
        group="truncation",
        summary=(
            "Keeps the tokens at least p times as likely as the likeliest one, so that the cut "
            "follows the model's confidence."
        ),
    ),
    *LATER_STAGES,
    *STATEFUL_STAGES,
)
STAGE_NAMES = tuple(spec.name for spec in STAGES)
BY_NAME: dict[str, StageSpec] = {spec.name: spec for spec in STAGES}
SETTINGS: dict[str, Setting] = {s.name: s for spec in STAGES for s in spec.settings}


def switched_on(values: Mapping[str, Any], flags_only: bool = True) -> dict[str, Any]:
    """The stage settings among ``values`` that are not at their "off" value, in table order
    (``flags_only``: without the temperature, which every command takes in its own way).

    >>> switched_on({"top_k": 5, "top_p": 1.0, "temperature": 0.7})
    {'top_k': 5}
    """
    return {
        name: values[name]
        for name, setting in SETTINGS.items()
        if (setting.flag or not flags_only) and name in values and not setting.is_off(values[name])
    }


def table_json() -> dict[str, list[dict[str, Any]]]:
    """The table as the page reads it, JSON-ready (:mod:`sampler.serve.page` embeds it): the
    page's groups in order, the stages in table order, and every setting with its stage, group,
    words, rule, example and slider.

    >>> table = table_json()
    >>> [s["name"] for s in table["stages"]] == list(STAGE_NAMES)
    True
    >>> next(s for s in table["settings"] if s["name"] == "top_p")["slider"]
    {'low': 0.01, 'high': 1, 'step': 0.01, 'scale': 'linear'}
    """
    return {
        "groups": [
            {"name": name, "title": title, "summary": summary}
            for name, (title, summary) in GROUPS.items()
        ],
        "stages": [spec.as_json() for spec in STAGES],
        "settings": [s.as_json(spec.name, spec.group) for spec in STAGES for s in spec.settings],
    }
