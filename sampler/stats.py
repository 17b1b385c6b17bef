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
* ``kl_final_base``: ``KL(final || base) = Σ q_i log(q_i / p_i)``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from sampler.candidates import Candidates, normalizer_and_entropy
from sampler.filters import temperature
from sampler.final import FinalDistribution
from sampler.rows import RowParams

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

    def row(self, index: int) -> dict[str, float]:
        """One row's statistics as plain numbers."""
        return {name: values[index].item() for name, values in asdict(self).items()}

    @classmethod
    def concatenate(cls, parts: list[tuple[np.ndarray, StepStats]], size: int) -> StepStats:
        """Scatter per-group statistics (with their row indices) back into batch order."""
        fields = {}
        for name in cls.__dataclass_fields__:
            first = getattr(parts[0][1], name)
            out = np.empty(size, dtype=first.dtype)
            for rows, stats in parts:
                out[rows] = getattr(stats, name)
            fields[name] = out
        return cls(**fields)


def _final_entropy(final: FinalDistribution) -> tuple[np.ndarray, np.ndarray]:
    """``(log Z relative to the row max, entropy)`` of the final distribution."""
    total = final.running[:, -1]
    peak = final.logits.max(axis=1, keepdims=True)
    shifted = final.logits - peak
    terms = np.multiply(
        final.weights, shifted, out=np.zeros_like(final.weights), where=final.weights > 0
    )
    entropy = np.log(total) - terms.sum(axis=1, dtype=np.float64) / total
    return np.log(total), np.where(final.greedy, 0.0, entropy)


def step_stats(
    raw: np.ndarray,
    shaped: Candidates,
    rows: RowParams,
    final: FinalDistribution,
    columns: np.ndarray,
    tokens: np.ndarray,
) -> StepStats:
    """Statistics of one step for one group of rows.

    ``raw`` are the model's logits ``[B, V]``, ``shaped`` the dense logits after bias and
    penalties, ``final`` the distribution drawn from, ``columns`` / ``tokens`` the draw.
    """
    batch = np.arange(raw.shape[0])
    log_z_base, entropy_base = normalizer_and_entropy(raw)
    if shaped.logits is raw and (rows.temperature == 1).all():
        entropy_temp = entropy_base
    else:
        entropy_temp = normalizer_and_entropy(temperature(shaped, rows).logits)[1]

    log_z_final, entropy_final = _final_entropy(final)
    finite = np.isfinite(final.logits)
    peak = final.logits.max(axis=1)
    chosen = final.logits[batch, columns]
    surprisal = np.where(final.greedy, 0.0, log_z_final - (chosen - peak))
    top1 = np.where(final.greedy, 1.0, 1.0 / final.running[:, -1])
    kept = np.where(final.greedy, 1, finite.sum(axis=1))

    # Base log-probabilities of the kept tokens, for kept mass and KL.
    base_at = raw if final.ids is None else np.take_along_axis(raw, final.ids, axis=1)
    base_log_probs = base_at - log_z_base[:, None]
    base_probs = np.where(finite, np.exp(base_log_probs), 0.0)
    probs = final.probabilities()
    log_probs = np.where(probs > 0, final.logits - peak[:, None] - log_z_final[:, None], 0.0)
    kl_terms = np.where(probs > 0, probs * (log_probs - base_log_probs), 0.0)
    greedy_kept = np.exp(base_log_probs[batch, columns])
    return StepStats(
        entropy_base=entropy_base.astype(np.float64),
        entropy_temp=entropy_temp.astype(np.float64),
        entropy_final=entropy_final.astype(np.float64),
        surprisal=surprisal.astype(np.float64),
        surprisal_base=(log_z_base - raw[batch, tokens]).astype(np.float64),
        top1_prob=top1.astype(np.float64),
        kept_tokens=kept.astype(np.int64),
        kept_mass=np.where(final.greedy, greedy_kept, base_probs.sum(axis=1, dtype=np.float64)),
        kl_final_base=np.where(
            final.greedy,
            -base_log_probs[batch, columns],  # KL of a one-hot q is the token's base surprisal
            np.maximum(kl_terms.sum(axis=1, dtype=np.float64), 0.0),
        ),
    )
