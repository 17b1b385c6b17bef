"""Debian's chromium for the browser tests and scripts (Playwright drives it; no download).

``scripts/install_browser.sh`` (part of README's test command) installs chromium; without it
these tests fail with that instruction rather than skip, so CI cannot pass without a browser.
"""

from __future__ import annotations

import os
import shutil

import pytest

CANDIDATES = ("chromium", "chromium-browser", "google-chrome")


def executable() -> str:
    """The chromium binary: ``$SAMPLER_CHROMIUM`` or the first one on PATH."""
    given = os.environ.get("SAMPLER_CHROMIUM")
    found = given or next((shutil.which(name) for name in CANDIDATES if shutil.which(name)), None)
    if not found:
        pytest.fail(
            "no chromium found: run `bash scripts/install_browser.sh` (README's test command)"
        )
    return found
