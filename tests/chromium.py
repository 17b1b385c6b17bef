"""Debian's chromium under Playwright, for the browser tests (no browser download).

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


@pytest.fixture(scope="session")
def browser():
    """One headless chromium for the whole session."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=executable(), args=["--no-sandbox", "--disable-gpu"]
        )
        yield launched
        launched.close()
