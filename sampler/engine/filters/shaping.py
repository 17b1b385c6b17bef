"""Stages that reshape logits without dropping tokens: bias, penalties, temperature, smoothing."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from sampler.engine.candidates import Candidates, saturate
from sampler.entropy import normalize
from sampler.errors import InvalidInputError
from sampler.softmax import divide_by_temperature

if TYPE_CHECKING:
    from sampler.engine.rows import RowParams

__all__ = ["dynamic_temperature", "logit_bias", "penalties", "smoothing", "temperature"]


def _columns(candidates: Candidates, row: int, tokens: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Columns of ``row`` holding ``tokens`` (sorted, unique), and which tokens they are."""
    if candidates.ids is None:
        present = tokens < candidates.vocab_size
        return tokens[present], np.nonzero(present)[0]
    ids = candidates.ids[row]
    where = np.clip(np.searchsorted(tokens, ids), 0, max(len(tokens) - 1, 0))
    hit = tokens[where] == ids if len(tokens) else np.zeros(ids.shape, bool)
    return np.nonzero(hit)[0], where[hit]


def temperature(candidates: Candidates, rows: RowParams) -> Candidates:
    """Divide each row's logits, shifted so their maximum is 0, by its temperature.

    ``(x - max x) / τ`` is the distribution of transformers' ``TemperatureLogitsWarper``
    (``x / τ``), but cannot overflow however small τ is (``x / τ`` turns ``[1e36, 1e35, 0]``
    at τ = 1e-3 into infinities and NaN). τ = 0 keeps only the tied maxima (the τ → 0 limit)
    and τ = inf every unmasked token equally (the τ → ∞ limit); see
    :func:`sampler.softmax.divide_by_temperature`. A stage after this one sees logits whose
    maximum is 0, which matters only to the sign-dependent repetition penalty placed after
    temperature in a custom order.

    With ``dynatemp_range`` > 0 the row's temperature is chosen from its own entropy, as
    llama.cpp's ``temp_ext`` sampler does (src/llama-sampling.cpp,
    ``llama_sampler_temp_ext_apply``): with ``N`` tokens still allowed and ``H`` the entropy
    of their softmax, ``τ' = lo + (hi - lo) · (H / ln N)^exponent``, ``lo = max(0, τ - range)``,
    ``hi = τ + range``; nothing changes when ``N <= 1``. ``N`` counts the tokens still allowed,
    except in rows whose preset ranks ties (the llama.cpp preset): there it is llama.cpp's
    array size, which also counts entries a bias, the model or top-n-σ set to ``-inf`` while
    no truncation removed them (``Candidates.array_size``).
    """
    if not rows.on("temperature").any():
        return candidates
    logits = candidates.logits
    # a spread beyond the dtype's range (1e308 and -1e308) is -inf below the max: probability 0
    with np.errstate(over="ignore"):
        shifted = logits - logits.max(axis=1, keepdims=True)
    tau = rows["temperature"]
    # greedy and hardmax rows stay τ = 0, and τ = inf is inf ± R: uniform whatever R is
    dynamic = rows.on("dynatemp_range") & (tau > 0) & np.isfinite(tau)
    if dynamic.any():
        tau = tau.copy()
        allowed = np.isfinite(shifted).sum(axis=1)
        allowed = np.where(rows.ranked(), candidates.llama_array_size(), allowed)
        tau[dynamic] = dynamic_temperature(
            shifted[dynamic],
            tau[dynamic],
            rows["dynatemp_range"][dynamic],
            rows["dynatemp_exponent"][dynamic],
            allowed[dynamic],
        )
    tempered = candidates.with_logits(divide_by_temperature(shifted, tau[:, None]))
    if dynamic.any():  # what dynamic temperature chose, for the step statistics
        tempered = tempered.noted(temperature_chosen=np.where(dynamic, tau, np.nan))
    return tempered


def dynamic_temperature(
    shifted: np.ndarray,
    tau: np.ndarray,
    spread: np.ndarray,
    exponent: np.ndarray,
    allowed: np.ndarray | None = None,
) -> np.ndarray:
    """Per row, llama.cpp's entropy-scaled temperature (see :func:`temperature`); ``allowed``
    is ``N``, by default the count of finite logits."""
    if allowed is None:
        allowed = np.isfinite(shifted).sum(axis=1)
    entropy = normalize(shifted).entropy
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.clip(entropy / np.log(allowed), 0.0, 1.0)
    # τ + R beyond float64 is τ' = inf (uniform); inf · 0 is computed, then not chosen
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        low, high = np.maximum(0.0, tau - spread), tau + spread
        weight = ratio**exponent
        # (hi - lo) · 0 would be inf · 0 = NaN when hi overflowed: a weight of 0 is lo itself
        chosen = np.where(weight > 0, low + (high - low) * weight, low)
    return np.where(allowed > 1, chosen, tau)


