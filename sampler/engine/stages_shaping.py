"""The stage table's first rows: the stages that reshape the logits before any truncation
(logit bias, the repetition penalties, DRY, temperature).

:data:`sampler.engine.stages.STAGES` lists these first, in this order, then its own
truncation rows, the later rows (:mod:`sampler.engine.stages_later`) and the stateful rows
(:mod:`sampler.engine.stages_stateful`); the table is one table, kept in four files so that
each stays short. See :mod:`sampler.engine.stages` for what a row holds and how a stage is
added.
"""

from __future__ import annotations

import math

from sampler.engine.filters import dry, shaping
from sampler.engine.filters.dry_breakers import breakers_allowed
from sampler.engine.settings import Setting, Slider, StageSpec, between
from sampler.softmax import TEMPERATURE_RULE

__all__ = ["SHAPING_STAGES"]


SHAPING_STAGES: tuple[StageSpec, ...] = (
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
)
