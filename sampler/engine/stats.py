"""`StepStats`: what one sampling step did to each row's distribution, computed exactly.

Definitions (nats throughout):

* ``entropy_base``: entropy of the model's own distribution, softmax of the raw logits (τ = 1,
  no penalties, no filters);
* ``entropy_temp``: after logit bias, penalties and temperature, before any truncation;
* ``entropy_final``: of the distribution the token is actually drawn from;
* ``surprisal`` / ``surprisal_base``: ``-log p`` of the chosen token under the final / base
  distribution;
* ``top1_prob``: the largest final probability; ``kept_tokens``: how many tokens the final
  distribution allows; ``kept_mass``: the base probability of those tokens;
* ``kl_final_base``: ``KL(final || base) = Σ q_i log(q_i / p_i)``;
* ``base_argmax``: the base distribution's most likely token (lowest id on ties), so that
  "did sampling pick what greedy would have" is one comparison;
* what adaptive and stateful stages did (NaN where the stage is off, see :data:`TELEMETRY`):
  ``temperature_chosen``, the temperature dynamic temperature chose; ``mirostat_mu``, mirostat's
  target surprise μ before the step (its kept tokens are ``kept_tokens``); ``xtc_fired`` (1 or
  0) and ``xtc_removed``, whether XTC's coin fired and how many tokens it removed;
  ``dry_match`` and ``dry_penalty``, the longest repeat DRY found a continuation of and the
  largest penalty it subtracted; ``adaptive_average`` and ``adapted_target``, adaptive-p's
  running average of chosen probabilities before the step and the target it aimed at there;
  ``grammar_allowed``, ``grammar_removed_mass``, ``grammar_kl``, ``grammar_top1_illegal`` and
  ``grammar_forced``, what a constraint's mask did (:mod:`sampler.engine.filters.grammar`);
  ``grammar_resampled``, 1 where a row that resamples as llama.cpp does drew its token again
  after the mask (:mod:`sampler.engine.resample`; the other statistics of such a row are of
  the mixture law its token follows).

Each full-vocabulary quantity costs one exponential pass; the final distribution's weights
are shared with the draw, and nothing is computed twice when stages leave logits unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from sampler.engine.candidates import overflow_is_infinite
from sampler.engine.filters.grammar import GRAMMAR_NOTES, RESAMPLED_NOTE
from sampler.engine.final_distribution import FinalDistribution
from sampler.entropy import (
    entropy_from_weights,
    row_dot,
    row_softmax_sums,
    scratch,
    weight_sums,
    weighted_sum,
)

__all__ = ["TELEMETRY", "StepStats", "step_stats", "telemetry_fields"]

# Fields that report what a stage did rather than measure the distributions: where each comes
# from is the stage's note (Candidates.notes) or the sampler's per-row state.
TELEMETRY = (
    "temperature_chosen",
    "mirostat_mu",
    "xtc_fired",
    "xtc_removed",
    "dry_match",
    "dry_penalty",
    "adaptive_average",
    "adapted_target",
    *GRAMMAR_NOTES,
    RESAMPLED_NOTE,
)


@dataclass(frozen=True)
class StepStats:
    """Per-row statistics of one step; every field is an array ``[B]``."""

    entropy_base: np.ndarray
    entropy_temp: np.ndarray
    entropy_final: np.ndarray
    surprisal: np.ndarray
    surprisal_base: np.ndarray
    top1_prob: np.ndarray
    kept_tokens: np.ndarray
    kept_mass: np.ndarray
    kl_final_base: np.ndarray
    base_argmax: np.ndarray
    temperature_chosen: np.ndarray
    mirostat_mu: np.ndarray
    xtc_fired: np.ndarray
    xtc_removed: np.ndarray
    dry_match: np.ndarray
    dry_penalty: np.ndarray
    adaptive_average: np.ndarray
    adapted_target: np.ndarray
    grammar_allowed: np.ndarray
    grammar_removed_mass: np.ndarray
    grammar_kl: np.ndarray
    grammar_top1_illegal: np.ndarray
    grammar_forced: np.ndarray
    grammar_resampled: np.ndarray

    def row(self, index: int) -> dict[str, float]:
        """One row's statistics as plain numbers; telemetry only where its stage was on."""
        # Not dataclasses.asdict: it deep-copies every array, once per row per step.
        values = {name: getattr(self, name)[index].item() for name in self.__dataclass_fields__}
        for name in TELEMETRY:
            if math.isnan(values[name]):
                del values[name]
        return values

    @classmethod
    def concatenate(cls, parts: list[tuple[np.ndarray, StepStats]], size: int) -> StepStats:
        """Scatter per-group statistics (with their row indices) back into batch order."""
        if len(parts) == 1 and len(parts[0][0]) == size:
            return parts[0][1]  # one group of every row, in order (groups list rows ascending)
        fields = {}
        for name in cls.__dataclass_fields__:
            out = np.empty(size, dtype=getattr(parts[0][1], name).dtype)
            for rows, stats in parts:
                out[rows] = getattr(stats, name)
            fields[name] = out
        return cls(**fields)


