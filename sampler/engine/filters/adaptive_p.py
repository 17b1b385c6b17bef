"""Adaptive-p (llama.cpp PR #17927): prefer tokens whose probability is near a target.

Each step, over the candidates the chain left, with ``p`` their softmax:

* the *adapted* target is ``clip(2·target − average, 0, 1)``, where ``average`` is the
  exponential moving average of the (pre-transform) probabilities of the tokens chosen so far:
  ``average = S / W`` with ``S ← p_chosen + decay·S`` and ``W ← 1 + decay·W`` after each draw,
  starting from ``S = target / (1 − decay)``, ``W = 1 / (1 − decay)`` (so the first step's
  adapted target is the target itself). Picking likely tokens lowers the next target;
* every candidate's logit becomes ``5 − 10·d² / (1 + d)``, ``d = |p − adapted| / 0.3``: the
  tokens nearest the adapted target get the largest logits, quadratically near it and
  linearly far from it; tokens already dropped (``-inf``) stay dropped.

The stage is the transform at a given state (``rows.state["adaptive_p_sum"]`` and
``["adaptive_p_weight"]``, see :mod:`sampler.engine.state`); the update after the draw is the
sampler's, from the ``p`` of the drawn token (:func:`chosen_prior`). Like llama.cpp, which
always puts it at the very end of its chain (it draws the token), the chain runs it last
(:attr:`SamplingParams.stages`).

Source: llama.cpp ``src/llama-sampler.cpp`` (``llama_sampler_adaptive_p_apply``, ``_accept``,
``llama_sampler_init_adaptive_p``; read at ggml-org/llama.cpp 00efb3e1) and
``common/sampling.cpp`` (``use_adaptive_p``: the sampler is added after every other one).
llama.cpp works in float32; here ``p`` and the state are float64.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np

from sampler.engine.candidates import Candidates
from sampler.entropy import normalize

if TYPE_CHECKING:
    from sampler.engine.rows import RowParams

__all__ = [
    "DISTRIBUTION_WIDTH",
    "PEAK_LOGIT",
    "SHARPNESS",
    "adapted_target",
    "adaptive_p",
    "chosen_prior",
    "initial_adaptive_state",
    "transformed_logits",
]

# llama.cpp's constants (DISTRIBUTION_WIDTH, PEAK_LOGIT_VALUE, SHARPNESS)
DISTRIBUTION_WIDTH = 0.3
PEAK_LOGIT = 5.0
SHARPNESS = 10.0


def adapted_target(target: np.ndarray, total: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """The step's target: ``clip(2·target − S/W, 0, 1)`` (the target itself while ``W = 0``)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        moved = np.where(weight == 0, target, 2.0 * target - total / weight)
    return np.clip(moved, 0.0, 1.0)


def transformed_logits(probs: np.ndarray, target: np.ndarray) -> np.ndarray:
    """``5 − 10·d² / (1 + d)`` with ``d = |p − target| / 0.3``, ``target`` one per row."""
    distance = np.abs(probs - target[:, None]) / DISTRIBUTION_WIDTH
    return PEAK_LOGIT - SHARPNESS * distance * distance / (1.0 + distance)


def initial_adaptive_state(rows: RowParams) -> tuple[np.ndarray, np.ndarray]:
    """``(S, W)`` before a row's first step: ``target / (1 − decay)`` and ``1 / (1 − decay)``
    (NaN on rows without adaptive-p; decay <= 0.99, so both are finite)."""
    on = rows.on("adaptive_p")
    weight = 1.0 / (1.0 - np.where(on, rows["adaptive_decay"], 0.0))
    return np.where(on, rows["adaptive_target"] * weight, np.nan), np.where(on, weight, np.nan)


def adaptive_p(candidates: Candidates, rows: RowParams) -> Candidates:
    """Rewrite each row's logits by their probability's distance to the adapted target.

    Notes per row (NaN where off): ``adaptive_average`` (``S/W`` before the step) and
    ``adapted_target``; and, for the state's update, ``adaptive_p_prior`` (each candidate's
    ``p`` before the transform, ``[B, N]``) with ``adaptive_p_ids`` (their token ids).
    """
    active = rows.on("adaptive_p")
    if not active.any():
        return candidates
    target = rows["adaptive_target"]
    total, weight = rows.state.get("adaptive_p_sum"), rows.state.get("adaptive_p_weight")
    if total is None or weight is None:  # a row's first step (a trace of the chain)
        total, weight = initial_adaptive_state(rows)
    logits = candidates.logits
    normalized = normalize(logits)
    probs = normalized.weights / normalized.total[:, None]
    adapted = adapted_target(target, total, weight)
    rewritten = transformed_logits(probs, np.where(active, adapted, 0.0))
    keep = ~active[:, None] | np.isneginf(logits)
    out = np.where(keep, logits, rewritten).astype(logits.dtype)
    with np.errstate(divide="ignore", invalid="ignore"):
        average = np.where(active, total / weight, np.nan)
    return candidates.with_logits(out).noted(
        adaptive_average=average,
        adapted_target=np.where(active, adapted, np.nan),
        adaptive_p_prior=np.where(active[:, None], probs, np.nan),
        adaptive_p_ids=candidates.token_ids(),
    )


def chosen_prior(notes: Mapping[str, np.ndarray], tokens: np.ndarray) -> np.ndarray:
    """Per row, the pre-transform probability of the drawn token (NaN where adaptive-p was
    off or did not run): what the running average takes in after the draw."""
    prior = notes.get("adaptive_p_prior")
    if prior is None:
        return np.full(len(tokens), np.nan)
    column = np.argmax(notes["adaptive_p_ids"] == tokens[:, None], axis=1)
    return prior[np.arange(len(tokens)), column]
