"""Generation speed and memory against transformers' `model.generate` and llama.cpp's own loop.

Everything in one process, interleaved (each repeat rotates which side goes first), best of
the repeats; in case a, gguf and llama.cpp run back to back in at least 6 pairs (`--pairs`),
the first of each pair alternating, and the 1.1x target is judged on the median of the
per-pair time ratios (gguf_i / llama.cpp_i, printed with their range; the best-of ratio is
printed beside it). SmolLM2-135M-Instruct, the same chat prompt, every row made to run its full
length (EOS ignored). Sides:

- torch: our loop (engine + statistics) on `smollm2-135m` (float32);
- gguf: our loop on `smollm2-135m-gguf` (the Q4_1 file, logits from llama.cpp);
- generate: transformers' `model.generate`, float32, the same model object as torch;
- llama.cpp: llama-cpp-python's high-level loop on the same GGUF file, at llama.cpp's own
  best settings here: `Llama(model_path, n_ctx=512, n_threads=<ours>, flash_attn=True,
  logits_all=False, verbose=False)` (flash attention on, as llama.cpp's CLI and the contexts
  this project makes default to on a CPU; llama-cpp-python's `Llama` defaults it off) and
  `Llama.generate(prompt, temp=T, top_k=0, top_p=1, min_p=0, repeat_penalty=1)` (its own
  sampler chain: greedy at T = 0, else temperature + dist), reset before each run.

Cases:

a. batch 1, greedy, 128 new tokens: torch, gguf, generate, llama.cpp;
b. 8 temperatures x 64 new tokens, one sample each: torch and gguf as one batch; generate and
   llama.cpp once per temperature;
c. 8 temperatures x 4 samples x 64 tokens: torch as one batch of 32 vs `generate` once per
   temperature with `num_return_sequences=4`;
d. peak RSS of a 32-row, 512-token run of ours (torch), against the RSS of the loaded model
   (in a fresh subprocess, from the OS: VmHWM, reset after loading);
x. the ceiling: one batched `llama_decode` alone (our context settings, flash attention on),
   batch 1 and batch 8, median of 32 steps; each gguf ratio is printed beside the ratio a loop
   costing nothing but its decodes would reach;
s. one torch decoding step (session `advance`, full logits read back) at batch 1 and 8, in
   float32 and bfloat16 (`load_hf_source(..., dtype=...)`), median of 16 steps.

Prints a table and one JSON line. Not a test: these machines are noisy.

    .venv/bin/python scripts/bench_generate.py [--quick] [--cases abcdsx] [--repeats N]
        [--pairs N] [--tokens N]
"""

from __future__ import annotations

import argparse
import itertools
import json
import platform
import statistics
import subprocess
import sys
import time

from sampler.sources.cpu import tune_math_libraries

tune_math_libraries()  # the same MKL settings for both sides, before torch loads

import numpy as np  # noqa: E402
import torch  # noqa: E402

from sampler import SamplingParams  # noqa: E402
from sampler.generation.generation_row import GenerationRow  # noqa: E402
from sampler.generation.loop import generate  # noqa: E402
from sampler.sources import load_source  # noqa: E402
from sampler.sources.torch_model import load_hf_source, native_bf16  # noqa: E402

PROMPT = "Write a long story about a dragon who learns to bake bread."
PAIRED_REPEATS = 6  # case a's gguf and llama.cpp: at least this many back-to-back pairs
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


class LlamaCppLoop:
    """llama-cpp-python's own generation loop on the GGUF file (the anchor)."""

    def __init__(self) -> None:
        from llama_cpp import Llama

        from sampler.sources.gguf_cache import ensure_gguf
        from sampler.sources.llamacpp_model import _threads
        from sampler.sources.model_cache import cache_root

        path, _ = ensure_gguf("smollm2-135m-gguf", cache_root(None), lambda message: None)
        self.threads = _threads()
        self.llama = Llama(model_path=str(path), n_ctx=512, n_threads=self.threads,
                           n_threads_batch=self.threads, flash_attn=True,
                           logits_all=False, verbose=False)

    def run(self, prompt_ids: list[int], max_new: int, temperature: float) -> list[int]:
        self.llama.reset()  # no prefix reuse: the prompt is prefilled every run, as ours is
        tokens = self.llama.generate(prompt_ids, temp=temperature, top_k=0, top_p=1.0,
                                     min_p=0.0, repeat_penalty=1.0)
        return list(itertools.islice(tokens, max_new))  # EOS ignored, as on our side


