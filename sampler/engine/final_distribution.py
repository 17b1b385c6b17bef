"""The distribution a draw uses, and the draw itself.

After the chain, each row's candidates are put in token-id order, and the draw is an inverse
CDF over them: the first token at which the running sum of ``w_i = exp(x_i - max)`` exceeds
``u`` times the total, ``u`` being one uniform number from the row's own stream. The weights
are the same float32/float64 numbers whether a row's candidates were compacted or not, and
dropped tokens weigh exactly 0, so a row draws the same token alone or in any batch (sums are
float64; a rounding difference could only matter within ~1e-16 of a boundary).

Wide rows are searched in two levels: block sums first, then one block, so no full-row
cumulative sum is ever built.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from sampler.engine.candidates import BLOCK, Candidates, sorted_head
from sampler.engine.rows import RowParams

__all__ = ["FinalDistribution"]


def _block_sums(weights: np.ndarray) -> np.ndarray:
    """Float64 sums of consecutive blocks of ``BLOCK`` columns, the last one partial."""
    rows, width = weights.shape
    whole = width // BLOCK
    sums = weights[:, : whole * BLOCK].reshape(rows, whole, BLOCK).sum(axis=2, dtype=np.float64)
    if whole * BLOCK < width:
        tail = weights[:, whole * BLOCK :].sum(axis=1, dtype=np.float64)
        sums = np.concatenate([sums, tail[:, None]], axis=1)
    return sums


def _search(running: np.ndarray, target: float, weights: np.ndarray) -> int:
    """First column whose running sum exceeds ``target``, never a zero-weight column."""
    column = int(np.searchsorted(running, target, side="right"))
    if column >= len(running) or weights[column] == 0:
        # Only float rounding gets here (target at the very end): take the last positive one.
        column = int(np.flatnonzero(weights[: min(column, len(weights) - 1) + 1] > 0)[-1])
    return column


def _maxima(candidates: Candidates) -> Candidates:
    """Only each row's tied maxima, compacted: greedy rows then cost nothing to draw from."""
    logits = candidates.logits
    ties = int((logits == logits.max(axis=1, keepdims=True)).sum(axis=1).max())
    return sorted_head(candidates, ties)


# log of the smallest positive float64 (a subnormal): below it a probability is 0 in float64
_LOG_SMALLEST_FLOAT64 = math.log(np.nextafter(0.0, 1.0))


