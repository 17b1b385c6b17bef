"""README's pictures of the page: ``sampler serve`` on a model, a generation, one step opened.

    .venv/bin/python scripts/screenshot_page.py [--model smollm2-135m-gguf] [--out docs/serve.png]
        [--phone-out docs/serve-phone.png] [--dark]

Starts the server on a free loopback port, drives Debian's chromium (as the browser tests do),
asks for greedy beside two samples at τ 0.8, top-p 0.9, opens the step where the first sample
leaves greedy, and saves a screenshot of the page at 1400 px wide; then the same on a phone
(390 × 844, the settings folded above the chart), its first two screens.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from chromium import executable
from playwright.sync_api import Page, sync_playwright

from sampler.serve.server import serving
from sampler.sources import load_source
from sampler.sources.model_cache import DEFAULT_MODEL


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--out", default="docs/serve.png")
    parser.add_argument("--phone-out", default="docs/serve-phone.png")
    parser.add_argument("--prompt", default="Write one sentence about the sea.")
    parser.add_argument("--dark", action="store_true", help="the dark colour scheme")
    args = parser.parse_args()
    source = load_source(args.model)
    scheme = "dark" if args.dark else "light"
    with serving(source, None) as (url, _app), sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable(), args=["--no-sandbox"])
        for out, viewport, full in (
            (args.out, {"width": 1400, "height": 1050}, True),
            (args.phone_out, {"width": 390, "height": 844}, False),
        ):
            if not out:
                continue
            page = browser.new_page(viewport=viewport, color_scheme=scheme)
            _generate_and_open(page, url, args.prompt)
            # the phone: its first two screens (prompt, folded settings, readout, chart)
            clip = None if full else {"x": 0, "y": 0, "width": 390, "height": 2 * 844}
            page.screenshot(path=out, full_page=True, clip=clip)
            print(f"wrote {out}; recompute {page.text_content('#recompute-ms')}")
            page.close()
        browser.close()


def _generate_and_open(page: Page, url: str, prompt: str) -> None:
    """Greedy beside two samples, then the step where the first sample leaves greedy opened
    from the keyboard (the token focused, Enter): its alternatives' tooltip shows too."""
    page.goto(f"{url}/#chat=1&temperature=0.8&top_p=0.9")
    page.fill("#prompt", prompt)
    page.click("#load")
    page.wait_for_selector("#step-title:has-text('tokens in')")
    page.fill("#samples", "2")
    page.fill("#max-tokens", "20")
    page.click("#generate")
    page.wait_for_function(
        "() => document.getElementById('stop').disabled && "
        "document.querySelectorAll('.generation .tok').length > 0"
    )
    mark = page.query_selector(".tok.diverged") or page.query_selector(".generation .tok")
    mark.focus()
    page.keyboard.press("Enter")
    page.wait_for_selector("#step-title:has-text('click a bar')")
    page.wait_for_timeout(300)


if __name__ == "__main__":
    main()