def ours(source, temperatures, samples: int, max_new: int) -> list:
    rows = [GenerationRow(PROMPT, SamplingParams(temperature=tau, seed=0), sample)
            for tau in temperatures for sample in range(samples)]
    return generate(source, rows, max_new_tokens=max_new, ignore_eos=True)


def timed(run) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def case(name: str, sides: dict, repeats: int, targets: list, paired: tuple = (),
         paired_repeats: int = 0) -> dict:
    """Time every side ``repeats`` times, rotating which goes first; best of each.

    ``targets``: ``(side, peer, ratio)``, met when ``peer`` takes at least ``ratio`` times as
    long as ``side`` (a ratio below 1 is a ceiling: 1/1.3 means side <= 1.3x peer). The two
    sides in ``paired`` run back to back instead, ``max(repeats, paired_repeats)`` times, the
    first of the pair alternating; their target is judged on the median of the per-pair time
    ratios (side_i / peer_i), which a slow spell of the machine moves less than the best of
    each side taken from different moments.
    """
    alone = [n for n in sides if n not in paired]
    times: dict[str, list[float]] = {n: [] for n in sides}
    for repeat in range(max(repeats, paired_repeats if paired else 0)):
        if repeat < repeats:
            shift = repeat % max(len(alone), 1)
            for n in alone[shift:] + alone[:shift]:
                times[n].append(timed(sides[n]))
        for n in (paired if repeat % 2 == 0 else paired[::-1]):
            times[n].append(timed(sides[n]))
    best = {n: round(min(t), 2) for n, t in times.items()}
    checks = []
    for side, peer, ratio in targets:
        speedup = min(times[peer]) / min(times[side])
        check = {"side": side, "peer": peer, "speedup": round(speedup, 2), "target": ratio,
                 "met": speedup >= ratio}
        if {side, peer} == set(paired):
            ratios = [a / b for a, b in zip(times[side], times[peer], strict=True)]
            median = statistics.median(ratios)
            check.update(paired_ratio=round(median, 3), paired_min=round(min(ratios), 3),
                         paired_max=round(max(ratios), 3), pairs=len(ratios),
                         met=median <= 1 / ratio, best_met=speedup >= ratio)
        checks.append(check)
    return {"case": name, "best_s": best, "all_s": {n: [round(x, 2) for x in t]
                                                   for n, t in times.items()},
            "checks": checks}


def step_case(sources: dict, prompt_ids: list[int], batches=(1, 8), steps: int = 16,
              repeats: int = 2) -> dict:
    """Median ms of one torch decoding step per dtype and batch, interleaved by dtype."""
    result: dict[str, dict[str, float]] = {d: {} for d in sources}
    for batch in batches:
        samples: dict[str, list[float]] = {d: [] for d in sources}
        names = list(sources)
        for repeat in range(repeats):
            for dtype in names[repeat % 2:] + names[:repeat % 2]:
                _, session = sources[dtype].start([prompt_ids] * batch)
                token = np.full(batch, prompt_ids[-1], dtype=np.int64)
                session.advance(token)  # warm-up
                for _ in range(steps):
                    start = time.perf_counter()
                    session.advance(token)
                    samples[dtype].append(time.perf_counter() - start)
        for dtype in names:
            result[dtype][f"batch_{batch}_ms"] = round(1000 * statistics.median(samples[dtype]), 1)
    return {"case": "s. one torch decoding step (median ms)", "native_bf16": native_bf16(),
            "step_ms": result}


