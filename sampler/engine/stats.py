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
  "did sampling pick what greedy would have" is one comparison.

Each full-vocabulary quantity costs one exponential pass; the final distribution's weights
are shared with the draw, and nothing is computed twice when stages leave logits unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sampler.engine.final_distribution import FinalDistribution
from sampler.entropy import entropy_from_weights, normalize, weighted_sum

__all__ = ["StepStats", "step_stats"]


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

    def row(self, index: int) -> dict[str, float]:
        """One row's statistics as plain numbers."""
        # Not dataclasses.asdict: it deep-copies every array, once per row per step.
        return {name: getattr(self, name)[index].item() for name in self.__dataclass_fields__}

    @classmethod
    def concatenate(cls, parts: list[tuple[np.ndarray, StepStats]], size: int) -> StepStats:
        """Scatter per-group statistics (with their row indices) back into batch order."""
        fields = {}
        for name in cls.__dataclass_fields__:
            out = np.empty(size, dtype=getattr(parts[0][1], name).dtype)
            for rows, stats in parts:
                out[rows] = getattr(stats, name)
            fields[name] = out
        return cls(**fields)


def step_stats(
    raw: np.ndarray,
    raw_peak: np.ndarray,
    tempered: np.ndarray,
    final: FinalDistribution,
    columns: np.ndarray,
    tokens: np.ndarray,
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
    """
    batch = np.arange(raw.shape[0])
    base = normalize(raw, raw_peak)  # log p_base = base.shifted - base.log_total
    log_z_final = np.log(final.total)
    shifted_final = final.logits - final.peak[:, None].astype(final.logits.dtype)
    sampled_entropy = entropy_from_weights(final.weights, shifted_final, final.total)
    entropy_final = np.where(final.greedy, 0.0, sampled_entropy)
    if tempered is raw:
        entropy_temp = base.entropy
    elif tempered is final.logits:
        entropy_temp = sampled_entropy
    elif final.frozen.all():
        # Temperature 0 leaves only the tied maxima: the entropy of a uniform over them.
        entropy_temp = np.log(np.isfinite(tempered).sum(axis=1))
    else:
        entropy_temp = normalize(tempered).entropy

    support = final.support()  # what kept_tokens counts and kept_mass weighs
    if final.ids is None:
        base_log_probs = base.shifted  # minus log Z, below
    else:
        base_log_probs = np.take_along_axis(base.shifted, final.ids, axis=1)
    # Σ_kept q_i log p_i, and the base mass of the kept set.
    cross = weighted_sum(final.weights, base_log_probs) / final.total - base.log_total
    if final.ids is None and support.all():
        kept_mass = np.ones(len(batch))  # nothing dropped: all the base mass is kept
    else:
        kept_base = np.where(support, np.exp(base_log_probs), 0.0)
        kept_mass = np.minimum(kept_base.sum(axis=1, dtype=np.float64) / np.exp(base.log_total), 1)

    chosen_base = (base.shifted[batch, tokens] - base.log_total).astype(np.float64)
    chosen_final = final.logits[batch, columns] - final.peak
    greedy = final.greedy
    return StepStats(
        entropy_base=base.entropy,
        entropy_temp=np.asarray(entropy_temp, dtype=np.float64),
        entropy_final=entropy_final,
        surprisal=np.where(greedy, 0.0, log_z_final - chosen_final),
        surprisal_base=-chosen_base,
        top1_prob=np.where(greedy, 1.0, 1.0 / final.total),
        kept_tokens=support.sum(axis=1).astype(np.int64),
        kept_mass=np.where(greedy, np.exp(chosen_base), kept_mass),
        # KL(q || p) = Σ q log q - Σ q log p = -H(q) - cross; a one-hot q gives -log p(token).
        kl_final_base=np.where(greedy, -chosen_base, np.maximum(-entropy_final - cross, 0.0)),
        base_argmax=np.argmax(raw, axis=1).astype(np.int64),
    )
