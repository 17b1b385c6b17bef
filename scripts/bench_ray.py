"""Rows per second of a sweep here and on a local Ray cluster, and of the run log's one writer.

Three runs of the same sweep (default: the first 8 prompts of configs/holtzman.toml × its 6
temperatures × 2 samples = 96 rows of `smollm2-135m-gguf`, 64 new tokens), each logged into a
fresh run log, timed from the first row asked for to the run marked complete (model loads and
cluster start are timed apart):

- local: this process, one thread (`SAMPLER_THREADS=1`: the same share of a CPU an actor gets);
- ray×1: a local Ray cluster of 2 CPUs, 1 actor of 1 thread;
- ray×2: the same cluster, 2 actors of 1 thread each.

ray×1 / local is the price of the cluster per row (rows travel to the driver one by one);
ray×2 / ray×1 is how close two actors come to twice one. The rows of each run are checked to
be the local ones. Then the writer: the local run's rows stored again and again into a fresh
run log by the call the driver makes for each row (`RunStore.add_completion`), rows per
second and step rows per second. Prints a table and one JSON line. Not a test: run it on an
idle machine.

    .venv/bin/python scripts/bench_ray.py [--model M] [--prompts 8] [--samples 2]
        [--max-new-tokens 64] [--writer-rows 2000]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import tempfile
import time
from pathlib import Path

os.environ["SAMPLER_THREADS"] = "1"  # before any source loads: the local run's one thread

import ray

from sampler.experiments.cluster import ClusterSettings, start_workers
from sampler.experiments.cluster_rows import run_rows_on_ray
from sampler.experiments.config import RunConfig, load_config
from sampler.experiments.runs import run_rows, start_run
from sampler.runlog.recording import completion_record
from sampler.runlog.store import RunStore
from sampler.sources import load_source

ROOT = Path(__file__).resolve().parents[1]


def config_of(args: argparse.Namespace) -> RunConfig:
    holtzman = load_config(ROOT / "configs" / "holtzman.toml")
    return RunConfig(
        model=args.model,
        prompts=tuple(holtzman["prompts"][: args.prompts]),
        temperatures=tuple(holtzman["temperatures"]),
        samples=args.samples,
        max_new_tokens=args.max_new_tokens,
        seed=0,
    )


def stored_rows(store: RunStore, run_id: str) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "run_id"} for r in store.completions(run_id)]


def local_run(config: RunConfig, folder: Path) -> tuple[dict, list[dict]]:
    started = time.perf_counter()
    source = load_source(config.model, quiet=True)
    loaded = time.perf_counter()
    with RunStore(folder / "local.db") as store:
        run_id = start_run("sweep", config, store, source)
        run_rows("sweep", config, store, run_id, source)
        done = time.perf_counter()
        rows = stored_rows(store, run_id)
    return {"load_s": loaded - started, "rows_s": done - loaded}, rows


def ray_run(config: RunConfig, folder: Path, actors: int, expected: list[dict]) -> dict:
    started = time.perf_counter()
    settings = ClusterSettings(actors_per_node=actors, threads_per_actor=1)
    workers = start_workers(config.model, config.dtype, None, settings)
    loaded = time.perf_counter()
    try:
        with RunStore(folder / f"ray{actors}.db") as store:
            run_id = start_run("sweep", config, store, workers.model, workers.versions)
            run_rows_on_ray("sweep", config, store, run_id, workers)
            done = time.perf_counter()
            same = stored_rows(store, run_id) == expected
    finally:
        workers.close()
    return {"actors": len(workers.actors), "load_s": loaded - started, "rows_s": done - loaded,
            "same_rows_as_local": same}


def writer_rate(rows: list[dict], count: int, folder: Path) -> dict:
    """Rows per second of RunStore.add_completion with ``rows`` (steps included) repeated."""
    with RunStore(folder / "writer.db") as store:
        run_id = store.create_run(kind="sweep", model="bench", fingerprint="bench", config={},
                                  versions={}, total_rows=count)
        records = [completion_record(_Finished(r), r["extra"]) for r in rows]
        steps = 0
        started = time.perf_counter()
        for index in range(count):
            record = records[index % len(records)]
            store.add_completion(run_id, index, record)
            steps += len(record["steps"])
        seconds = time.perf_counter() - started
    return {"rows": count, "seconds": seconds, "rows_per_s": count / seconds,
            "steps_per_s": steps / seconds, "steps_per_row": steps / count}


class _Finished:
    """A stored row as the finished row ``completion_record`` takes (its ``to_dict``)."""

    def __init__(self, row: dict) -> None:
        self.row = row

    def to_dict(self) -> dict:
        steps = [{k: v for k, v in s.items() if k != "step"} for s in self.row["steps"]]
        return self.row | {"steps": steps, "logprobs": None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m-gguf")
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--samples", type=int, default=2)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--writer-rows", type=int, default=2000)
    args = parser.parse_args()
    config = config_of(args)
    rows = len(config.rows())
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        local, expected = local_run(config, folder)
        cluster_started = time.perf_counter()
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
                 logging_level=logging.ERROR)
        cluster_s = time.perf_counter() - cluster_started
        try:
            one = ray_run(config, folder, 1, expected)
            two = ray_run(config, folder, 2, expected)
        finally:
            ray.shutdown()
        writer = writer_rate(expected, args.writer_rows, folder)
    rate = {name: rows / run["rows_s"] for name, run in
            (("local", local), ("ray×1", one), ("ray×2", two))}
    print(f"{rows} rows of {config.model}, {config.max_new_tokens} new tokens at most; "
          f"local Ray cluster started in {cluster_s:.1f} s")
    print(f"{'run':8}{'model load s':>14}{'rows s':>10}{'rows/s':>10}  same rows as local")
    for name, run in (("local", local), ("ray×1", one), ("ray×2", two)):
        same = run.get("same_rows_as_local", True)
        print(f"{name:8}{run['load_s']:14.2f}{run['rows_s']:10.2f}{rate[name]:10.2f}  {same}")
    print(f"ray×1 / local = {rate['ray×1'] / rate['local']:.2f}; "
          f"ray×2 / ray×1 = {rate['ray×2'] / rate['ray×1']:.2f} (2.00 would be perfect)")
    print(f"run log writer: {writer['rows_per_s']:.0f} rows/s "
          f"({writer['steps_per_s']:.0f} step rows/s, {writer['steps_per_row']:.0f} steps a row)")
    print(json.dumps({"rows": rows, "model": config.model, "cluster_start_s": cluster_s,
                      "local": local, "ray1": one, "ray2": two, "rows_per_s": rate,
                      "writer": writer}))


if __name__ == "__main__":
    main()