@overflow_is_infinite
def step_stats(
    raw: np.ndarray,
    raw_peak: np.ndarray,
    tempered: np.ndarray,
    final: FinalDistribution,
    columns: np.ndarray,
    tokens: np.ndarray,
    telemetry: Mapping[str, np.ndarray] | None = None,
) -> StepStats:
    """Statistics of one step for one group of rows.

    Parameters
    ----------
    raw, raw_peak
        The model's logits ``[B, V]`` and their row maxima.
    tempered
        The dense logits after bias, penalties and temperature, nothing dropped. When it is
        ``raw`` itself or ``final.logits`` itself, its entropy is not computed again.
    final
        The distribution the tokens were drawn from; ``columns`` and ``tokens`` the draw.
    telemetry
        The :data:`TELEMETRY` fields the stages reported (missing ones are NaN).
    """
    batch = np.arange(raw.shape[0])
    base_argmax = np.argmax(raw, axis=1)
    if tempered is raw or final.frozen.all():
        temp_source = None
    else:
        temp_source = "final" if tempered is final.logits else tempered
    base = _base_sums(raw, raw_peak, base_argmax, final, temp_source)
    base_log_total = np.log(base.total)
    log_z_final = np.log(final.total)
    greedy = final.greedy
    if final.ids is None:
        sampled_entropy = log_z_final - base.final_weighted / final.total
        cross = base.cross / final.total - base_log_total
        support_size, kept_mass = base.support_size, base.kept_mass
    else:
        shifted_final = final.logits - final.peak[:, None].astype(final.logits.dtype)
        sampled_entropy = entropy_from_weights(final.weights, shifted_final, final.total)
        base_log_probs = np.take_along_axis(raw, final.ids, axis=1) - raw_peak[:, None]
        cross = weighted_sum(final.weights, base_log_probs) / final.total - base_log_total
        support = final.support()
        kept_base = np.where(support, np.exp(base_log_probs), 0.0).sum(axis=1, dtype=np.float64)
        support_size = support.sum(axis=1)
        kept_mass = np.minimum(kept_base / base.total, 1)
    entropy_final = np.where(greedy, 0.0, sampled_entropy)
    entropy_base = base_log_total - base.weighted / base.total
    if tempered is raw:
        entropy_temp = entropy_base
    elif final.frozen.all():
        # Temperature 0 leaves only the tied maxima: the entropy of a uniform over them.
        entropy_temp = np.log(np.isfinite(tempered).sum(axis=1))
    else:
        entropy_temp = base.temp_entropy

    chosen_base = (raw[batch, tokens] - raw_peak).astype(np.float64) - base_log_total
    chosen_final = final.logits[batch, columns] - final.peak
    return StepStats(
        entropy_base=entropy_base,
        entropy_temp=np.asarray(entropy_temp, dtype=np.float64),
        entropy_final=entropy_final,
        surprisal=np.where(greedy, 0.0, log_z_final - chosen_final),
        surprisal_base=-chosen_base,
        top1_prob=np.where(greedy, 1.0, 1.0 / final.total),
        kept_tokens=np.where(greedy, 1, support_size).astype(np.int64),
        kept_mass=np.where(greedy, np.exp(chosen_base), kept_mass),
        # KL(q || p) = Σ q log q - Σ q log p = -H(q) - cross; a one-hot q gives -log p(token).
        kl_final_base=np.where(greedy, -chosen_base, np.maximum(-entropy_final - cross, 0.0)),
        base_argmax=base_argmax.astype(np.int64),
        **telemetry_fields(telemetry, len(batch)),
    )


def telemetry_fields(telemetry: Mapping[str, np.ndarray] | None, rows: int) -> dict:
    """The :data:`TELEMETRY` fields of ``rows`` rows as float arrays, NaN where not reported."""
    return {
        name: np.asarray((telemetry or {}).get(name, np.full(rows, np.nan)), float)
        for name in TELEMETRY
    }


