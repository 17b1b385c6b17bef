"""The stage table's later rows: transformers' information-based truncations (typical,
epsilon, eta, top-H) and the samplers from llama.cpp and text-generation-webui beyond
transformers' warpers (smoothing, top-a, tail-free, top-n-σ, XTC).

:data:`sampler.engine.stages.STAGES` lists these after its own rows, in this order, and then
the stateful rows (:mod:`sampler.engine.stages_stateful`); the table is one table, kept in
three files so that each stays short. See that module for what a row holds
and how a stage is added.
"""

from __future__ import annotations

import math

from sampler.engine.filters import (
    information,
    shaping,
    truncation,
    xtc,
)
from sampler.engine.settings import Setting, Slider, StageSpec, between

__all__ = ["LATER_STAGES"]


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
)
