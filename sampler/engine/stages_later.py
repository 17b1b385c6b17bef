"""The stage table's later rows: transformers' information-based truncations (typical,
epsilon, eta, top-H), the samplers from llama.cpp and text-generation-webui beyond
transformers' warpers (smoothing, top-a, tail-free, top-n-σ, XTC, mirostat, adaptive-p), and
the constraint (a grammar's token mask).

:data:`sampler.engine.stages.STAGES` lists these after its own rows, in this order; the table
is one table, kept in two files so that each stays short. See that module for what a row holds
and how a stage is added.
"""

from __future__ import annotations

import math
from typing import Any

from sampler.engine.constraints import SYNTAXES
from sampler.engine.filters import (
    adaptive_p,
    grammar,
    information,
    mirostat,
    shaping,
    truncation,
    xtc,
)
from sampler.engine.settings import Setting, Slider, StageSpec, between

__all__ = ["LATER_STAGES"]


class _NegativeIsOff(Setting):
    """Adaptive-p's target: any negative value switches the stage off, as in llama.cpp
    ("negative = disabled"); it is stored as the "off" value, so the row is off everywhere."""

    def check(self, value: object) -> Any:
        number = super().check(value)
        return self.off if number < 0 else number


LATER_STAGES: tuple[StageSpec, ...] = (
    StageSpec(
        "typical_p",
        information.typical_p,
        (
            Setting(
                "typical_p",
                float,
                1.0,
                "0 < typical_p <= 1 (1 = off)",
                "Locally typical sampling with mass P.",
                between(0, 1, low_open=True),
                title="Typical-p (locally typical)",
                example=0.9,
                slider=Slider(0.01, 1, 0.01),
            ),
        ),
        "transformers TypicalLogitsWarper (Meister et al. 2023)",
        title="Typical-p (locally typical)",
        group="truncation",
        summary=(
            "Keeps the tokens whose surprise is closest to the average surprise (the entropy), "
            "until they hold mass p."
        ),
    ),
    StageSpec(
        "epsilon",
        information.epsilon,
        (
            Setting(
                "epsilon",
                float,
                0.0,
                "0 <= epsilon < 1 (0 = off)",
                "Drop tokens with p < E.",
                between(0, 1, high_open=True),
                title="Epsilon cutoff (ε)",
                example=0.01,
                slider=Slider(0, 0.2, 0.001),
            ),
        ),
        "transformers EpsilonLogitsWarper (Hewitt et al. 2022)",
        title="Epsilon cutoff",
        group="truncation",
        summary="Drops every token less likely than a fixed probability ε.",
    ),
    StageSpec(
        "eta",
        information.eta,
        (
            Setting(
                "eta",
                float,
                0.0,
                "0 <= eta < 1 (0 = off)",
                "Drop tokens with p < min(E, √E·exp(−H)).",
                between(0, 1, high_open=True),
                title="Eta cutoff (η)",
                example=0.02,
                slider=Slider(0, 0.2, 0.001),
            ),
        ),
        "transformers EtaLogitsWarper (Hewitt et al. 2022)",
        title="Eta cutoff",
        group="truncation",
        summary=(
            "Drops the tokens below a threshold that is lower when the model is unsure (its "
            "entropy is high)."
        ),
    ),
    StageSpec(
        "smoothing",
        shaping.smoothing,
        (
            Setting(
                "smoothing_factor",
                float,
                0.0,
                "0 <= smoothing_factor <= 10 (0 = off)",
                "Quadratic smoothing: x' = -k·f·d² + s·f·d³ + max, d = x - max.",
                between(0, 10),
                title="Smoothing factor",
                example=0.4,
                slider=Slider(0, 10, 0.05),
            ),
            Setting(
                "smoothing_curve",
                float,
                1.0,
                "1 <= smoothing_curve <= 10",
                "Smoothing curve: 1 quadratic; above 1 the cubic term steepens the tail.",
                between(1, 10),
                activates=False,
                title="Smoothing curve",
                example=2.0,
                slider=Slider(1, 10, 0.05),
            ),
        ),
        "text-generation-webui QuadraticSamplingLogitsWarper (modules/sampler_hijack.py, dceb23c7)",
        title="Quadratic smoothing",
        group="advanced",
        summary=(
            "Bends the logits around the top one along a quadratic (or steeper) curve: tokens near "
            "the top come closer to it, the tail falls away."
        ),
    ),
    StageSpec(
        "top_a",
        truncation.top_a,
        (
            Setting(
                "top_a",
                float,
                0.0,
                "0 <= top_a <= 1 (0 = off)",
                "Keep tokens with p >= A × p_max².",
                between(0, 1),
                title="Top-a",
                example=0.2,
                slider=Slider(0, 1, 0.01),
            ),
        ),
        "text-generation-webui TopALogitsWarper (modules/sampler_hijack.py, dceb23c7)",
        title="Top-a",
        group="truncation",
        summary=(
            "Keeps the tokens at least a × (top probability)² likely: a strict cut when the model "
            "is sure, a loose one when it is not."
        ),
    ),
    StageSpec(
        "tfs",
        truncation.tfs,
        (
            Setting(
                "tfs",
                float,
                1.0,
                "0 <= tfs <= 1 (1 = off)",
                "Tail-free: cut where the sorted probabilities' curvature mass passes Z.",
                between(0, 1),
                title="Tail-free sampling (z)",
                example=0.9,
                slider=Slider(0, 1, 0.01),
            ),
        ),
        "text-generation-webui TailFreeLogitsWarper (modules/sampler_hijack.py, dceb23c7)",
        title="Tail-free sampling",
        group="truncation",
        summary=(
            "Cuts the tail where the sorted probabilities stop falling steeply (where their "
            "curvature is spent)."
        ),
    ),
    StageSpec(
        "top_n_sigma",
        truncation.top_n_sigma,
        (
            Setting(
                "top_n_sigma",
                float,
                0.0,
                "0 <= top_n_sigma, finite (0 = off)",
                "Keep logits >= max − N·σ (needs a chain with top_n_sigma, e.g. llama.cpp).",
                between(0, math.inf, high_open=True),
                title="Top-nσ (standard deviations)",
                example=1.5,
                slider=Slider(0, 5, 0.05),
            ),
        ),
        "llama.cpp top_n_sigma (Tang et al. 2024)",
        title="Top-nσ",
        group="truncation",
        summary="Keeps the tokens whose logit is within n standard deviations of the top logit.",
    ),
    StageSpec(
        "top_h",
        information.top_h,
        (
            Setting(
                "top_h",
                float,
                0.0,
                "0 <= top_h <= 1 (0 = off)",
                "Top-H: keep the top tokens while their entropy stays <= H × the top 100's.",
                between(0, 1),
                title="Top-H (entropy share)",
                example=0.4,
                slider=Slider(0, 1, 0.01),
            ),
        ),
        "transformers TopHLogitsWarper (Potraghloo et al. 2025, arXiv 2509.02510)",
        title="Top-H",
        group="truncation",
        summary=(
            "Keeps the most likely tokens, in order, until their share of the uncertainty"
            " (entropy) reaches a set fraction of the whole."
        ),
    ),
    StageSpec(
        "xtc",
        xtc.xtc,
        (
            Setting(
                "xtc_probability",
                float,
                0.0,
                "0 <= xtc_probability <= 1 (0 = off)",
                "XTC: the chance per step of removing the top choices.",
                between(0, 1),
                title="XTC chance per step",
                example=0.5,
                slider=Slider(0, 1, 0.01),
            ),
            Setting(
                "xtc_threshold",
                float,
                0.1,
                "0 <= xtc_threshold <= 1 (above 0.5 XTC does nothing, as in llama.cpp)",
                "XTC removes the tokens with p >= T except the least likely of them.",
                between(0, 1),
                activates=False,
                title="XTC threshold",
                example=0.2,
                slider=Slider(0, 0.5, 0.01),
            ),
        ),
        "llama.cpp xtc (PR #9742); text-generation-webui XTCLogitsWarper",
        title="XTC (exclude top choices)",
        group="adaptive",
        summary=(
            "With a chance each step, removes the likeliest tokens (all above a threshold but the "
            "least likely of them), to steer the text off its most predictable path."
        ),
    ),
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