def ceiling_case(gguf, prompt_ids: list[int], steps: int = 32) -> dict:
    """Median ms of one batched ``llama_decode`` (one token per row, logits for every row)."""
    result = {}
    for batch in (1, 8):
        _, session = gguf.start([prompt_ids] * batch)
        token = prompt_ids[-1]
        samples = []
        for _ in range(steps):
            entries = [(token, int(session._positions[row]), row) for row in range(batch)]
            start = time.perf_counter()
            session._decode(entries, True)  # the decode alone: no logits copied, no sampling
            samples.append(time.perf_counter() - start)
            session._positions += 1
            session._used += batch
        result[f"batch_{batch}_ms"] = round(1000 * statistics.median(samples), 2)
    return {"case": "x. one llama_decode (median ms)", "decode_ms": result}


def with_ceilings(results: list[dict], decode_ms: dict, tokens_a: int, tokens_b: int) -> None:
    """Beside each gguf-vs-llama.cpp ratio, the ratio of a loop that only decodes."""
    new_tokens = {"a": (tokens_a, "batch_1_ms"), "b": (tokens_b, "batch_8_ms")}
    for row in results:
        spec = new_tokens.get(row["case"][0])
        if spec is None or "llama.cpp" not in row.get("best_s", {}):
            continue
        tokens, key = spec
        floor_s = tokens * decode_ms[key] / 1000
        for check in row["checks"]:
            if check["side"] == "gguf" and check["peer"] == "llama.cpp":
                check["ceiling"] = round(row["best_s"]["llama.cpp"] / floor_s, 2)
                check["decode_share"] = round(floor_s / row["best_s"]["gguf"], 2)


