"""Stages that reshape logits without dropping tokens: bias, penalties, temperature."""

from __future__ import annotations

import numpy as np

from sampler.engine.candidates import Candidates
from sampler.engine.rows import RowParams
from sampler.errors import InvalidInputError

__all__ = ["logit_bias", "penalties", "temperature"]


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
    """Divide each row's logits by its temperature; temperature 0 keeps only the maxima.

    Division (not multiplication by ``1/τ``) in the logits' own dtype, as transformers'
    ``TemperatureLogitsWarper`` does. At temperature 0 every logit below the row's maximum
    becomes ``-inf`` and the tied maxima stay: the τ → 0 limit.
    """
    tau = rows.temperature
    if (tau == 1).all():
        return candidates
    logits = candidates.logits
    divisor = np.where(tau > 0, tau, 1.0).astype(logits.dtype)[:, None]
    scaled = logits / divisor
    frozen = tau == 0
    if frozen.any():
        cold = logits[frozen]
        scaled[frozen] = np.where(cold == cold.max(axis=1, keepdims=True), cold, -np.inf)
    return candidates.with_logits(scaled)


def logit_bias(candidates: Candidates, rows: RowParams) -> Candidates:
    """Add each row's ``{token: bias}`` to its logits."""
    if not any(rows.logit_bias):
        return candidates
    out = candidates.logits.copy()
    for row, bias in enumerate(rows.logit_bias):
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
    active = (
        (rows.repetition_penalty != 1)
        | (rows.frequency_penalty != 0)
        | (rows.presence_penalty != 0)
    )
    if rows.history is None or not active.any():
        return candidates
    out = candidates.logits.copy()
    kind = out.dtype.type
    for row in np.nonzero(active)[0]:
        history = rows.history[row]
        if rows.penalty_last_n[row] > 0:
            history = history[-rows.penalty_last_n[row] :]
        if len(history) == 0:
            continue
        tokens, counts = np.unique(history, return_counts=True)
        columns, which = _columns(candidates, row, tokens)
        values = out[row, columns]
        penalty = kind(rows.repetition_penalty[row])
        values = np.where(values < 0, values * penalty, values / penalty)
        shift = counts[which] * rows.frequency_penalty[row] + rows.presence_penalty[row]
        out[row, columns] = values - shift.astype(out.dtype)
    return candidates.with_logits(out)
