"""Math-library settings that must be in place before torch loads."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["tune_math_libraries"]


def _cpu_vendor() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("vendor_id"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def tune_math_libraries() -> None:
    """Let MKL use its AVX2 kernels on AMD processors, unless the user chose otherwise.

    MKL picks slow generic code paths on AMD CPUs; with ``MKL_ENABLE_INSTRUCTIONS=AVX2`` a
    decoding step of SmolLM2 at batch 8 was 1.5x faster on this project's machines, batch 1
    unchanged. It only has an effect if torch has not been imported yet.
    """
    if "MKL_ENABLE_INSTRUCTIONS" not in os.environ and _cpu_vendor() == "AuthenticAMD":
        os.environ["MKL_ENABLE_INSTRUCTIONS"] = "AVX2"
