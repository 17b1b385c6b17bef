"""The stage table's later rows: samplers from llama.cpp and text-generation-webui beyond
transformers' first warpers (smoothing, top-a, tail-free, top-n-σ, top-H, XTC, mirostat,
adaptive-p).

:data:`sampler.engine.stages.STAGES` lists these after its own rows, in this order; the table
is one table, kept in two files so that each stays short. See that module for what a row holds
and how a stage is added.
"""

from __future__ import annotations

import math
from typing import Any

from sampler.engine.filters import adaptive_p, information, mirostat, shaping, truncation, xtc
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
                example=2.0,
                slider=Slider(1, 10, 0.05),
            ),
        ),
        "text-generation-webui QuadraticSamplingLogitsWarper (modules/sampler_hijack.py, dceb23c7)",
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
                example=0.2,
                slider=Slider(0, 1, 0.01),
            ),
        ),
        "text-generation-webui TopALogitsWarper (modules/sampler_hijack.py, dceb23c7)",
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
                example=0.9,
                slider=Slider(0, 1, 0.01),
            ),
        ),
        "text-generation-webui TailFreeLogitsWarper (modules/sampler_hijack.py, dceb23c7)",
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
                example=1.5,
                slider=Slider(0, 5, 0.05),
            ),
        ),
        "llama.cpp top_n_sigma (Tang et al. 2024)",
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
                example=0.4,
                slider=Slider(0, 1, 0.01),
            ),
        ),
        "transformers TopHLogitsWarper (Potraghloo et al. 2025, arXiv 2509.02510)",
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
                example=0.2,
                slider=Slider(0, 0.5, 0.01),
            ),
        ),
        "llama.cpp xtc (PR #9742); text-generation-webui XTCLogitsWarper",
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
                example=0.2,
                slider=Slider(0, 1, 0.01),
            ),
        ),
        "llama.cpp mirostat / mirostat_v2 (Basu et al. 2021)",
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
                example=0.5,
                slider=Slider(0, 0.99, 0.01),
            ),
        ),
        "llama.cpp adaptive_p (PR #17927)",
    ),
)
