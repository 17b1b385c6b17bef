"""Two samplers' laws as float64 log-probabilities, and KL, TV and entropy between them.

Why log-probabilities: a law held as float32 probabilities underflows to 0 for every token
below about 1e-45, and at a low temperature that is most of the vocabulary (τ = 0.2 divides
the logits' spread by 5); KL against such a law came out ``inf`` at every position, though the
exact values were finite. Here each law is the log-softmax, in float64, of the chain's final
logits (``-inf`` exactly where the chain dropped a token), so a kept token's log-probability
is finite however small its probability. KL is ``inf`` only where one side keeps a token the
other's chain dropped: that token has positive probability on one side and none on the other.
(A draw works from the same final logits; its float32 weights differ from these by rounding.)

Examples
--------
p's first token has probability e^-1000 (0 in any float), q's is 1/2; q drops the third:

>>> log_p, log_q = np.array([-1000.0, 0.0, -1.0]), np.array([np.log(0.5), np.log(0.5), -np.inf])
>>> out = law_divergence(log_p - np.logaddexp.reduce(log_p), log_q)
>>> float(out["kl_ab"]), round(float(out["kl_ba"]), 6), round(float(out["tv"]), 6)
(inf, 499.620115, 0.5)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from sampler.engine.filters.dry import TokenTexts
from sampler.engine.inputs import History
from sampler.engine.logprobs import step_log_probs
from sampler.engine.params import SamplingParams

__all__ = ["law_divergence", "log_entropy", "log_law"]


def log_law(
    logits: np.ndarray,
    params: Sequence[SamplingParams],
    history: History = None,
    vocabulary: TokenTexts | None = None,
    state: Mapping[str, Any] | None = None,
) -> np.ndarray:
    """The log-probabilities ``[B, V]`` (float64) of the law each row's draw follows.

    As :func:`sampler.engine.sampling.distribution`, in logs: ``-inf`` exactly where the chain
    dropped a token; with XTC, the mixture over its coin, ``log(c p_fired + (1 - c) p_held)``;
    where a row resamples its grammar as llama.cpp does, llama.cpp's mixture
    (:mod:`sampler.engine.resample`).

    Parameters
    ----------
    logits
        ``[B, V]`` raw logits.
    params
        One :class:`SamplingParams` per row.
    history, vocabulary
        Per row, the token ids the penalties see; the token texts DRY needs.
    state
        Per row, the sampler state the chain reads (a grammar's matcher, ``grammar_matcher``).
    """
    return step_log_probs(logits, params, history, state, vocabulary)[1]


def log_entropy(log_p: np.ndarray) -> np.ndarray:
    """Entropy (nats) over the last axis of laws given as log-probabilities."""
    kept = np.isfinite(log_p)
    terms = np.where(kept, np.exp(log_p) * np.where(kept, log_p, 0.0), 0.0)
    # a one-token law sums to -0.0: the maximum prints it as 0 (an entropy is never negative)
    return np.maximum(-terms.sum(axis=-1), 0.0)


def law_divergence(log_p: np.ndarray, log_q: np.ndarray) -> dict[str, np.ndarray]:
    """KL both ways, TV and kept sets of two laws over the last axis.

    Parameters
    ----------
    log_p, log_q
        Log-probabilities ``[..., V]`` (float64), ``-inf`` for a token a law cannot draw.

    Returns
    -------
    dict
        ``kl_ab`` = KL(p ‖ q), ``kl_ba`` = KL(q ‖ p) (nats; ``inf`` exactly where the first
        keeps a token the second does not), ``tv``, ``kept_a``, ``kept_b`` (kept counts) and
        ``kept_differ``, each ``[...]``.
    """
    log_p, log_q = np.asarray(log_p, np.float64), np.asarray(log_q, np.float64)
    kept_p, kept_q = np.isfinite(log_p), np.isfinite(log_q)
    p, q = np.exp(log_p), np.exp(log_q)

    def kl(x: np.ndarray, log_x, log_y, kept_x, kept_y) -> np.ndarray:
        both = kept_x & kept_y
        # x·(log x − log y) with both logs finite: no 0·inf, however small x is
        terms = np.where(both, x * (np.where(both, log_x, 0.0) - np.where(both, log_y, 0.0)), 0.0)
        # Gibbs: KL >= 0; a tiny negative sum is rounding between nearly equal laws
        finite = np.maximum(terms.sum(axis=-1), 0.0)
        return np.where((kept_x & ~kept_y).any(axis=-1), np.inf, finite)

    return {
        "kl_ab": kl(p, log_p, log_q, kept_p, kept_q),
        "kl_ba": kl(q, log_q, log_p, kept_q, kept_p),
        "tv": np.clip(0.5 * np.abs(p - q).sum(axis=-1), 0.0, 1.0),
        "kept_a": kept_p.sum(axis=-1),
        "kept_b": kept_q.sum(axis=-1),
        "kept_differ": (kept_p != kept_q).any(axis=-1),
    }
