"""The sampling engine: logits in, one token and exact statistics out, per row.

One step, for every group of rows that share a chain order:

1. validate the logits (finite or ``-inf``; each row needs one finite logit);
2. run the chain: each stage is a pure function of (candidates, per-row parameters), in the
   row's order (``SamplingParams.order``);
3. greedy and hardmax rows keep only their maxima (the τ → 0 limit);
4. put the candidates in token-id order and draw by inverse CDF with one uniform number
   from the row's own random stream (greedy rows take the lowest-id maximum);
5. optionally compute :class:`~sampler.stats.StepStats`.

Examples
--------
>>> import numpy as np
>>> from sampler import Sampler, SamplingParams
>>> sampler = Sampler([SamplingParams(temperature=0), SamplingParams(seed=7, top_k=2)])
>>> tokens, stats = sampler.step(np.array([[3.0, 1.0, 0.2], [3.0, 1.0, 0.2]]))
>>> int(tokens[0]), int(stats.kept_tokens[1])
(0, 2)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike

from sampler.candidates import Candidates
from sampler.errors import InvalidInputError
from sampler.filters import STAGE_FUNCTIONS
from sampler.final import FinalDistribution
from sampler.params import SamplingParams
from sampler.rows import RowParams
from sampler.softmax import validated_logits
from sampler.stats import StepStats, step_stats

__all__ = ["Sampler", "distribution"]

_SHAPING = ("logit_bias", "penalties")
History = Sequence[ArrayLike] | None


def _as_batch(logits: ArrayLike) -> tuple[np.ndarray, bool, np.ndarray]:
    """``[B, V]`` validated logits, whether a single row was given, and the row maxima."""
    x = np.asarray(logits)
    if x.ndim not in (1, 2):
        raise InvalidInputError(f"logits have shape {x.shape}: give [vocab] or [batch, vocab]")
    single = x.ndim == 1
    raw, peak = validated_logits(x[None, :] if single else x)
    return raw, single, peak


def _as_params(
    params: SamplingParams | Sequence[SamplingParams], rows: int
) -> list[SamplingParams]:
    if isinstance(params, SamplingParams):
        return [params] * rows
    params = list(params)
    if len(params) != rows:
        raise InvalidInputError(
            f"{len(params)} SamplingParams for a batch of {rows} rows: give one per row, "
            "or a single one for all"
        )
    for item in params:
        if not isinstance(item, SamplingParams):
            raise InvalidInputError(f"{item!r} is not a SamplingParams")
    return params


def _as_history(history: History, rows: int, vocab: int) -> tuple[np.ndarray, ...] | None:
    if history is None:
        return None
    if len(history) != rows:
        raise InvalidInputError(
            f"history has {len(history)} rows for a batch of {rows}: give one token list per row"
        )
    checked = []
    for row, tokens in enumerate(history):
        ids = np.asarray(tokens)
        if ids.size == 0:
            checked.append(np.zeros(0, dtype=np.int64))
            continue
        if ids.ndim != 1 or not np.issubdtype(ids.dtype, np.integer):
            raise InvalidInputError(f"history[{row}] must be a flat list of integer token ids")
        if ids.min() < 0 or ids.max() >= vocab:
            bad = int(ids[(ids < 0) | (ids >= vocab)][0])
            raise InvalidInputError(
                f"history[{row}] holds token {bad}, outside the vocabulary 0..{vocab - 1}"
            )
        checked.append(ids.astype(np.int64, copy=False))
    return tuple(checked)


def _groups(params: list[SamplingParams]) -> list[tuple[tuple[str, ...], np.ndarray]]:
    """Rows that share a chain order, so each group runs its chain once, batched."""
    by_order: dict[tuple[str, ...], list[int]] = {}
    for row, item in enumerate(params):
        by_order.setdefault(item.stages, []).append(row)
    return [(order, np.array(rows)) for order, rows in by_order.items()]


def _group_inputs(
    raw: np.ndarray, rows: RowParams, members: np.ndarray
) -> tuple[np.ndarray, RowParams]:
    if len(members) == raw.shape[0] and (members == np.arange(len(members))).all():
        return raw, rows  # the usual case, one order for the batch: no copy
    return raw[members], rows.take(members)


def run_chain(
    raw: np.ndarray, rows: RowParams, stages: Sequence[str]
) -> tuple[Candidates, np.ndarray]:
    """Run ``stages`` in order; return the final candidates and the *tempered* logits.

    The tempered logits are the dense logits after bias, penalties and temperature with
    nothing dropped: what ``entropy_temp`` measures. When the chain computes them on its way
    (shaping stages first, as in every preset) they are taken from it, not computed again.
    """
    shaping = [name for name in stages if name in _SHAPING]
    candidates = Candidates.dense(raw)
    shaped = candidates if stages[: len(shaping)] == tuple(shaping) else None
    tempered = None
    for name in stages:
        before = candidates
        candidates = STAGE_FUNCTIONS[name](candidates, rows)
        if name == "temperature" and shaped is not None and before is shaped:
            tempered = candidates.logits
        if shaped is not None and name in _SHAPING:
            shaped = candidates
    if tempered is None:
        dense = Candidates.dense(raw)
        for name in shaping:
            dense = STAGE_FUNCTIONS[name](dense, rows)
        tempered = STAGE_FUNCTIONS["temperature"](dense, rows).logits
    return candidates, tempered


def distribution(
    logits: ArrayLike,
    params: SamplingParams | Sequence[SamplingParams],
    history: History = None,
) -> np.ndarray:
    """The exact distribution a draw uses, over the whole vocabulary.

    Parameters
    ----------
    logits
        ``[V]`` or ``[B, V]``.
    params
        One :class:`SamplingParams` for every row, or one per row.
    history
        Per row, the token ids the penalties look at (prompt and generated tokens).

    Returns
    -------
    numpy.ndarray
        Probabilities of the same shape as ``logits``. Greedy rows are one-hot on the first
        maximum; hardmax rows split the mass evenly between tied maxima.

    Examples
    --------
    >>> distribution([3.0, 1.0, 0.2], SamplingParams(top_k=2)).round(4).tolist()
    [0.8808, 0.1192, 0.0]
    """
    raw, single, _ = _as_batch(logits)
    all_params = _as_params(params, raw.shape[0])
    rows = RowParams.from_params(all_params).with_history(
        _as_history(history, raw.shape[0], raw.shape[1])
    )
    out = np.empty_like(raw)
    for stages, members in _groups(all_params):
        group_raw, group_rows = _group_inputs(raw, rows, members)
        candidates, _ = run_chain(group_raw, group_rows, stages)
        out[members] = FinalDistribution.from_candidates(candidates, group_rows).to_dense()
    return out[0] if single else out


class Sampler:
    """Draws one token per row per step, each row with its own parameters and random stream.

    Parameters
    ----------
    params
        One :class:`SamplingParams` per row, or one for every row of any batch.
    row_keys
        Per row, a tuple of integers mixed with the row's seed into its random stream
        (``SeedSequence([seed, *key])``). Default: ``()`` for a list of params, so a row's
        stream depends on its seed alone and a row draws the same tokens wherever it sits in
        any batch; ``(i,)`` for row ``i`` when one params serves the whole batch.
    stats
        Compute :class:`StepStats` (entropies, surprisal, kept mass, KL) at each step.
    """

    def __init__(
        self,
        params: SamplingParams | Sequence[SamplingParams],
        row_keys: Sequence[Sequence[int]] | None = None,
        stats: bool = True,
    ) -> None:
        self._shared = params if isinstance(params, SamplingParams) else None
        self._params = None if self._shared else _as_params(params, len(list(params)))
        self._row_keys = None if row_keys is None else [tuple(key) for key in row_keys]
        self.stats = stats
        self._streams: list[np.random.Generator] | None = None
        self._rows: RowParams | None = None

    def _setup(self, batch: int) -> None:
        params = self._params or [self._shared] * batch  # type: ignore[list-item]
        if len(params) != batch:
            raise InvalidInputError(
                f"logits have {batch} rows but the sampler has {len(params)} SamplingParams"
            )
        keys = self._row_keys
        if keys is None:
            keys = [(i,) for i in range(batch)] if self._shared else [()] * batch
        if len(keys) != batch:
            raise InvalidInputError(f"{len(keys)} row keys for a batch of {batch} rows")
        self._params = params
        self._rows = RowParams.from_params(params)
        self._streams = [
            np.random.Generator(
                np.random.PCG64(np.random.SeedSequence(None if p.seed is None else [p.seed, *key]))
            )
            for p, key in zip(params, keys, strict=True)
        ]

    def step(
        self, logits: ArrayLike, history: History = None
    ) -> tuple[np.ndarray, StepStats | None]:
        """Choose one token per row.

        Returns
        -------
        tokens : numpy.ndarray
            ``[B]`` token ids.
        stats : StepStats or None
            Per-row statistics (``None`` when the sampler was made with ``stats=False``).
        """
        raw, _, peak = _as_batch(logits)
        if self._streams is None:
            self._setup(raw.shape[0])
        assert self._rows is not None and self._streams is not None and self._params
        if raw.shape[0] != len(self._streams):
            raise InvalidInputError(
                f"logits have {raw.shape[0]} rows but the sampler has {len(self._streams)}"
            )
        rows = self._rows.with_history(_as_history(history, raw.shape[0], raw.shape[1]))
        # Every row consumes one number per step, greedy or not, so streams stay aligned.
        uniforms = np.array([stream.random() for stream in self._streams])
        tokens = np.empty(raw.shape[0], dtype=np.int64)
        parts = []
        for stages, members in _groups(self._params):
            group_raw, group_rows = _group_inputs(raw, rows, members)
            candidates, tempered = run_chain(group_raw, group_rows, stages)
            final = FinalDistribution.from_candidates(candidates, group_rows)
            columns = final.draw(uniforms[members])
            tokens[members] = final.token_ids(columns)
            if self.stats:
                stats = step_stats(
                    group_raw, peak[members], tempered, final, columns, tokens[members]
                )
                parts.append((members, stats))
        return tokens, StepStats.concatenate(parts, raw.shape[0]) if self.stats else None
