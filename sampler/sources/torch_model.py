"""A Hugging Face causal LM as a logit source: batched, left-padded, with a KV cache.

Loaded from safetensors only and never with ``trust_remote_code``. Importing this module
imports torch and transformers; nothing else in the core does.

Weights load in float32 by default (greedy output equals ``model.generate`` token for token,
tested); ``dtype="bfloat16"`` halves them, and ``dtype="auto"`` picks bfloat16 where the CPU
multiplies bf16 natively (AVX512-BF16 or AMX, from /proc/cpuinfo) and float32 elsewhere.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import socket
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    DynamicCache,
    LlamaForCausalLM,
)

from sampler.errors import InvalidInputError
from sampler.sources import DTYPES
from sampler.sources.cache_folder import (
    ALIASES,
    GGUF_NAME,
    MANIFEST,
    Progress,
    cache_root,
    model_folder,
    verify_folder,
)
from sampler.sources.model_cache import (
    check_model_folder,
    ensure_model,
    first_line,
    unknown_alias,
)

__all__ = [
    "HFSession",
    "HFSource",
    "load_hf_source",
    "manifest_fingerprint",
    "native_bf16",
    "quiet_transformers",
    "resolve_dtype",
]

_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})


def native_bf16(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """Whether the CPU multiplies bfloat16 natively (AVX512-BF16 or AMX-BF16 in its flags)."""
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        return False
    for line in text.splitlines():
        if line.startswith("flags"):
            return bool(_BF16_FLAGS & set(line.partition(":")[2].split()))
    return False


def resolve_dtype(dtype: str) -> torch.dtype:
    """The torch dtype ``dtype`` names (``auto``: bfloat16 with native bf16, else float32)."""
    if dtype not in DTYPES:
        raise InvalidInputError(f"unknown dtype {dtype!r}: use one of {', '.join(DTYPES)}")
    if dtype == "auto":
        dtype = "bfloat16" if native_bf16() else "float32"
    return torch.bfloat16 if dtype == "bfloat16" else torch.float32


_CACHE_ARGUMENT = (
    "cache"
    if "cache" in inspect.signature(LlamaForCausalLM.forward).parameters
    else "past_key_values"
)


def quiet_transformers() -> None:
    """Silence transformers' progress bars and advisory warnings (for the command line)."""
    import warnings

    from transformers.utils import logging

    logging.set_verbosity_error()
    logging.disable_progress_bar()
    warnings.filterwarnings("ignore", message=".*past_key_values.*deprecated")


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
        self.fingerprint = _with_dtype(fingerprint, dtype)
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


def _with_dtype(fingerprint: str, dtype: torch.dtype) -> str:
    """A bfloat16 model computes other logits: its runs must not resume float32 ones."""
    return fingerprint if dtype == torch.float32 or not fingerprint else f"{fingerprint}:bf16"


def _cache_bytes_per_token(config: object, item_bytes: int = 4) -> int:
    """KV-cache bytes one token of one row costs: keys and values of every layer."""
    heads = getattr(config, "num_attention_heads", 0)
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    head_dim = getattr(config, "head_dim", None) or (
        getattr(config, "hidden_size", 0) // max(heads, 1)
    )
    return 2 * getattr(config, "num_hidden_layers", 0) * kv_heads * head_dim * item_bytes


def _hub_reachable(timeout: float = 3.0) -> bool:
    try:
        socket.create_connection(("huggingface.co", 443), timeout=timeout).close()
    except OSError:
        return False
    return True


def load_hf_source(
    spec: str,
    cache_dir: str | None = None,
    progress: Progress = lambda message: None,
    dtype: str = "float32",
) -> HFSource:
    """A source from an alias, a local folder or a hub id (where the hub is reachable).

    ``dtype``: ``float32`` (the default: exact parity with ``model.generate``), ``bfloat16``,
    or ``auto`` (bfloat16 where the CPU has native bf16, see :func:`native_bf16`).
    """
    torch_dtype = resolve_dtype(dtype)
    if spec in ALIASES:
        root = cache_root(cache_dir)
        folder, problem = model_folder(spec, root), None
        if (folder / MANIFEST).is_file():
            source, problem = _load_verifying(folder, spec, torch_dtype)
            if source is not None:
                return source
        # The unusable folder stays until its replacement is built (ensure_model).
        folder = ensure_model(spec, root, progress, rebuild=problem)
        source, problem = _load_verifying(folder, spec, torch_dtype)
        if source is None:
            raise InvalidInputError(f"the freshly built {spec} does not load: {problem}")
        return source
    path = Path(spec).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise InvalidInputError(
                f"folder {spec!r} is not a Hugging Face model folder (no config.json)"
            )
        return HFSource(path, str(path.resolve()), _folder_fingerprint(path), torch_dtype)
    if path.exists():
        raise InvalidInputError(f"{spec!r} is a file, not a model folder")
    looks_like_path = spec.startswith((".", "/", "~")) or spec.count("/") > 1
    if looks_like_path:
        raise InvalidInputError(f"model folder {spec!r} does not exist")
    if spec.count("/") != 1:
        raise unknown_alias(spec)
    if not _hub_reachable():
        raise InvalidInputError(
            f"cannot reach the Hugging Face hub to fetch {spec!r}: use an "
            f"alias ({', '.join(ALIASES)}) or a local model folder"
        )
    from huggingface_hub import snapshot_download

    folder = Path(
        snapshot_download(
            spec, allow_patterns=["*.json", "*.safetensors", "*.txt", "*.model", "*.jinja"]
        )
    )
    return HFSource(folder, spec, folder.name, torch_dtype)


def _load_verifying(
    folder: Path, alias: str, dtype: torch.dtype = torch.float32
) -> tuple[HFSource | None, str | None]:
    """Load while the checksums are verified on another thread (hashing frees the GIL).

    Returns the source, or ``None`` and why the folder is unusable.
    """
    # Sizes first, by stat alone: a truncated file is never handed to the loaders.
    if (problem := verify_folder(folder, checksums=False)) is not None:
        return None, problem
    problems: list[str | None] = []
    checker = threading.Thread(target=lambda: problems.append(verify_folder(folder)))
    checker.start()
    try:
        source: HFSource | None = HFSource(folder, alias, "", dtype)
    except InvalidInputError as error:
        source, failure = None, str(error)
    checker.join()
    if problems[0] is not None or source is None:
        return None, problems[0] or failure
    source.fingerprint = _with_dtype(manifest_fingerprint(folder), dtype)
    return source, None


def manifest_fingerprint(folder: Path) -> str:
    """The cached model's fingerprint: a digest of its manifest, less the GGUF file's entry.

    The GGUF file is the llama.cpp backend's, kept beside the torch weights; whether it is
    there (caches built before it was kept get it later) changes nothing torch loads, so it
    must not change the fingerprint a run was logged with (``--resume`` compares them).
    """
    manifest = json.loads((folder / MANIFEST).read_text())
    manifest["files"] = {n: f for n, f in manifest["files"].items() if n != GGUF_NAME}
    return "sha256:" + _text_digest(json.dumps(manifest, indent=2))


def _folder_fingerprint(folder: Path) -> str:
    parts = [
        f"{p.name}:{p.stat().st_size}:{p.stat().st_mtime_ns}"
        for p in sorted(folder.iterdir())
        if p.is_file()
    ]
    return "files:" + _text_digest("\n".join(parts))


def _text_digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]
