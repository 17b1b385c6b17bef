"""`Candidates`: the rows of logits a filter chain works on, dense or compacted.

A batch starts *dense*: column ``j`` is token ``j`` of the vocabulary. A filter that keeps only
a few tokens (top-k, top-p) may *compact* the batch to the few columns it kept, with their token
ids alongside, as llama.cpp's candidate arrays do; the filters after it then cost almost
nothing. Dropped tokens are ``-inf`` in either form. Nothing here modifies its input.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "BLOCK",
    "Candidates",
    "cut_head",
    "keep_at_least",
    "log_normalizer",
    "sorted_head",
]


@dataclass(frozen=True)
class Candidates:
    """Logits ``[B, N]`` and, when compacted, the token id of every column ``[B, N]``."""

    logits: np.ndarray
    ids: np.ndarray | None
    vocab_size: int

    @classmethod
    def dense(cls, logits: np.ndarray) -> Candidates:
        """All tokens of a ``[B, V]`` array, column ``j`` being token ``j``."""
        return cls(logits, None, logits.shape[-1])

    @property
    def is_dense(self) -> bool:
        return self.ids is None

    def with_logits(self, logits: np.ndarray) -> Candidates:
        """The same tokens with new logits."""
        return Candidates(logits, self.ids, self.vocab_size)

    def token_ids(self) -> np.ndarray:
        """Token ids ``[B, N]`` of the columns (materialised for a dense batch)."""
        if self.ids is not None:
            return self.ids
        rows, width = self.logits.shape
        return np.broadcast_to(np.arange(width), (rows, width))

    def to_dense(self) -> np.ndarray:
        """``[B, V]`` logits with every token that is not a candidate at ``-inf``."""
        if self.ids is None:
            return self.logits
        out = np.full((self.logits.shape[0], self.vocab_size), -np.inf, self.logits.dtype)
        np.put_along_axis(out, self.ids, self.logits, axis=1)
        return out

    def take_rows(self, rows: np.ndarray) -> Candidates:
        ids = None if self.ids is None else self.ids[rows]
        return Candidates(self.logits[rows], ids, self.vocab_size)


def log_normalizer(logits: np.ndarray) -> np.ndarray:
    """``log Σ exp(logits)`` per row ``[B]`` in float64, stable; rows need one finite logit."""
    peak = logits.max(axis=1)
    weights = np.exp(logits - peak[:, None])
    return peak.astype(np.float64) + np.log(weights.sum(axis=1, dtype=np.float64))


# Rows are cut into blocks of this many logits: to find a head (see _top_columns) and to
# search the draw's running sums in two levels (final_distribution).
BLOCK = 128


def _top_columns(logits: np.ndarray, size: int) -> np.ndarray:
    """Columns ``[B, size]`` of the ``size`` largest logits per row, in no particular order.

    Over a long row, the head lies in the ``size`` blocks of ``BLOCK`` logits whose maxima
    are largest (if a head logit's block were not among them, those blocks' maxima would be
    ``size`` logits at least as large). So one cheap pass takes block maxima, and the
    partition runs on ``size`` blocks instead of the whole row.
    """
    rows, width = logits.shape
    blocks = width // BLOCK
    if blocks < 4 * size:
        return np.argpartition(-logits, size - 1, axis=1)[:, :size]
    block_max = logits[:, : blocks * BLOCK].reshape(rows, blocks, BLOCK).max(axis=2)
    best_blocks = np.argpartition(-block_max, size - 1, axis=1)[:, :size]
    pool = (best_blocks[:, :, None] * BLOCK + np.arange(BLOCK)).reshape(rows, -1)
    tail = np.arange(blocks * BLOCK, width)  # the last, partial block is always searched
    if tail.size:
        pool = np.concatenate([pool, np.broadcast_to(tail, (rows, tail.size))], axis=1)
    values = np.take_along_axis(logits, pool, axis=1)
    picked = np.argpartition(-values, size - 1, axis=1)[:, :size]
    return np.take_along_axis(pool, picked, axis=1)


def sorted_head(candidates: Candidates, size: int) -> Candidates:
    """The ``size`` largest candidates of each row, sorted by logit descending.

    Ties are ordered by token id, so the head of a row does not depend on the other rows.
    The head is found without sorting the row; only the head is sorted.
    """
    logits = candidates.logits
    width = logits.shape[1]
    if size < width:
        columns = _top_columns(logits, size)
        values = np.take_along_axis(logits, columns, axis=1)
    else:
        columns = np.broadcast_to(np.arange(width), logits.shape)
        values = logits
    ids = np.take_along_axis(candidates.token_ids(), columns, axis=1)
    order = np.lexsort((ids, -values), axis=1)
    return Candidates(
        np.take_along_axis(values, order, axis=1),
        np.take_along_axis(ids, order, axis=1),
        candidates.vocab_size,
    )


def keep_at_least(candidates: Candidates, threshold: np.ndarray) -> Candidates:
    """Drop every logit below its row's ``threshold`` ``[B]`` (``-inf`` keeps the row whole)."""
    logits = candidates.logits
    if np.isneginf(threshold).all():
        return candidates
    kept = np.full_like(logits, -np.inf)
    np.copyto(kept, logits, where=logits >= threshold[:, None].astype(logits.dtype))
    return candidates.with_logits(kept)


def cut_head(candidates: Candidates, head: Candidates, threshold: np.ndarray) -> Candidates:
    """Keep logits ``>= threshold`` per row, as the compact ``head`` when that is exact.

    ``head`` must be a :func:`sorted_head` of ``candidates`` and every row's threshold must be
    met inside it; take the head one wider than needed, so that its last logit is below the
    threshold. When a threshold equals the smallest logit of a head that is narrower than the
    row, tokens tied with it may lie outside the head: then the dense cut is taken, so ties are
    always kept together.
    """
    if head.logits.shape[1] < candidates.logits.shape[1]:
        smallest = head.logits[:, -1]
        tie_risk = (threshold == smallest) & np.isfinite(smallest)
        row_off = np.isneginf(threshold)  # an inactive row keeps every token, not just a head
        if (tie_risk | row_off).any():
            return keep_at_least(candidates, threshold)
    return keep_at_least(head, threshold)
