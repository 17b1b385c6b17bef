"""The stage table: every stage of the chain, its settings, their "off" values, ranges and peers.

Everything that lists stage settings is derived from :data:`STAGES`: the fields and validation
of :class:`~sampler.engine.params.SamplingParams`, ``active_stages``, the per-row arrays the
filters read, the sampling flags of ``generate``/``sweep``/``compare``/``chain``, the sweep's
TOML keys, the settings line of a report, and the page's lists (:func:`table_json`: its
sliders, what greys out, the stages its engine must pair). Adding a stage means writing its
pure function (``sampler/engine/filters/``), adding its row here (with a switched-on
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

from sampler.engine.filters import dry, shaping, truncation
from sampler.engine.filters.dry_breakers import breakers_allowed
from sampler.engine.settings import GROUPS, Setting, Slider, StageSpec, between
from sampler.engine.stages_later import LATER_STAGES
from sampler.engine.stages_stateful import STATEFUL_STAGES
from sampler.softmax import TEMPERATURE_RULE

__all__ = ["BY_NAME", "SETTINGS", "STAGES", "STAGE_NAMES", "switched_on", "table_json"]

STAGES: tuple[StageSpec, ...] = (
    StageSpec(
        "logit_bias",
        shaping.logit_bias,
        (
            Setting(
                "logit_bias",
                dict,
                {},
                "{token id: -100..100}",
                "Add BIAS to token ID's logit.",
                title="Logit bias",
                example={1: 2.5},
            ),
        ),
        "OpenAI / vLLM logit_bias; transformers SequenceBiasLogitsProcessor",
        shaping=True,
        title="Logit bias",
        group="advanced",
        summary=(
            "Adds a fixed amount to the logits of chosen tokens, to favour them or (at -100) ban "
            "them."
        ),
    ),
    StageSpec(
        "penalties",
        shaping.penalties,
        (
            Setting(
                "repetition_penalty",
                float,
                1.0,
                "repetition_penalty > 0, finite (1 = off)",
                "Seen tokens: positive logits ÷ R, negative × R.",
                between(0, math.inf, low_open=True, high_open=True),
                title="Repetition penalty",
                example=1.3,
                slider=Slider(0.5, 2, 0.01),
            ),
            Setting(
                "frequency_penalty",
                float,
                0.0,
                "-2 <= frequency_penalty <= 2",
                "Subtract F × (times the token was seen).",
                between(-2, 2),
                title="Frequency penalty",
                example=0.5,
                slider=Slider(-2, 2, 0.05),
            ),
            Setting(
                "presence_penalty",
                float,
                0.0,
                "-2 <= presence_penalty <= 2",
                "Subtract P from every token seen at least once.",
                between(-2, 2),
                title="Presence penalty",
                example=-0.5,
                slider=Slider(-2, 2, 0.05),
            ),
            Setting(
                "penalty_last_n",
                int,
                0,
                "0 (all) or a positive integer",
                "How many recent tokens the penalties look at (0 = all).",
                between(0, math.inf, high_open=True),
                activates=False,
                title="Penalty window (last n tokens)",
                example=8,
                slider=Slider(0, 512, 1),
            ),
        ),
        "transformers RepetitionPenaltyLogitsProcessor; vLLM / OpenAI frequency and presence",
        shaping=True,
        title="Repetition penalties",
        group="penalties",
        summary=(
            "Lowers the logits of tokens the text already contains, so that the model repeats "
            "itself less (negative values invite repeats)."
        ),
    ),
    StageSpec(
        "dry",
        dry.dry,
        (
            Setting(
                "dry_multiplier",
                float,
                0.0,
                "dry_multiplier >= 0, finite (0 = off)",
                "DRY: penalise a token that would extend a repeat by M × base^(n − allowed).",
                between(0, math.inf, high_open=True),
                title="DRY strength (multiplier)",
                example=0.8,
                slider=Slider(0, 5, 0.05),
            ),
            Setting(
                "dry_base",
                float,
                1.75,
                "dry_base >= 1, finite",
                "DRY's base: how fast the penalty grows with the repeat's length.",
                between(1, math.inf, high_open=True),
                activates=False,
                title="DRY growth (base)",
                example=2.0,
                slider=Slider(1, 4, 0.05),
            ),
            Setting(
                "dry_allowed_length",
                int,
                2,
                "an integer >= 0",
                "DRY: repeats up to this long are free.",
                between(0, math.inf, high_open=True),
                activates=False,
                title="DRY free repeat length",
                example=3,
                slider=Slider(0, 10, 1),
            ),
            Setting(
                "dry_penalty_last_n",
                int,
                -1,
                "-1 (the whole history), 0 (off) or a positive integer",
                "DRY: how many recent tokens it looks at.",
                between(-1, math.inf, high_open=True),
                activates=False,
                title="DRY window (last n tokens)",
                example=64,
            ),
            Setting(
                "dry_sequence_breakers",
                tuple,
                dry.DEFAULT_BREAKERS,
                f"a list of at most {dry.MAX_BREAKERS} non-empty strings (each cut to 40 bytes)",
                "DRY: texts that end a repeat (a JSON list on the command line).",
                breakers_allowed,
                activates=False,
                title="DRY sequence breakers",
                example=("\n", "###"),
            ),
        ),
        "llama.cpp dry (a KoboldCpp port); text-generation-webui DRYLogitsProcessor",
        shaping=True,
        title="DRY (don't repeat yourself)",
        group="adaptive",
        summary=(
            "Penalises the token that would continue a stretch of text the model has already "
            "written, the more the longer that repeat is."
        ),
    ),
    StageSpec(
        "temperature",
        shaping.temperature,
        (
            Setting(
                "temperature",
                float,
                1.0,
                TEMPERATURE_RULE,
                "Divide the logits by τ.",
                flag=False,
                title="Temperature τ",
                example=0.7,
                slider=Slider(0.01, 10, scale="log"),
            ),
            Setting(
                "dynatemp_range",
                float,
                0.0,
                "0 <= dynatemp_range, finite (0 = off)",
                "Dynamic temperature: τ' from τ ± R by the row's normalised entropy.",
                between(0, math.inf, high_open=True),
                title="Dynamic temperature range",
                group="adaptive",
                example=0.5,
                slider=Slider(0, 3, 0.05),
            ),
            Setting(
                "dynatemp_exponent",
                float,
                1.0,
                "0 <= dynatemp_exponent, finite",
                "Dynamic temperature: τ' = lo + (hi - lo)·(H / ln N)^E.",
                between(0, math.inf, high_open=True),
                activates=False,
                title="Dynamic temperature exponent",
                group="adaptive",
                example=2.0,
                slider=Slider(0, 5, 0.05),
            ),
        ),
        "transformers TemperatureLogitsWarper; τ = 0 greedy as vLLM and llama.cpp; dynamic "
        "temperature as llama.cpp temp_ext (src/llama-sampling.cpp)",
        required=True,
        shaping=True,
        title="Temperature",
        group="temperature",
        summary=(
            "Divides every logit by τ before softmax: below 1 the likeliest tokens gain, above 1 "
            "the distribution flattens, at 0 the likeliest token is always taken; dynamic "
            "temperature moves τ within τ ± range by how unsure the model is."
        ),
    ),
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