def memory_case() -> dict:
    """Run in a fresh interpreter so the peak belongs to this run alone."""
    script = (
        "import json\n"
        "from sampler.sources.cpu import tune_math_libraries; tune_math_libraries()\n"
        "from sampler import SamplingParams\n"
        "from sampler.generation.loop import GenerationRow, generate\n"
        "from sampler.sources import load_source\n"
        "source = load_source('smollm2-135m', quiet=True)\n"
        "source.start([[1, 2, 3]])\n"
        "def status(key):\n"
        "    for line in open('/proc/self/status'):\n"
        "        if line.startswith(key + ':'): return int(line.split()[1]) / 1024\n"
        "def rss(): return status('VmHWM')\n"
        # Loading peaks above the loaded model (checksums, conversion buffers): reset the
        # high-water mark (Linux clear_refs 5) so the peak is the generation's alone.
        "open('/proc/self/clear_refs', 'w').write('5')\n"
        "loaded = status('VmRSS')\n"
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
    parser.add_argument("--cases", default="abcdsx", help="which cases to run, e.g. abx or ds")
    parser.add_argument("--pairs", type=int, default=PAIRED_REPEATS,
                        help="case a: gguf/llama.cpp pairs run back to back (at least --repeats)")
    parser.add_argument("--tokens", type=int, default=128,
                        help="case a's new tokens (case b: half); fewer only to try the script")
    args = parser.parse_args()
    tokens_a, tokens_b = args.tokens, max(args.tokens // 2, 1)
    source = load_source("smollm2-135m", quiet=True)
    gguf = load_source("smollm2-135m-gguf")
    anchor = LlamaCppLoop()
    prompt_ids = source.encode(PROMPT, chat=True)
    gguf_ids = gguf.encode(PROMPT, chat=True)
    assert gguf_ids == prompt_ids, "both backends must see the same prompt"
    repeats = 1 if args.quick else args.repeats
    cases = {
        "a": (f"a. batch 1 greedy, {tokens_a} tokens", {
            "torch": lambda: ours(source, [0.0], 1, tokens_a),
            "generate": lambda: hf_generate(source, prompt_ids, tokens_a, 0.0),
            "gguf": lambda: ours(gguf, [0.0], 1, tokens_a),
            "llama.cpp": lambda: anchor.run(gguf_ids, tokens_a, 0.0),
        }, repeats, [("torch", "generate", 1.0), ("gguf", "llama.cpp", round(1 / 1.1, 3)),
                     ("gguf", "generate", 5.0)], ("gguf", "llama.cpp"), args.pairs),
        "b": (f"b. 8 temperatures x {tokens_b} tokens", {
            "torch": lambda: ours(source, TEMPERATURES, 1, tokens_b),
            "generate": lambda: [hf_generate(source, prompt_ids, tokens_b, t)
                                 for t in TEMPERATURES],
            "gguf": lambda: ours(gguf, TEMPERATURES, 1, tokens_b),
            "llama.cpp": lambda: [anchor.run(gguf_ids, tokens_b, t) for t in TEMPERATURES],
        }, repeats, [("torch", "generate", 5.0), ("gguf", "generate", 5.0),
                     ("gguf", "llama.cpp", 1.45)]),
        "c": (f"c. 8 temperatures x 4 samples x {tokens_b}", {
            "torch": lambda: ours(source, TEMPERATURES, 4, tokens_b),
            "generate": lambda: [hf_generate(source, prompt_ids, tokens_b, t,
                                             copies=4 if t else 1) for t in TEMPERATURES],
        }, repeats, [("torch", "generate", 3.0)]),
    }
    results = [case(*spec) for letter, spec in cases.items() if letter in args.cases]
    if "x" in args.cases:
        results.append(ceiling_case(gguf, gguf_ids))
        with_ceilings(results, results[-1]["decode_ms"], tokens_a, tokens_b)
    if "s" in args.cases:
        dtypes = {"float32": source,
                  "bfloat16": load_hf_source("smollm2-135m", dtype="bfloat16")}
        results.append(step_case(dtypes, prompt_ids, repeats=max(repeats, 2)))
    if "d" in args.cases and not args.quick:
        results.append(memory_case())
    for row in results:
        if "checks" in row:
            times = "   ".join(f"{n} {t:.2f} s" for n, t in row["best_s"].items())
            print(f"{row['case']:<36} {times}")
            for c in row["checks"]:
                target = (f">= {c['target']}x" if c["target"] >= 1
                          else f"<= {1 / c['target']:.2f}x the time")
                ceiling = (f"   (decodes alone: {c['ceiling']:.2f}x; decodes are "
                           f"{100 * c['decode_share']:.0f} % of gguf's time)"
                           if "ceiling" in c else "")
                if "paired_ratio" in c:  # the verdict: the median of the per-pair ratios
                    print(f"{'':<36}   {c['side']} vs {c['peer']}: {c['paired_ratio']:.3f}x "
                          f"the time (median of {c['pairs']} back-to-back pairs, "
                          f"{c['paired_min']:.3f}-{c['paired_max']:.3f})   target {target}   "
                          f"{'met' if c['met'] else 'NOT met'}{ceiling}")
                    print(f"{'':<36}   {'':<{len(c['side'] + c['peer']) + 4}}  best of each: "
                          f"{1 / c['speedup']:.3f}x the time "
                          f"({'met' if c['best_met'] else 'not met'} by the best-of figures)")
                    continue
                print(f"{'':<36}   {c['side']} vs {c['peer']}: {c['speedup']:.2f}x faster   "
                      f"target {target}   {'met' if c['met'] else 'NOT met'}{ceiling}")
        elif "decode_ms" in row:
            cells = "   ".join(f"{k.replace('_ms', '')} {v:.2f} ms"
                               for k, v in row["decode_ms"].items())
            print(f"{row['case']:<36} {cells}")
        elif "step_ms" in row:
            for dtype, ms in row["step_ms"].items():
                cells = "   ".join(f"{k.replace('_ms', '')} {v:.1f} ms" for k, v in ms.items())
                print(f"{row['case']:<36} {dtype:<9} {cells}")
        else:
            print(f"{row['case']:<36} model {row['model_rss_mb']} MB   peak "
                  f"{row['peak_rss_mb']} MB   +{row['extra_mb']} MB   "
                  f"{'met' if row['met'] else 'NOT met'}")
    import llama_cpp

    print(json.dumps({"benchmark": "generate", "machine": platform.machine(),
                      "torch": torch.__version__, "threads": torch.get_num_threads(),
                      "llama_cpp_python": llama_cpp.__version__, "results": results}))


if __name__ == "__main__":
    main()