@dataclass(frozen=True)
class _BaseSums:
    """Per row: the base softmax's sums and, for a dense final distribution, the sums that
    pair it with the final weights (``cross = Σ q·log p_base``, the support and its mass)."""

    total: np.ndarray  # Σ exp(x - max x)
    weighted: np.ndarray  # Σ exp(x - max x) · (x - max x)
    final_weighted: np.ndarray  # Σ w_final · (y - max y), dense final only
    cross: np.ndarray  # Σ w_final · (x - max x), dense final only
    support_size: np.ndarray  # dense final only
    kept_mass: np.ndarray  # base mass of the support, dense final only
    temp_entropy: np.ndarray  # entropy of the tempered logits, when asked for


def _base_sums(
    raw: np.ndarray,
    raw_peak: np.ndarray,
    base_argmax: np.ndarray,
    final: FinalDistribution,
    tempered: np.ndarray | str | None,
) -> _BaseSums:
    """Row by row, in cache: the base (and tempered) distributions are never stored whole.

    ``tempered``: the tempered logits, ``"final"`` when they are the final distribution's
    own logits (its weights are then reused), or ``None`` (not needed). The base and tempered
    sums use :func:`~sampler.entropy.weight_sums` with the row's maximum set apart: the same
    numbers whichever way a row's tempered logits arrive, so a row's statistics do not depend
    on its batch.
    """
    rows, width = raw.shape
    sums = {name: np.zeros(rows) for name in _BaseSums.__dataclass_fields__}
    sums["support_size"] = np.ones(rows, dtype=np.int64)
    shifted, weights, product = scratch("stats.base", 3, width, raw.dtype)
    dense = final.ids is None
    final_shifted, final_product = scratch("stats.final", 2, width, final.logits.dtype)
    if isinstance(tempered, np.ndarray):
        temp_shifted, temp_weights = scratch("stats.temp", 2, width, tempered.dtype)
    for i in range(rows):
        total, weighted = row_softmax_sums(
            raw[i], raw_peak[i], shifted, weights, product, top=int(base_argmax[i])
        )
        sums["total"][i], sums["weighted"][i] = total, weighted
        # a row whose maximum is 0 is its own shifted row: row_softmax_sums did not write the
        # scratch buffer then, which still holds an earlier row's numbers (or garbage)
        base_shifted = raw[i] if raw_peak[i] == 0 else shifted
        if isinstance(tempered, np.ndarray):
            top = int(tempered[i].argmax())
            total, weighted = row_softmax_sums(
                tempered[i], tempered[i][top], temp_shifted, temp_weights, final_product, top
            )
            sums["temp_entropy"][i] = np.log(total) - weighted / total
        if not dense or final.greedy[i]:
            continue  # a greedy row's final statistics follow from its token alone
        final_weights = final.weights[i]
        row_shifted = _shifted(final.logits[i], final.peak[i], final_shifted)
        if isinstance(tempered, str):
            top = int(final.logits[i].argmax())
            total, weighted = weight_sums(final_weights, row_shifted, final_product, top)
            sums["temp_entropy"][i] = np.log(total) - weighted / total
            # weight_sums left w · shifted in final_product, NaN-free (0 · -inf taken as 0, as
            # row_dot takes it): its float64 sum is row_dot's, without a second product
            sums["final_weighted"][i] = float(final_product.sum(dtype=np.float64))
        else:
            sums["final_weighted"][i] = row_dot(final_weights, row_shifted, final_product)
        sums["cross"][i] = row_dot(final_weights, base_shifted, final_product)
        support = final.row_support(row_shifted, final.total[i])
        if support.all():
            sums["support_size"][i], sums["kept_mass"][i] = width, 1.0
        else:
            kept = weights[support].sum(dtype=np.float64)
            sums["support_size"][i] = support.sum()
            sums["kept_mass"][i] = min(kept / sums["total"][i], 1.0)
    return _BaseSums(**sums)


def _shifted(logits: np.ndarray, peak: np.generic, out: np.ndarray) -> np.ndarray:
    """``logits - peak`` of one row, in ``out``; the row itself when ``peak`` is +0.0 (the
    tempered rows' maximum), where the difference is the row exactly and need not be made."""
    if peak == 0 and not np.signbit(peak):
        return logits
    return np.subtract(logits, peak.astype(logits.dtype), out=out)
