"""docs/serve-grammar.png: the page of ``sampler serve`` with a JSON schema as its grammar.

    .venv/bin/python scripts/screenshot_grammar.py [--model smollm2-135m-gguf]
        [--out docs/serve-grammar.png]

Starts the server on a free loopback port, drives Debian's chromium (as the browser tests do),
opens a link whose fragment holds a JSON schema (the grammar box, the syntax "JSON schema") and
the prompt, waits for the server's mask, folds the first settings groups so that the grammar
box shows beside the bars, and saves the first screen at 1280 × 1180: the model's likeliest
tokens struck and marked ⊘ (forbidden by the grammar), the grammar's readouts.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.parse
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from chromium import executable
from playwright.sync_api import sync_playwright

from sampler.serve.server import serving
from sampler.sources import load_source
from sampler.sources.model_cache import DEFAULT_MODEL

SCHEMA = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
    "required": ["name", "age"],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--out", default="docs/serve-grammar.png")
    args = parser.parse_args()
    source = load_source(args.model)
    fragment = urllib.parse.urlencode(
        {
            "prompt": "Describe a cat as a JSON object.",
            "chat": "1",
            "temperature": "0.8",
            "grammar": json.dumps(SCHEMA),
            "grammar_syntax": "json_schema",
        }
    )
    with serving(source, None) as (url, _app), sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable(), args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 1180})
        page.goto(f"{url}/#{fragment}")
        page.wait_for_function("() => !document.getElementById('grammar-readout').hidden")
        page.evaluate(
            """() => { for (const name of ["temperature", "truncation"])
              document.getElementById(`group-${name}`).open = false; }"""
        )
        page.screenshot(path=args.out)
        print(f"wrote {args.out}: {page.text_content('#grammar-readout').split()[:8]}")
        browser.close()


if __name__ == "__main__":
    main()