def smoothing(candidates: Candidates, rows: RowParams) -> Candidates:
    """Quadratic / cubic smoothing: ``x' = -k f d² + s f d³ + h`` on the finite logits.

    text-generation-webui's ``QuadraticSamplingLogitsWarper`` (modules/sampler_hijack.py at
    commit dceb23c7): ``h`` the maximum logit, ``d = x - h``, ``f`` the smoothing factor,
    ``k = (3 - curve) / 2``, ``s = (curve - 1) / 2``; curve 1 is purely quadratic. One choice
    of ours: ``h`` is each row's own maximum (webui takes the maximum of the whole batch,
    which is the same for its usual batch of one).
    """
    active = rows.on("smoothing")
    if not active.any():
        return candidates
    logits = candidates.logits
    factor = np.where(active, rows["smoothing_factor"], 0.0)[:, None]
    curve = rows["smoothing_curve"][:, None]
    peak = logits.max(axis=1, keepdims=True).astype(np.float64)
    # -inf entries of d are kept as they are below; d² may overflow for a spread beyond 1e154
    with np.errstate(invalid="ignore", over="ignore"):
        # a finite spread beyond float64 (1e308 and -1e308) is held at its largest, not -inf
        d = np.maximum(logits.astype(np.float64) - peak, -np.finfo(np.float64).max)
        # f·d²·(s·d − k) is webui's −k·f·d² + s·f·d³ with d² factored out: d <= 0 makes
        # (s·d − k) finite, so an overflowing d² gives ±inf, never inf − inf = NaN
        smoothed = factor * d**2 * (((curve - 1) / 2) * d - (3 - curve) / 2) + peak
        out = np.where(np.isfinite(logits), smoothed, logits).astype(logits.dtype)
    return candidates.with_logits(saturate(out, logits))


def logit_bias(candidates: Candidates, rows: RowParams) -> Candidates:
    """Add each row's ``{token: bias}`` to its logits."""
    if not any(rows["logit_bias"]):
        return candidates
    out = candidates.logits.copy()
    for row, bias in enumerate(rows["logit_bias"]):
        if not bias:
            continue
        tokens = np.array(sorted(bias), dtype=np.int64)
        if tokens[-1] >= candidates.vocab_size:
            raise InvalidInputError(
                f"logit_bias token {int(tokens[-1])} is outside the vocabulary "
                f"(ids 0..{candidates.vocab_size - 1})"
            )
        values = np.array([bias[int(t)] for t in tokens], dtype=out.dtype)
        columns, which = _columns(candidates, row, tokens)
        out[row, columns] += values[which]
    return candidates.with_logits(out)


def penalties(candidates: Candidates, rows: RowParams) -> Candidates:
    """Repetition, frequency and presence penalties over each row's history.

    For every token seen in the last ``penalty_last_n`` history tokens (all when 0): a
    positive logit is divided by ``repetition_penalty`` and a negative one multiplied (as in
    transformers, vLLM and llama.cpp), then ``count * frequency_penalty + presence_penalty``
    is subtracted (OpenAI's and vLLM's definition).
    """
    active = rows.on("penalties")
    if rows.history is None or not active.any():
        return candidates
    out = candidates.logits.copy()
    kind = out.dtype.type
    for row in np.nonzero(active)[0]:
        history = rows.history[row]
        if rows["penalty_last_n"][row] > 0:
            history = history[-rows["penalty_last_n"][row] :]
        if len(history) == 0:
            continue
        tokens, counts = np.unique(history, return_counts=True)
        columns, which = _columns(candidates, row, tokens)
        before = out[row, columns]
        with np.errstate(over="ignore", under="ignore", divide="ignore", invalid="ignore"):
            # a penalty beyond float32 (1e-300, 1e300) is 0 or inf there: 0/0 and 0·inf are
            # NaN, but a logit of 0 stays 0 under any penalty
            penalty = kind(rows["repetition_penalty"][row])
            values = np.where(before < 0, before * penalty, before / penalty)
            values = np.where(before == 0, before, values)
        shift = counts[which] * rows["frequency_penalty"][row] + rows["presence_penalty"][row]
        with np.errstate(over="ignore"):
            out[row, columns] = saturate(values - shift.astype(out.dtype), before)
    return candidates.with_logits(out)
