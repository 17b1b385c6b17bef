"""The torch backend's weight dtype: which one ``auto`` means on this CPU, and how a run's
fingerprint says that its logits came from bfloat16 weights."""

from __future__ import annotations

from pathlib import Path

import torch

from sampler.errors import InvalidInputError
from sampler.sources import DTYPES

__all__ = ["native_bf16", "resolve_dtype", "with_dtype"]

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


def with_dtype(fingerprint: str, dtype: torch.dtype) -> str:
    """A bfloat16 model computes other logits: its runs must not resume float32 ones."""
    return fingerprint if dtype == torch.float32 or not fingerprint else f"{fingerprint}:bf16"