@dataclass(frozen=True)
class FinalDistribution:
    """Candidates in token-id order with their unnormalised weights."""

    ids: np.ndarray | None  # [B, N] token ids, or None: column j is token j
    logits: np.ndarray  # [B, N] final logits, -inf where dropped
    peak: np.ndarray  # [B] row maxima of the logits
    weights: np.ndarray  # [B, N] exp(logits - peak)
    block_sums: np.ndarray  # [B, ceil(N / BLOCK)] float64
    total: np.ndarray  # [B] float64 sum of weights
    greedy: np.ndarray  # [B] bool: take the first maximum instead of drawing
    frozen: np.ndarray  # [B] bool: greedy or hardmax, temperature 0
    vocab_size: int

    @classmethod
    def from_candidates(cls, candidates: Candidates, rows: RowParams) -> FinalDistribution:
        """Order the candidates by token id; greedy and hardmax rows keep only their maxima."""
        frozen = rows.greedy | rows.hardmax
        if frozen.all() and candidates.ids is None:
            candidates = _maxima(candidates)
        logits, ids = candidates.logits, candidates.ids
        if ids is not None:
            order = np.argsort(ids, axis=1)
            ids = np.take_along_axis(ids, order, axis=1)
            logits = np.take_along_axis(logits, order, axis=1)
        peak = logits.max(axis=1)
        if frozen.any():
            # Stages after temperature may have moved the tied maxima apart; the τ → 0 limit
            # of what is left is uniform over its maxima.
            below = frozen[:, None] & (logits < peak[:, None])
            logits = np.where(below, -np.inf, logits).astype(candidates.logits.dtype)
        if (peak == 0).all():
            weights = np.exp(logits)  # the usual tempered rows: exp(x - 0) is exp(x), bit for bit
        else:
            with np.errstate(over="ignore"):  # a spread beyond the dtype: -inf, weight 0
                weights = logits - peak[:, None].astype(logits.dtype)
            np.exp(weights, out=weights)
        block_sums = _block_sums(weights)
        total = block_sums.sum(axis=1)
        return cls(
            ids,
            logits,
            peak,
            weights,
            block_sums,
            total,
            rows.greedy.copy(),
            frozen,
            candidates.vocab_size,
        )

    def support(self) -> np.ndarray:
        """``[B, N]``: the columns whose probability is non-zero in float64.

        A token is in the support when the chain kept it (finite logit) and its probability
        ``exp(x - max) / total`` is at least the smallest positive float64 (about 4.9e-324),
        whatever the logits' dtype: so float32 and float64 logits give the same support, and
        a token that a tiny temperature pushed below every float's range is not counted. (In
        float32 the draw's weights underflow sooner, below about 1e-45; such a token is in the
        support but is never drawn.) A greedy row's support is its first maximum.
        """
        shifted = self.logits - self.peak[:, None].astype(self.logits.dtype)
        support = self.row_support(shifted, self.total[:, None])
        if self.greedy.any():
            first = np.argmax(self.weights, axis=1)[:, None]
            only_first = np.arange(support.shape[1])[None, :] == first
            support = np.where(self.greedy[:, None], only_first, support)
        return support

    @staticmethod
    def row_support(shifted: np.ndarray, total: np.ndarray | float) -> np.ndarray:
        """Of logits shifted to max 0 whose weights sum to ``total``: the tokens that
        :meth:`support` counts (the greedy rule aside)."""
        floor = _LOG_SMALLEST_FLOAT64 + np.log(total)
        return shifted >= np.asarray(floor).astype(shifted.dtype)

    def chosen_probability(self, columns: np.ndarray) -> np.ndarray:
        """``[B]`` float64: the probability each row's drawn column had (1 on greedy rows)."""
        drawn = self.weights[np.arange(len(columns)), columns].astype(np.float64)
        return np.where(self.greedy, 1.0, drawn / self.total)

    def token_ids(self, columns: np.ndarray) -> np.ndarray:
        """Token ids of one column per row."""
        if self.ids is None:
            return columns
        return self.ids[np.arange(len(columns)), columns]

    def draw(self, uniforms: np.ndarray) -> np.ndarray:
        """Columns drawn by inverse CDF at ``uniforms`` ``[B]`` (first maximum if greedy)."""
        columns = np.empty(len(uniforms), dtype=np.int64)
        for row, u in enumerate(uniforms):
            weights = self.weights[row]
            if self.greedy[row]:
                columns[row] = int(np.argmax(weights))  # first maximum: the lowest token id
                continue
            block_running = np.cumsum(self.block_sums[row])
            target = u * block_running[-1]
            block = _search(block_running, target, self.block_sums[row])
            start = block * BLOCK
            inside = weights[start : start + BLOCK]
            before = block_running[block - 1] if block else 0.0
            running = np.cumsum(inside, dtype=np.float64)
            columns[row] = start + _search(running, target - before, inside)
        return columns

    def probabilities(self) -> np.ndarray:
        """Normalised probabilities ``[B, N]`` of the columns (one-hot on greedy rows)."""
        probs = (self.weights / self.total[:, None]).astype(self.logits.dtype)
        if self.greedy.any():
            first = np.argmax(self.weights, axis=1)
            one_hot = np.zeros_like(probs)
            one_hot[np.arange(len(first)), first] = 1.0
            probs = np.where(self.greedy[:, None], one_hot, probs)
        return probs

    def to_dense_logits(self) -> np.ndarray:
        """Final logits over the whole vocabulary ``[B, V]``, ``-inf`` where dropped.

        Their softmax is :meth:`to_dense`: a greedy row keeps only its first maximum.
        """
        kept = self.logits
        if self.greedy.any():
            first = np.argmax(self.weights, axis=1)[:, None]  # columns are in token-id order
            others = np.arange(kept.shape[1])[None, :] != first
            kept = np.where(self.greedy[:, None] & others, -np.inf, kept).astype(kept.dtype)
        return self.scatter(kept, -np.inf)

    def to_dense(self) -> np.ndarray:
        """Probabilities over the whole vocabulary ``[B, V]``."""
        return self.scatter(self.probabilities(), 0)

    def scatter(self, values: np.ndarray, fill: float | bool) -> np.ndarray:
        """Column ``values`` ``[B, N]`` put at their token ids in ``[B, V]``, ``fill`` elsewhere."""
        if self.ids is None:
            return values
        out = np.full((values.shape[0], self.vocab_size), fill, dtype=values.dtype)
        np.put_along_axis(out, self.ids, values, axis=1)
        return out
