"""Our sampling chain as a transformers ``LogitsProcessor``, for ``model.generate()``.

The processor replaces the scores of each step with the final logits of our chain: the kept
candidates' logits, ``-inf`` elsewhere, so ``softmax`` of its output is exactly
:func:`sampler.distribution`. Call ``generate(do_sample=True, temperature=1.0, top_k=0,
top_p=1.0, ...)`` so transformers' own warpers change nothing; the draw itself then uses
torch's random stream (``SamplingParams.seed`` is not used). This module imports torch and
transformers; ``import sampler`` does not import it.

Examples
--------
>>> import torch
>>> from sampler import SamplingParams
>>> processor = logits_processor(SamplingParams(top_k=2))
>>> out = processor(torch.tensor([[0]]), torch.tensor([[3.0, 1.0, 0.2]]))
>>> [round(p, 4) for p in torch.softmax(out, dim=-1)[0].tolist()]
[0.8808, 0.1192, 0.0]
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from transformers import LogitsProcessor

from sampler.engine import run_chain
from sampler.errors import InvalidInputError
from sampler.final import FinalDistribution
from sampler.params import SamplingParams
from sampler.rows import RowParams
from sampler.softmax import validated_logits

__all__ = ["SamplerLogitsProcessor", "final_logits", "logits_processor"]

Params = SamplingParams | Sequence[SamplingParams]


def _params_list(params: Params, rows: int) -> list[SamplingParams]:
    if isinstance(params, SamplingParams):
        return [params] * rows
    if len(params) != rows:
        raise InvalidInputError(
            f"{len(params)} SamplingParams for a batch of {rows} rows: give one per row, "
            "or a single one for all"
        )
    return list(params)


def final_logits(
    logits: np.ndarray, params: Params, history: Sequence[np.ndarray] | None = None
) -> np.ndarray:
    """The final logits ``[B, V]`` of the chain: kept candidates, ``-inf`` for dropped tokens.

    ``softmax`` of each row is :func:`sampler.distribution` of that row; a greedy row keeps
    only its first maximum, so its softmax is one-hot there.

    Parameters
    ----------
    logits
        ``[B, V]`` raw logits (not modified).
    params
        One :class:`SamplingParams` for every row, or one per row.
    history
        Per row, the token ids the penalties look at.

    Examples
    --------
    >>> final_logits(np.array([[2.0, 2.0, 1.0]]), SamplingParams(temperature=0)).tolist()
    [[2.0, -inf, -inf]]
    """
    raw, _ = validated_logits(logits)
    if raw.ndim != 2:
        raise InvalidInputError(f"logits have shape {raw.shape}: give [batch, vocab]")
    all_params = _params_list(params, raw.shape[0])
    rows = RowParams.from_params(all_params)
    if history is not None:
        rows = rows.with_history(tuple(np.asarray(ids, dtype=np.int64) for ids in history))
    groups: dict[tuple[str, ...], list[int]] = {}
    for row, item in enumerate(all_params):
        groups.setdefault(item.stages, []).append(row)
    out = np.full(raw.shape, -np.inf, dtype=raw.dtype)
    for stages, members in groups.items():
        index = np.array(members)
        group_rows = rows.take(index)
        candidates, _ = run_chain(raw[index], group_rows, stages)
        final = FinalDistribution.from_candidates(candidates, group_rows)
        kept = final.logits
        if final.greedy.any():
            first = np.argmax(final.weights, axis=1)[:, None]  # columns are in token-id order
            others = np.arange(kept.shape[1])[None, :] != first
            kept = np.where(final.greedy[:, None] & others, -np.inf, kept).astype(kept.dtype)
        block = np.full((len(index), raw.shape[1]), -np.inf, dtype=raw.dtype)
        if final.ids is None:
            block[:] = kept
        else:
            np.put_along_axis(block, final.ids, kept, axis=1)
        out[index] = block
    return out


class SamplerLogitsProcessor(LogitsProcessor):
    """Replaces each step's scores with the final logits of our chain.

    Parameters
    ----------
    params
        One :class:`SamplingParams` for every row, or one per row of the batch.

    Examples
    --------
    >>> import torch
    >>> processor = SamplerLogitsProcessor(SamplingParams(temperature=0))
    >>> processor(torch.tensor([[1]]), torch.tensor([[1.0, 3.0, 3.0]])).tolist()
    [[-inf, 3.0, -inf]]
    """

    def __init__(self, params: Params) -> None:
        if not isinstance(params, SamplingParams):
            params = list(params)
            for item in params:
                if not isinstance(item, SamplingParams):
                    raise InvalidInputError(f"{item!r} is not a SamplingParams")
        self.params = params

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.Tensor:
        """New logits ``[B, V]`` (same dtype and device as ``scores``, which is not modified)."""
        vocab = scores.shape[-1]
        ids = input_ids.detach().cpu()
        if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= vocab):
            raise InvalidInputError(f"input_ids hold a token outside the vocabulary 0..{vocab - 1}")
        work = scores.detach().cpu()
        if work.dtype not in (torch.float32, torch.float64):
            work = work.float()  # half and bfloat16 have no exact numpy counterpart here
        raw = work.numpy().copy()  # our own copy: scores is never touched
        history = list(ids.numpy())
        out = final_logits(raw, self.params, history)
        return torch.from_numpy(out).to(device=scores.device, dtype=scores.dtype)


def logits_processor(params: Params) -> SamplerLogitsProcessor:
    """A transformers ``LogitsProcessor`` that applies ``params`` (one, or one per row).

    Examples
    --------
    >>> from transformers import LogitsProcessorList
    >>> processors = LogitsProcessorList([logits_processor(SamplingParams(top_p=0.9))])
    """
    return SamplerLogitsProcessor(params)
