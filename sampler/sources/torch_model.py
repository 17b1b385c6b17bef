"""A Hugging Face causal LM as a logit source: batched, left-padded, with a KV cache.

Loaded from safetensors only and never with ``trust_remote_code``. Importing this module (or
the ``torch_*`` modules it is made of) imports torch and transformers; nothing else in the
core does.

Weights load in float32 by default (greedy output equals ``model.generate`` token for token,
tested); ``dtype="bfloat16"`` halves them, and ``dtype="auto"`` picks bfloat16 where the CPU
multiplies bf16 natively (AVX512-BF16 or AMX, from /proc/cpuinfo) and float32 elsewhere.

Where it comes from (an alias of the cache, a local folder, a hub id) and its fingerprint are
here; the source is :class:`~sampler.sources.torch_source.HFSource`, its batches
:class:`~sampler.sources.torch_session.HFSession`, the dtype rules
:mod:`sampler.sources.torch_dtype` (all importable from here as before).
"""

from __future__ import annotations

import hashlib
import json
import socket
import threading
from pathlib import Path

import torch

from sampler.errors import InvalidInputError
from sampler.sources.cache_folder import (
    ALIASES,
    GGUF_NAME,
    MANIFEST,
    Progress,
    cache_root,
    model_folder,
    verify_folder,
)
from sampler.sources.model_cache import ensure_model, unknown_alias
from sampler.sources.torch_dtype import native_bf16, resolve_dtype, with_dtype
from sampler.sources.torch_session import HFSession
from sampler.sources.torch_source import HFSource

__all__ = [
    "HFSession",
    "HFSource",
    "load_hf_source",
    "manifest_fingerprint",
    "native_bf16",
    "quiet_transformers",
    "resolve_dtype",
]


def quiet_transformers() -> None:
    """Silence transformers' progress bars and advisory warnings (for the command line)."""
    import warnings

    from transformers.utils import logging

    logging.set_verbosity_error()
    logging.disable_progress_bar()
    warnings.filterwarnings("ignore", message=".*past_key_values.*deprecated")


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
    source.fingerprint = with_dtype(manifest_fingerprint(folder), dtype)
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
