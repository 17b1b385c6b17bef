"""Speed of one sampling step against transformers, measured in the same process.

For each batch size, vocabulary size and chain it times, in interleaved rounds of short
blocks (the first call of each block not counted; median):

* ours: ``Sampler.step`` (validation, chain, draw; with or without statistics);
* transformers: ``LogitsProcessorList`` of its warpers + ``softmax`` + ``torch.multinomial``;
* one ``np.exp`` pass over the same array, the unit of the "exp passes" column.

Prints a table and one JSON line. Not a test: these machines are noisy.

    .venv/bin/python scripts/bench_sampler.py [--repeats 15] [--quick]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import numpy as np
import torch
from transformers import (
    LogitsProcessorList,
    MinPLogitsWarper,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from sampler import Sampler, SamplingParams

CHAINS = {
    "temperature": {"temperature": 0.7},
    "full": {"temperature": 0.7, "top_k": 50, "top_p": 0.9, "min_p": 0.05},
}


def hf_chain(setting: dict) -> LogitsProcessorList:
    processors = [TemperatureLogitsWarper(setting["temperature"])]
    if "top_k" in setting:
        processors += [
            TopKLogitsWarper(setting["top_k"]),
            TopPLogitsWarper(setting["top_p"]),
            MinPLogitsWarper(setting["min_p"]),
        ]
    return LogitsProcessorList(processors)


BLOCK = 4


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1e3


def bench_case(batch: int, vocab: int, chain: str, repeats: int) -> list[dict]:
    rng = np.random.default_rng(0)
    logits = (rng.standard_normal((batch, vocab)) * 3).astype(np.float32)
    setting = CHAINS[chain]
    ours = {
        stats: Sampler([SamplingParams(**setting, seed=i) for i in range(batch)], stats=stats)
        for stats in (False, True)
    }
    processors = hf_chain(setting)
    scores = torch.from_numpy(logits)
    input_ids = torch.zeros((batch, 1), dtype=torch.long)
    generator = torch.Generator().manual_seed(0)

    def run_hf() -> None:
        probs = torch.softmax(processors(input_ids, scores), dim=-1)
        torch.multinomial(probs, 1, generator=generator)

    timers = {
        "ours": lambda: ours[False].step(logits),
        "ours+stats": lambda: ours[True].step(logits),
        "hf": run_hf,
        "exp": lambda: np.exp(logits),
    }
    samples: dict[str, list[float]] = {name: [] for name in timers}
    for _ in range(2):  # warm-up
        for run in timers.values():
            run()
    # Rounds of short blocks: each contender runs BLOCK times in a row and the first call of
    # a block is not counted, so no contender is timed in the wake of another (torch leaves
    # its worker threads busy and the caches full for a few milliseconds after a call).
    for _ in range(max(1, repeats // (BLOCK - 1))):
        for name, run in timers.items():
            for call in range(BLOCK):
                start = time.perf_counter()
                run()
                if call:
                    samples[name].append(time.perf_counter() - start)
    hf_ms, exp_ms = median_ms(samples["hf"]), median_ms(samples["exp"])
    rows = []
    for name, stats in (("ours", False), ("ours+stats", True)):
        ms = median_ms(samples[name])
        rows.append(
            {
                "batch": batch,
                "vocab": vocab,
                "chain": chain,
                "stats": stats,
                "ours_ms": round(ms, 2),
                "hf_ms": round(hf_ms, 2),
                "speedup": round(hf_ms / ms, 1),
                "exp_ms": round(exp_ms, 2),
                "exp_passes": round(ms / exp_ms, 2),
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--quick", action="store_true", help="only B=32, V=151,936")
    args = parser.parse_args()
    torch.set_num_threads(torch.get_num_threads())
    sizes = [(32, 151_936)] if args.quick else [(b, v) for b in (1, 32) for v in (49_152, 151_936)]
    results = []
    for batch, vocab in sizes:
        for chain in CHAINS:
            results += bench_case(batch, vocab, chain, args.repeats)

    header = (
        f"{'B':>3} {'V':>8} {'chain':<12} {'stats':<5} {'ours ms':>8} {'hf ms':>8} "
        f"{'speedup':>8} {'exp passes':>10}"
    )
    print(header)
    print("-" * len(header))
    for row in results:
        print(
            f"{row['batch']:>3} {row['vocab']:>8} {row['chain']:<12} "
            f"{'yes' if row['stats'] else 'no':<5} {row['ours_ms']:>8.2f} {row['hf_ms']:>8.2f} "
            f"{row['speedup']:>7.1f}x {row['exp_passes']:>10.2f}"
        )
    print(
        json.dumps(
            {
                "benchmark": "sampler_step",
                "machine": platform.machine(),
                "torch_threads": torch.get_num_threads(),
                "numpy": np.__version__,
                "torch": torch.__version__,
                "results": results,
            }
        )
    )


if __name__ == "__main__":
    main()
