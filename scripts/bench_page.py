"""How long the page takes to recompute on a slider move, at a real model's vocabulary.

    .venv/bin/python scripts/bench_page.py [--model smollm2-135m-gguf] [--rounds 5]

Serves the model on a free loopback port, opens the page in Debian's chromium (headless, as the
browser tests), moves the controls over a grid of settings ``--rounds`` times and reads the
time the page measured itself (``performance.now()`` around engine and drawing, shown in the
page). Beside it, the library on the same row and settings (``distribution`` plus a Sampler
step's statistics), timed in this process: the page's target is 16 ms, a frame.
"""

from __future__ import annotations

import argparse
import base64
import statistics
import sys
import time
from pathlib import Path
from urllib.parse import urlencode

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from chromium import executable
from playwright.sync_api import sync_playwright

from sampler.engine.params import SamplingParams
from sampler.engine.sampling import Sampler, distribution
from sampler.serve import api
from sampler.serve.server import serving
from sampler.sources import load_source
from sampler.sources.model_cache import DEFAULT_MODEL

GRID = [
    {"temperature": 0.3},
    {"temperature": 0.7},
    {"temperature": 1.5},
    {"top_k": 40},
    {"top_p": 0.9},
    {"min_p": 0.05},
    {"typical_p": 0.9},
    {"epsilon": 0.001},
    {"eta": 0.001},
    {"repetition_penalty": 1.3},
    {"top_k": 0, "top_p": 1.0, "min_p": 0.0, "typical_p": 1.0},
    {"order": "webui", "smoothing_factor": 0.5, "smoothing_curve": 4.0},
    {"smoothing_factor": 0.0, "smoothing_curve": 1.0, "tfs": 0.95},
    {"tfs": 1.0, "order": "hf"},
]
WEBUI = ("smoothing_factor", "smoothing_curve", "tfs")  # stages only webui's order has
CONTROLS = {
    "temperature": 1.0,
    "top_k": 0,
    "top_p": 1.0,
    "min_p": 0.0,
    "typical_p": 1.0,
    "epsilon": 0.0,
    "eta": 0.0,
    "repetition_penalty": 1.0,
    "order": "hf",
    "smoothing_factor": 0.0,
    "smoothing_curve": 1.0,
    "tfs": 1.0,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--prompt", default="The capital of France is")
    args = parser.parse_args()
    source = load_source(args.model)
    page_ms, library_ms, current = [], [], dict(CONTROLS)
    answer = api.next_token(source, {"prompt": args.prompt})
    row = np.frombuffer(base64.b64decode(answer["logits_float32_b64"]), "<f4")
    history = answer["history"]
    with serving(source, None) as (url, _app), sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable(), args=["--no-sandbox"])
        page = browser.new_page()
        # the library's row above: this prompt, through the model's chat template if it has one
        page.goto(f"{url}/#{urlencode({'prompt': args.prompt})}")
        page.wait_for_selector("#step-title:has-text('tokens in')")
        # every group open: a closed group hides its settings from page.fill
        page.evaluate(
            "() => document.querySelectorAll('details.group').forEach((d) => (d.open = true))"
        )
        for _ in range(args.rounds):
            for change in GRID:
                for name, value in change.items():
                    current[name] = value
                    if name == "order":
                        page.select_option("#order", value)
                    else:
                        page.fill(f"#set-{name}", str(value))
                    page_ms.append(float(page.get_attribute("#recompute-ms", "data-ms")))
                order = current["order"]
                params = SamplingParams(
                    **{k: v for k, v in current.items() if order == "webui" or k not in WEBUI},
                    seed=0,
                )
                started = time.perf_counter()
                distribution(row, params, history=[history])
                Sampler([params]).step(row[None], history=[history])
                library_ms.append(1000 * (time.perf_counter() - started))
        browser.close()
    page_ms.sort()
    p95 = page_ms[int(0.95 * (len(page_ms) - 1))]
    library = statistics.median(library_ms)
    print(f"{source.name}, V = {row.size}: {len(page_ms)} slider moves")
    print(
        f"page recompute (engine + drawing): median {statistics.median(page_ms):.2f} ms, "
        f"p95 {p95:.2f} ms, max {page_ms[-1]:.2f} ms (target < 16 ms)"
    )
    print(
        f"library (distribution + Sampler step with statistics): median {library:.2f} ms; "
        f"page / library = {statistics.median(page_ms) / library:.2f}"
    )


if __name__ == "__main__":
    main()
