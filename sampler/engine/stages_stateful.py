"""The stage table's stateful rows, whose state runs on from step to step within a row:
mirostat (its μ), adaptive-p (its weighted averages) and the constraint (a grammar's matcher).

:data:`sampler.engine.stages.STAGES` lists these last, in this order; see that module for what
a row holds and how a stage is added.
"""

from __future__ import annotations

import math
from typing import Any

from sampler.engine.constraints import SYNTAXES
from sampler.engine.filters import adaptive_p, grammar, mirostat
from sampler.engine.presets import GRAMMAR_MODES
from sampler.engine.settings import Setting, Slider, StageSpec, between

__all__ = ["STATEFUL_STAGES"]


class _NegativeIsOff(Setting):
    """Adaptive-p's target: any negative value switches the stage off, as in llama.cpp
    ("negative = disabled"); it is stored as the "off" value, so the row is off everywhere."""

    def check(self, value: object) -> Any:
        number = super().check(value)
        return self.off if number < 0 else number

STATEFUL_STAGES: tuple[StageSpec, ...] = (
    StageSpec(
        "mirostat",
        mirostat.mirostat,
        (
            Setting(
                "mirostat",
                int,
                0,
                "0 (off), 1 or 2",
                "Mirostat version; replaces the truncation stages (as in llama.cpp).",
                between(0, 2),  # an int: 0, 1 or 2
                title="Mirostat version",
                example=2,
                slider=Slider(0, 2, 1),
            ),
            Setting(
                "mirostat_tau",
                float,
                5.0,
                "mirostat_tau > 0, finite",
                "Mirostat's target surprise τ (bits); μ starts at 2τ.",
                between(0, math.inf, low_open=True, high_open=True),
                activates=False,
                title="Mirostat target surprise τ",
                example=3.0,
                slider=Slider(0.1, 10, 0.1),
            ),
            Setting(
                "mirostat_eta",
                float,
                0.1,
                "mirostat_eta >= 0, finite",
                "Mirostat's learning rate η: μ ← μ − η(surprise − τ) after each token.",
                between(0, math.inf, high_open=True),
                activates=False,
                title="Mirostat learning rate η",
                example=0.2,
                slider=Slider(0, 1, 0.01),
            ),
        ),
        "llama.cpp mirostat / mirostat_v2 (Basu et al. 2021)",
        title="Mirostat",
        group="adaptive",
        summary=(
            "Replaces truncation by a cut that adapts each step so that the text's surprise stays "
            "near a target."
        ),
    ),
    StageSpec(
        "adaptive_p",
        adaptive_p.adaptive_p,
        (
            _NegativeIsOff(
                "adaptive_target",
                float,
                -1.0,
                "-1 <= adaptive_target <= 1 (negative = off)",
                "Adaptive-p: favour tokens near this probability (the average chosen drifts to"
                " it); always last in the chain.",
                between(-1, 1),
                title="Adaptive-p target probability",
                example=0.3,
                slider=Slider(-1, 1, 0.01),
            ),
            Setting(
                "adaptive_decay",
                float,
                0.9,
                "0 <= adaptive_decay <= 0.99",
                "Adaptive-p: how slowly its average of chosen probabilities forgets"
                " (about 1 / (1 − decay) tokens).",
                between(0, 0.99),
                activates=False,
                title="Adaptive-p decay",
                example=0.5,
                slider=Slider(0, 0.99, 0.01),
            ),
        ),
        "llama.cpp adaptive_p (PR #17927)",
        title="Adaptive-p",
        group="adaptive",
        summary=(
            "Favours tokens whose probability is close to a target, and moves that target so"
            " the probabilities of the tokens actually picked average out to it."
        ),
    ),
    StageSpec(
        "grammar",
        grammar.grammar,
        (
            Setting(
                "grammar",
                str,
                "",
                "a grammar's text in grammar_syntax (empty = off)",
                "Constrain the text to this grammar: each step only the tokens it allows.",
                title="Grammar (constraint)",
                example='root ::= "yes" | "no"',
            ),
            Setting(
                "grammar_syntax",
                str,
                "gbnf",
                f"one of {', '.join(SYNTAXES)}",
                "The grammar's syntax: GBNF (llama.cpp), Lark, a regular expression or a JSON"
                " schema.",
                lambda value: value in SYNTAXES,
                activates=False,
                title="Grammar syntax",
                # the grammar's example read as a regular expression is one too, so that the
                # two examples together (the page's check, tests/test_page_twins.py) are valid
                example="regex",
            ),
            Setting(
                "grammar_mode",
                str,
                "auto",
                f"one of {', '.join(GRAMMAR_MODES)}",
                "Where the mask acts: mask (first, as transformers and vLLM), resample (as"
                " llama.cpp: draw without it, and only if that token is illegal, draw again"
                " after it) or auto (resample under the llama.cpp preset, mask elsewhere).",
                lambda value: value in GRAMMAR_MODES,
                activates=False,
                title="Grammar mode",
                example="resample",
            ),
        ),
        "llama.cpp grammar (GBNF, llama_sampler_init_grammar); vLLM structured outputs"
        " (xgrammar, llguidance); transformers logits processors; matcher: llguidance",
        title="Grammar (constrained decoding)",
        group="advanced",
        summary=(
            "Allows, at each step, only the tokens that keep the text inside a grammar (a JSON"
            " schema, a regular expression, GBNF or Lark), and shows how much of the model's"
            " probability that removes."
        ),
    ),
)
