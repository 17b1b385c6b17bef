"""README's picture of the page: ``sampler serve`` on a model, a generation, one step opened.

    .venv/bin/python scripts/screenshot_page.py [--model smollm2-135m-gguf] [--out docs/serve.png]

Starts the server on a free loopback port, drives Debian's chromium (as the browser tests do),
asks for greedy beside two samples at τ 0.8, top-p 0.9, opens the step where the first sample
leaves greedy, and saves a screenshot of the page.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from chromium import executable
from playwright.sync_api import sync_playwright

from sampler.serve.server import serving
from sampler.sources import load_source
from sampler.sources.model_cache import DEFAULT_MODEL


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--out", default="docs/serve.png")
    parser.add_argument("--prompt", default="Write one sentence about the sea.")
    args = parser.parse_args()
    source = load_source(args.model)
    with serving(source, None) as (url, _app), sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable(), args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 1050})
        page.goto(f"{url}/#chat=1&temperature=0.8&top_p=0.9")
        page.fill("#prompt", args.prompt)
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
        mark.click()
        page.wait_for_selector("#step-title:has-text('click a bar')")
        page.wait_for_timeout(300)
        page.screenshot(path=args.out, full_page=True)
        print(f"wrote {args.out}; recompute {page.text_content('#recompute-ms')}")
        browser.close()


if __name__ == "__main__":
    main()
