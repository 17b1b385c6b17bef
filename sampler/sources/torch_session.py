"""One batch of rows on a Hugging Face model: a left-padded prefill shared by rows with the
same prompt, then one token per row per step through the KV cache."""

from __future__ import annotations

import inspect
from collections.abc import Sequence

import numpy as np
import torch
from transformers import DynamicCache, LlamaForCausalLM

__all__ = ["HFSession"]

_CACHE_ARGUMENT = (
    "cache"
    if "cache" in inspect.signature(LlamaForCausalLM.forward).parameters
    else "past_key_values"
)


class HFSession:
    """Extends a left-padded batch one token per row, reusing the KV cache.

    Rows with the same prompt (a sweep's temperatures and samples) share one prefill: each
    distinct prompt is run once and its cache rows are copied to every row that uses it.
    """

    def __init__(self, model: torch.nn.Module, prompts: Sequence[Sequence[int]], pad_id: int):
        distinct: dict[tuple[int, ...], int] = {}
        source_row = [distinct.setdefault(tuple(p), len(distinct)) for p in prompts]
        width = max(len(p) for p in distinct)
        ids = torch.full((len(distinct), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(distinct), width), dtype=torch.long)
        for row, prompt in enumerate(distinct):
            ids[row, width - len(prompt) :] = torch.tensor(prompt, dtype=torch.long)
            mask[row, width - len(prompt) :] = 1
        self.model = model
        self.mask = mask
        # Without padding the mask is all ones: leaving it out spares the model building a
        # 4-D attention mask at every step (plain causal attention is then exact).
        self.padded = bool((mask == 0).any())
        self.cache = DynamicCache()
        # Positions count real tokens only, so a padded row sees the positions it would alone.
        positions = (mask.cumsum(dim=1) - 1).clamp(min=0)
        logits = self._forward(ids, positions)
        spread = torch.tensor(source_row)
        if len(distinct) < len(prompts):
            self.cache.reorder_cache(spread)
        self.mask = mask[spread]
        self.first_logits = logits[source_row]
        self.next_position = positions[spread, -1:] + 1

    @torch.inference_mode()
    def _forward(self, ids: torch.Tensor, positions: torch.Tensor) -> np.ndarray:
        # The cache is updated in place; transformers 5 renamed the argument to `cache`.
        out = self.model(
            input_ids=ids,
            attention_mask=self.mask if self.padded else None,
            position_ids=positions,
            use_cache=True,
            logits_to_keep=1,
            **{_CACHE_ARGUMENT: self.cache},
        )
        return out.logits[:, -1, :].float().numpy()

    def rewind(self, row: int, position: int) -> None:
        """Mask out row ``row``'s cache cells from ``position`` on, as left padding is (the
        cache is one rectangle for every row); the next :meth:`advance` feeds its token at
        ``position`` into a new cell."""
        cells = self.mask[row].nonzero().flatten()
        self.mask[row, cells[max(position, 0) :]] = 0
        self.next_position[row] = max(position, 0)
        self.padded = True

    def advance(self, tokens: np.ndarray) -> np.ndarray:
        """Append one token per row; return the next logits ``[B, V]``."""
        ids = torch.as_tensor(np.asarray(tokens, dtype=np.int64))[:, None]
        self.mask = torch.cat([self.mask, torch.ones_like(ids)], dim=1)
        logits = self._forward(ids, self.next_position)
        self.next_position = self.next_position + 1
        return logits
