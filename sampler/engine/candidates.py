"""`Candidates`: the rows of logits a filter chain works on, dense or compacted.

A batch starts *dense*: column ``j`` is token ``j`` of the vocabulary. A filter that keeps only
a few tokens (top-k, top-p) may *compact* the batch to the few columns it kept, with their token
ids alongside, as llama.cpp's candidate arrays do; the filters after it then cost almost
nothing. Dropped tokens are ``-inf`` in either form. Nothing here modifies its input.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

import numpy as np

_Function = TypeVar("_Function", bound=Callable[..., Any])

__all__ = [
    "BLOCK",
    "Candidates",
    "column_numbers",
    "cut_head",
    "keep_at_least",
    "log_normalizer",
    "overflow_is_infinite",
    "saturate",
    "sorted_head",
]


@functools.lru_cache(maxsize=8)
def column_numbers(width: int) -> np.ndarray:
    """``arange(width)``, read-only and made once per width (every dense row needs it)."""
    numbers = np.arange(width)
    numbers.flags.writeable = False
    return numbers


@dataclass(frozen=True)
class Candidates:
    """Logits ``[B, N]`` and, when compacted, the token id of every column ``[B, N]``.

    ``notes``: what the stage that made these candidates reports about each row (``[B]``
    arrays by name, e.g. the temperature dynamic temperature chose; or ``[B, N]`` ones the
    sampler reads after the draw, adaptive-p's pre-transform probabilities); the chain
    collects them after each stage, so later stages need not carry them.

    ``array_size``: per row ``[B]``, how many entries llama.cpp's candidate array would still
    hold, ``-inf`` ones included (llama.cpp's truncations shrink the array, while a ``-inf``
    bias or top-n-σ only masks entries that then still count for ``min_keep`` and dynamic
    temperature); ``None`` is the whole vocabulary. Only the llama.cpp preset's stages
    (``RowParams.ranked``) set and read it.
    """

    logits: np.ndarray
    ids: np.ndarray | None
    vocab_size: int
    notes: Mapping[str, np.ndarray] = field(default_factory=dict)
    array_size: np.ndarray | None = None

    @classmethod
    def dense(cls, logits: np.ndarray) -> Candidates:
        """All tokens of a ``[B, V]`` array, column ``j`` being token ``j``."""
        return cls(logits, None, logits.shape[-1])

    @property
    def is_dense(self) -> bool:
        return self.ids is None

    def with_logits(self, logits: np.ndarray) -> Candidates:
        """The same tokens with new logits."""
        return Candidates(logits, self.ids, self.vocab_size, array_size=self.array_size)

    def llama_array_size(self) -> np.ndarray:
        """``[B]``: :attr:`array_size`, the whole vocabulary when it was never set."""
        if self.array_size is None:
            return np.full(self.logits.shape[0], self.vocab_size, dtype=np.int64)
        return self.array_size

    def sized(self, rows: np.ndarray, size: np.ndarray) -> Candidates:
        """The same candidates with llama.cpp's array size set to ``size`` in ``rows``."""
        return replace(self, array_size=np.where(rows, size, self.llama_array_size()))

    def noted(self, **notes: np.ndarray) -> Candidates:
        """The same candidates with per-row ``notes`` (see the class docstring)."""
        return replace(self, notes={**self.notes, **notes})

    def token_ids(self) -> np.ndarray:
        """Token ids ``[B, N]`` of the columns (materialised for a dense batch)."""
        if self.ids is not None:
            return self.ids
        return np.broadcast_to(column_numbers(self.logits.shape[1]), self.logits.shape)

    def to_dense(self) -> np.ndarray:
        """``[B, V]`` logits with every token that is not a candidate at ``-inf``."""
        if self.ids is None:
            return self.logits
        out = np.full((self.logits.shape[0], self.vocab_size), -np.inf, self.logits.dtype)
        np.put_along_axis(out, self.ids, self.logits, axis=1)
        return out

    def take_rows(self, rows: np.ndarray) -> Candidates:
        ids = None if self.ids is None else self.ids[rows]
        size = None if self.array_size is None else self.array_size[rows]
        return Candidates(self.logits[rows], ids, self.vocab_size, array_size=size)


def overflow_is_infinite(function: _Function) -> _Function:
    """Run ``function`` with numpy's overflow and underflow warnings off (in its own thread).

    Logits up to ±1.8e308 and settings at the edge of float64 are allowed; a difference or a
    product beyond the dtype's range is ±inf by design (a probability of 0, a cut that keeps
    every token), or is held finite by :func:`saturate`. The warnings would only print numpy
    source lines to the user. Division by zero and NaN still warn: they would be bugs.
    """

    @functools.wraps(function)
    def quiet(*args: Any, **kwargs: Any) -> Any:
        with np.errstate(over="ignore", under="ignore"):
            return function(*args, **kwargs)

    return quiet  # type: ignore[return-value]


def saturate(result: np.ndarray, before: np.ndarray) -> np.ndarray:
    """``result`` with what overflowed from a finite ``before`` held at the dtype's largest
    finite magnitude: a stage that reshapes logits never turns an allowed token into a masked
    one (``-inf``) or into ``+inf`` (NaN after the max is subtracted), so at least one token
    always stays. ``-inf`` in ``before`` (a token already dropped) stays ``-inf``.
    """
    largest = np.finfo(result.dtype).max
    return np.where(np.isfinite(before), np.clip(result, -largest, largest), result)


def log_normalizer(logits: np.ndarray) -> np.ndarray:
    """``log Σ exp(logits)`` per row ``[B]`` in float64, stable; rows need one finite logit."""
    peak = logits.max(axis=1)
    with np.errstate(over="ignore"):  # a spread beyond the dtype: -inf, weight 0
        weights = np.exp(logits - peak[:, None])
    return peak.astype(np.float64) + np.log(weights.sum(axis=1, dtype=np.float64))


# Rows are cut into blocks of this many logits to search the draw's running sums in two
# levels (final_distribution).
BLOCK = 128

# A head is searched among the logits at or above a threshold (see _top_columns) only when
# the row has at least this many blocks per head token; otherwise the row is partitioned.
_BLOCKS_PER_HEAD_TOKEN = 4


def _top_columns(logits: np.ndarray, ids: np.ndarray, size: int) -> np.ndarray:
    """Columns ``[B, size]`` of the ``size`` largest logits per row, ties to the lowest id.

    Over a long row, cut into ``n >= 4 · size`` blocks, the ``size``-th largest block maximum
    ``t`` is a lower bound of the row's ``size``-th largest logit (``size`` blocks each hold a
    logit ``>= t``). So one cheap max pass gives ``t``, one comparison keeps the few logits
    ``>= t`` (about ``size + 5`` on a model's logits), and only those are ranked. Short rows,
    and rows where the bound keeps too much (flat or masked rows), use the exact
    ``size``-th largest logit as ``t`` instead.
    """
    rows, width = logits.shape
    block = 1 << max(0, (width // (_BLOCKS_PER_HEAD_TOKEN * size)).bit_length() - 1)
    if block >= 64:
        blocks = width // block
        block_max = logits[:, : blocks * block].reshape(rows, blocks, block).max(axis=2)
        threshold = -np.partition(-block_max, size - 1, axis=1)[:, size - 1]
        pool, padding = _at_or_above(logits, threshold)
        if pool.shape[1] <= width // 4:
            return _rank(logits, ids, pool, padding, size)
    threshold = np.partition(logits, width - size, axis=1)[:, width - size]
    return _rank(logits, ids, *_at_or_above(logits, threshold), size)


def _at_or_above(logits: np.ndarray, threshold: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the columns whose logit is ``>= threshold``, left-aligned ``[B, widest]``,
    and where that is padding (the row has fewer)."""
    rows, width = logits.shape
    # flatnonzero, not nonzero: on a 2-D mask nonzero is about 15x slower
    flat = np.flatnonzero(logits >= threshold[:, None].astype(logits.dtype))
    row_of, column_of = np.divmod(flat, width)
    counts = np.bincount(row_of, minlength=rows)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    pool = np.zeros((rows, int(counts.max())), dtype=np.int64)
    pool[row_of, np.arange(len(flat)) - np.repeat(starts, counts)] = column_of
    return pool, np.arange(pool.shape[1])[None, :] >= counts[:, None]


def _rank(
    logits: np.ndarray, ids: np.ndarray, pool: np.ndarray, padding: np.ndarray, size: int
) -> np.ndarray:
    """The ``size`` columns of ``pool`` with the largest logits, ties to the lowest token id.

    Every row holds at least ``size`` columns that are not padding.
    """
    values = np.where(padding, -np.inf, np.take_along_axis(logits, pool, axis=1))
    pool_ids = np.where(padding, np.iinfo(np.int64).max, np.take_along_axis(ids, pool, axis=1))
    order = np.lexsort((pool_ids, -values), axis=1)
    return np.take_along_axis(pool, order[:, :size], axis=1)


def sorted_head(candidates: Candidates, size: int) -> Candidates:
    """The ``size`` largest candidates of each row, sorted by logit descending.

    Ties are ordered by token id, so the head of a row does not depend on the other rows.
    The head is found without sorting the row; only the head is sorted.
    """
    logits = candidates.logits
    width = logits.shape[1]
    if size < width:
        columns = _top_columns(logits, candidates.token_ids(), size)
        values = np.take_along_axis(logits, columns, axis=1)
    else:
        columns = np.broadcast_to(column_numbers(width), logits.shape)
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
