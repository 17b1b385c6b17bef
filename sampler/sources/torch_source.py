"""A loaded Hugging Face causal LM as a logit source: its tokenizer, special tokens, limits
and the sessions that run its batches."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from transformers import AutoModelForCausalLM, AutoTokenizer

from sampler.errors import InvalidInputError
from sampler.sources.model_cache import check_model_folder, first_line
from sampler.sources.torch_dtype import with_dtype
from sampler.sources.torch_session import HFSession

__all__ = ["HFSource"]


class HFSource:
    """Next-token logits from a local Hugging Face causal-LM folder."""

    def __init__(
        self, folder: Path, name: str, fingerprint: str, dtype: torch.dtype = torch.float32
    ) -> None:
        check_model_folder(folder)
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(
                folder, local_files_only=True, trust_remote_code=False
            )
        except Exception as error:
            # A damaged tokenizer fails in json, tokenizers (bare Exception) or transformers,
            # each with its own exception type; all mean the same to the user.
            raise InvalidInputError(
                f"cannot load the tokenizer from {folder}: {first_line(error)}"
            ) from None
        try:
            self.model = AutoModelForCausalLM.from_pretrained(
                folder,
                local_files_only=True,
                trust_remote_code=False,
                use_safetensors=True,
                dtype=dtype,
            )
        except (OSError, ValueError, SafetensorError) as error:
            raise InvalidInputError(
                f"cannot load a model from {folder}: {first_line(error)} (safetensors only)"
            ) from None
        self.model.eval()
        self.dtype = dtype
        self.name = name
        self.fingerprint = with_dtype(fingerprint, dtype)
        self.vocab_size = int(self.model.config.vocab_size)
        eos = self.model.generation_config.eos_token_id or self.tokenizer.eos_token_id
        self.eos_token_ids = frozenset([eos] if isinstance(eos, int) else eos or [])
        self.pad_id = self.tokenizer.pad_token_id
        if self.pad_id is None:
            self.pad_id = min(self.eos_token_ids) if self.eos_token_ids else 0
        self.context_limit = getattr(self.model.config, "max_position_embeddings", None)
        self.cache_bytes_per_token = _cache_bytes_per_token(
            self.model.config, torch.finfo(dtype).bits // 8
        )
        self.is_chat = bool(getattr(self.tokenizer, "chat_template", None))

    def encode(self, prompt: str, chat: bool) -> list[int]:
        """Token ids of ``prompt``; with ``chat``, as one user turn of the chat template."""
        if chat:
            if not prompt.strip():
                raise InvalidInputError(
                    "the prompt is empty: a chat model needs a message (or use --raw)"
                )
            ids = self.tokenizer.apply_chat_template(
                [{"role": "user", "content": prompt}],
                add_generation_prompt=True,
                tokenize=True,
                return_dict=False,
            )
            return list(ids)
        ids = self.tokenizer(prompt, add_special_tokens=True)["input_ids"]
        if not ids:
            raise InvalidInputError("the prompt is empty: give some text to continue")
        return list(ids)

    def decode(self, token_ids: Sequence[int]) -> str:
        return self.tokenizer.decode(list(token_ids), skip_special_tokens=True)

    def token_label(self, token_id: int) -> str:
        return self.tokenizer.decode([int(token_id)])

    def start(self, prompts: Sequence[Sequence[int]]) -> tuple[np.ndarray, HFSession]:
        session = HFSession(self.model, prompts, self.pad_id)
        return session.first_logits, session


def _cache_bytes_per_token(config: object, item_bytes: int = 4) -> int:
    """KV-cache bytes one token of one row costs: keys and values of every layer."""
    heads = getattr(config, "num_attention_heads", 0)
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    head_dim = getattr(config, "head_dim", None) or (
        getattr(config, "hidden_size", 0) // max(heads, 1)
    )
    return 2 * getattr(config, "num_hidden_layers", 0) * kv_heads * head_dim * item_bytes
