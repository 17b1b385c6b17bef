"""The distribution a draw uses, and the draw itself.

After the chain, each row's candidates are put in token-id order, and the draw is an inverse
CDF over them: the first token at which the running sum of ``exp(x_i - max)`` (float64,
sequential) exceeds ``u`` times the total, ``u`` being one uniform number from the row's own
stream. Dropped tokens add exactly 0 to that sum, so a row draws the same token whether its
candidates were compacted or not, alone or in any batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sampler.candidates import Candidates
from sampler.rows import RowParams

__all__ = ["FinalDistribution"]


@dataclass(frozen=True)
class FinalDistribution:
    """Candidates in token-id order with their unnormalised weights and running sums."""

    ids: np.ndarray | None  # [B, N] token ids, or None: column j is token j
    logits: np.ndarray  # [B, N] final logits, -inf where dropped
    weights: np.ndarray  # [B, N] exp(logits - row max)
    running: np.ndarray  # [B, N] float64 sequential cumulative sum of weights
    greedy: np.ndarray  # [B] bool: take the first maximum instead of drawing
    vocab_size: int

    @classmethod
    def from_candidates(cls, candidates: Candidates, rows: RowParams) -> FinalDistribution:
        """Order the candidates by token id; greedy and hardmax rows keep only their maxima."""
        logits, ids = candidates.logits, candidates.ids
        if ids is not None:
            order = np.argsort(ids, axis=1)
            ids = np.take_along_axis(ids, order, axis=1)
            logits = np.take_along_axis(logits, order, axis=1)
        peak = logits.max(axis=1, keepdims=True)
        frozen = rows.greedy | rows.hardmax
        if frozen.any():
            # Stages after temperature may have moved the tied maxima apart; the τ → 0 limit
            # of what is left is uniform over its maxima.
            logits = np.where(frozen[:, None] & (logits < peak), -np.inf, logits)
            logits = logits.astype(candidates.logits.dtype, copy=False)
        weights = np.exp(logits - peak)
        running = np.cumsum(weights, axis=1, dtype=np.float64)
        return cls(ids, logits, weights, running, rows.greedy.copy(), candidates.vocab_size)

    def token_ids(self, columns: np.ndarray) -> np.ndarray:
        """Token ids of one column per row."""
        if self.ids is None:
            return columns
        return self.ids[np.arange(len(columns)), columns]

    def draw(self, uniforms: np.ndarray) -> np.ndarray:
        """Columns drawn by inverse CDF at ``uniforms`` ``[B]`` (first maximum if greedy)."""
        columns = np.empty(len(uniforms), dtype=np.int64)
        for row, u in enumerate(uniforms):
            if self.greedy[row]:
                columns[row] = int(np.argmax(self.weights[row]))  # first max: lowest id
            else:
                target = u * self.running[row, -1]
                columns[row] = int(np.searchsorted(self.running[row], target, side="right"))
        return columns

    def probabilities(self) -> np.ndarray:
        """Normalised probabilities ``[B, N]`` of the columns (one-hot on greedy rows)."""
        probs = self.weights / self.running[:, -1:]
        if self.greedy.any():
            first = np.argmax(self.weights, axis=1)
            one_hot = np.zeros_like(probs)
            one_hot[np.arange(len(first)), first] = 1.0
            probs = np.where(self.greedy[:, None], one_hot, probs)
        return probs.astype(self.logits.dtype, copy=False)

    def to_dense(self) -> np.ndarray:
        """Probabilities over the whole vocabulary ``[B, V]``."""
        probs = self.probabilities()
        if self.ids is None:
            return probs
        out = np.zeros((probs.shape[0], self.vocab_size), dtype=probs.dtype)
        np.put_along_axis(out, self.ids, probs, axis=1)
        return out
