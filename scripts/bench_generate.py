"""Generation speed and memory against transformers' `model.generate`, same model, same process.

Cases (SmolLM2-135M-Instruct, the same chat prompt, every row made to run its full length):

a. batch 1, greedy, 128 new tokens: ours (engine + statistics) vs `generate(do_sample=False)`;
b. 8 temperatures x 64 new tokens, one sample each: ours as one batch vs `generate` once per
   temperature;
c. 8 temperatures x 4 samples x 64 tokens: ours as one batch of 32 vs `generate` once per
   temperature with `num_return_sequences=4`;
d. peak RSS of a 32-row, 512-token run of ours, against the RSS of the loaded model (in a
   fresh subprocess, from the OS: `resource.getrusage`).

Prints a table and one JSON line. Not a test: these machines are noisy.

    .venv/bin/python scripts/bench_generate.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time

from sampler.sources.cpu import tune_math_libraries

tune_math_libraries()  # the same MKL settings for both sides, before torch loads

import torch  # noqa: E402

from sampler import SamplingParams  # noqa: E402
from sampler.generation.loop import generate  # noqa: E402
from sampler.generation.rows import GenerationRow  # noqa: E402
from sampler.sources import load_source  # noqa: E402

PROMPT = "Write a long story about a dragon who learns to bake bread."
TEMPERATURES = (0.0, 0.3, 0.5, 0.7, 0.9, 1.1, 1.3, 1.5)


def hf_generate(source, prompt_ids: list[int], max_new: int, temperature: float,
                copies: int = 1) -> None:
    ids = torch.tensor([prompt_ids])
    sampled = temperature > 0
    extra = {"temperature": temperature, "top_k": 0, "top_p": 1.0} if sampled else {}
    with torch.inference_mode():
        source.model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=sampled,
                              max_new_tokens=max_new, min_new_tokens=max_new,
                              num_return_sequences=copies, pad_token_id=source.pad_id, **extra)


def ours(source, temperatures, samples: int, max_new: int) -> list:
    rows = [GenerationRow(PROMPT, SamplingParams(temperature=tau, seed=0), sample)
            for tau in temperatures for sample in range(samples)]
    return generate(source, rows, max_new_tokens=max_new, ignore_eos=True)


def timed(run) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def case(name: str, ours_run, peer_run, repeats: int, target: float) -> dict:
    mine, theirs = [], []
    for repeat in range(repeats):  # interleaved, alternating which side goes first
        if repeat % 2:
            theirs.append(timed(peer_run))
            mine.append(timed(ours_run))
        else:
            mine.append(timed(ours_run))
            theirs.append(timed(peer_run))
    ours_s, peer_s = min(mine), min(theirs)
    return {"case": name, "ours_s": round(ours_s, 2), "generate_s": round(peer_s, 2),
            "speedup": round(peer_s / ours_s, 2), "target": target,
            "met": peer_s / ours_s >= target}


def memory_case() -> dict:
    """Run in a fresh interpreter so the peak belongs to this run alone."""
    script = (
        "import json, resource\n"
        "from sampler.sources.cpu import tune_math_libraries; tune_math_libraries()\n"
        "from sampler import SamplingParams\n"
        "from sampler.generation.loop import GenerationRow, generate\n"
        "from sampler.sources import load_source\n"
        "source = load_source('smollm2-135m', quiet=True)\n"
        "source.start([[1, 2, 3]])\n"
        "def rss(): return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024\n"
        "loaded = rss()\n"
        f"rows = [GenerationRow({PROMPT!r}, SamplingParams(temperature=0.3 + 0.05 * i, seed=0))"
        " for i in range(32)]\n"
        "generate(source, rows, max_new_tokens=512, ignore_eos=True)\n"
        "print(json.dumps({'model_rss_mb': round(loaded), 'peak_rss_mb': round(rss())}))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    extra = result["peak_rss_mb"] - result["model_rss_mb"]
    return {"case": "d. 32 rows x 512 tokens, peak RSS", **result, "extra_mb": extra,
            "target": "extra < 300 MB", "met": extra < 300}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats, no memory case")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--cases", default="abcd", help="which cases to run, e.g. abc or d")
    args = parser.parse_args()
    source = load_source("smollm2-135m", quiet=True)
    prompt_ids = source.encode(PROMPT, chat=True)
    repeats = 1 if args.quick else args.repeats
    cases = [
        ("a. batch 1 greedy, 128 tokens",
             lambda: ours(source, [0.0], 1, 128),
             lambda: hf_generate(source, prompt_ids, 128, 0.0), repeats, 1.0),
        ("b. 8 temperatures x 64 tokens",
             lambda: ours(source, TEMPERATURES, 1, 64),
             lambda: [hf_generate(source, prompt_ids, 64, t) for t in TEMPERATURES],
             repeats, 5.0),
        ("c. 8 temperatures x 4 samples x 64",
             lambda: ours(source, TEMPERATURES, 4, 64),
             lambda: [hf_generate(source, prompt_ids, 64, t, copies=4 if t else 1)
                      for t in TEMPERATURES], repeats, 3.0),
    ]
    results = [case(*spec) for letter, spec in zip("abc", cases, strict=True)
               if letter in args.cases]
    if "d" in args.cases and not args.quick:
        results.append(memory_case())
    for row in results:
        if "speedup" in row:
            print(f"{row['case']:<38} ours {row['ours_s']:7.2f} s   generate "
                  f"{row['generate_s']:7.2f} s   {row['speedup']:5.2f}x   "
                  f"target {row['target']}x   {'met' if row['met'] else 'NOT met'}")
        else:
            print(f"{row['case']:<38} model {row['model_rss_mb']} MB   peak "
                  f"{row['peak_rss_mb']} MB   +{row['extra_mb']} MB   "
                  f"{'met' if row['met'] else 'NOT met'}")
    print(json.dumps({"benchmark": "generate", "machine": platform.machine(),
                      "torch": torch.__version__, "threads": torch.get_num_threads(),
                      "results": results}))


if __name__ == "__main__":
    main()
