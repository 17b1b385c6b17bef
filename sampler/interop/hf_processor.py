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

from sampler.engine.params import SamplingParams
from sampler.engine.sampling import final_groups
from sampler.errors import InvalidInputError

__all__ = ["SamplerLogitsProcessor", "final_logits", "logits_processor"]

Params = SamplingParams | Sequence[SamplingParams]


def final_logits(
    logits: np.ndarray, params: Params, history: Sequence[np.ndarray] | None = None
) -> np.ndarray:
    """The final logits ``[B, V]`` of the chain: kept candidates, ``-inf`` for dropped tokens.

    ``softmax`` of each row is :func:`sampler.distribution` of that row; a greedy row keeps
    only its first maximum, so its softmax is one-hot there. After the temperature stage the
    logits are shifted so that each row's maximum is 0 (the same distribution).

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
    [[0.0, -inf, -inf]]
    """
    if np.ndim(logits) != 2:
        raise InvalidInputError(f"logits have shape {np.shape(logits)}: give [batch, vocab]")
    for item in [params] if isinstance(params, SamplingParams) else params:
        if item.mirostat or item.xtc_probability or item.adaptive_target >= 0:
            raise InvalidInputError(
                "mirostat, XTC and adaptive-p need the Sampler's per-row state and coins, which "
                "a logits processor does not have: use sampler.Sampler, or switch them off"
            )
    raw, _, groups = final_groups(logits, params, history)
    out = np.empty_like(raw)
    for group in groups:
        out[group.members] = group.final.to_dense_logits()
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
    [[-inf, 0.0, -inf]]
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
