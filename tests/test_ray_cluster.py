"""Sweeps on a Ray cluster: the same rows as a local run, an actor lost, the driver killed.

One local cluster of 2 CPUs (2 single-threaded actors) serves the whole module; the commands
run in this process find it connected and use it, and a driver killed in a subprocess joins it
by address. The oracle is always the local run of the same config: a row on the cluster must
be the row a local run stores, token for token and statistic for statistic (the synthetic
source's logits are a pure function of the context, so any difference is the executor's).
"""

import json
import logging
import os
import re
import signal
import sys
import time

import pytest
from click.testing import CliRunner
from conftest import kill_once

from sampler.cli import cli
from sampler.experiments.cluster import ClusterSettings, start_workers
from sampler.experiments.cluster_rows import run_rows_on_ray
from sampler.experiments.config import RunConfig
from sampler.experiments.ray_session import ray_session
from sampler.experiments.runs import start_run
from sampler.runlog.store import RunStore

if os.environ.get("CI"):
    import ray  # CI installs .[all]: a missing ray fails there
else:
    ray = pytest.importorskip("ray", reason="ray is not installed: pip install -e '.[ray]'")

MARKOV = "synthetic:markov?vocab=300&sharpness=2.0&seed=1"


@pytest.fixture(scope="module")
def cluster():
    """A local Ray cluster for this module: 2 CPUs, this process its driver; its address."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             logging_level=logging.ERROR)
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()


CONFIG = f"""
model = "{MARKOV}"
prompts = ["kalo mesu", "puzo hena"]
temperatures = [0.0, 0.7, 1.5]
samples = 6
max_new_tokens = 20
stop = ["zu"]
repetition_penalty = 1.3
seed = 5
batch_size = 4
"""


def sweep_args(db, *extra: str) -> list[str]:
    # a stop string, a penalty and several temperatures: every path a row's text and
    # statistics take; batch size 4 cuts the 36 rows into shares for both actors
    config = db.parent / "sweep.toml"
    config.write_text(CONFIG)
    return ["sweep", "--config", str(config), "--db", str(db), *extra]


def stored(db, run_id: str | None = None) -> list[dict]:
    """Every stored row of the run, steps and extras included, without the run's own id."""
    with RunStore(db) as store:
        run = store.get_run(run_id or "latest")
        return [{k: v for k, v in row.items() if k != "run_id"}
                for row in store.completions(run["id"])]


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args))


def without_run_ids(text: str) -> str:
    return re.sub(r"\d{8}-\d{6}-[0-9a-f]{4}", "RUN", text)


def test_a_sweep_on_two_actors_stores_the_local_rows(cluster, tmp_path):
    local = invoke(*sweep_args(tmp_path / "local.db"))
    on_ray = invoke(*sweep_args(tmp_path / "ray.db", "--ray"))
    assert local.exit_code == 0 and on_ray.exit_code == 0, on_ray.output
    assert "on Ray: 2 actors" in on_ray.stderr
    expected, got = stored(tmp_path / "local.db"), stored(tmp_path / "ray.db")
    assert len(got) == 36 and [r["row_index"] for r in got] == list(range(36))
    assert got == expected  # tokens, texts, every step's statistics, first-step extras
    assert any(r["finish_reason"] == "stop" for r in got)
    # the printed results, texts placed by the actors' decode, are the local ones
    assert without_run_ids(on_ray.stdout) == without_run_ids(local.stdout)
    assert "(raylet)" not in on_ray.output


def test_a_killed_actor_has_its_rows_run_again_and_none_twice(cluster, tmp_path):
    reference = invoke(*sweep_args(tmp_path / "local.db"))
    assert reference.exit_code == 0
    config = RunConfig(model=MARKOV, prompts=("kalo mesu", "puzo hena"),
                       temperatures=(0.0, 0.7, 1.5), samples=6, max_new_tokens=20, stop=("zu",),
                       repetition_penalty=1.3, seed=5, batch_size=4)
    events, arrived = [], []
    with ray_session(), RunStore(tmp_path / "ray.db") as store:
        workers = start_workers(MARKOV, "float32", None, ClusterSettings())
        victim = ray.get(workers.actors[1].describe.remote())["pid"]
        # Actor 1 first sleeps (a call of its own, ahead of its share): when actor 0's first
        # row is in, actor 1's share has not begun, so the kill leaves all 4 rows unfinished.
        # The sleep is never waited for: the kill ends it.
        workers.actors[1].apply.remote(lambda source, seconds: time.sleep(seconds), 600)

        def on_row(completion) -> None:
            arrived.append(completion)
            if len(arrived) == 1:
                os.kill(victim, signal.SIGKILL)

        try:
            run_id = start_run("sweep", config, store, workers.model, workers.versions)
            run_rows_on_ray("sweep", config, store, run_id, workers, on_row, events.append)
        finally:
            workers.close()
        assert store.get_run(run_id)["status"] == "complete"
    assert events == [
        f"a Ray actor on node {workers.nodes[1]} was lost; its 4 unfinished rows run again"]
    assert len(arrived) == 36  # each row stored once, the 4 lost ones by another call
    assert stored(tmp_path / "ray.db") == stored(tmp_path / "local.db")


def test_a_killed_driver_leaves_a_run_that_resume_on_ray_finishes(cluster, tmp_path):
    extra = ["--samples", "20", "--batch-size", "1"]  # 120 one-row shares: seconds to run
    assert invoke(*sweep_args(tmp_path / "local.db", *extra)).exit_code == 0
    killed = tmp_path / "killed.db"
    command = [sys.executable, "-m", "sampler", *sweep_args(killed, *extra), "--ray", cluster]
    kill_once(command, killed, "SELECT COUNT(*) FROM completions", 4, timeout=120)
    with RunStore(killed) as store:
        run = store.get_run("latest")
        partial = len(store.done_rows(run["id"]))
    assert 0 < partial < 120 and run["status"] == "running"
    resumed = invoke("sweep", "--resume", run["id"], "--db", str(killed), "--ray", "--json")
    assert resumed.exit_code == 0, resumed.output
    assert json.loads(resumed.stdout)["run_id"] == run["id"]
    assert stored(killed, run["id"]) == stored(tmp_path / "local.db")


def test_gguf_rows_on_ray_are_the_local_rows(cluster, tmp_path, gguf):
    # llama.cpp with 1 thread per actor against this process's 2: ggml computes each output
    # element in one thread, so the logits, and with them every row, must not change
    args = ["sweep", "--model", "smollm2-135m-gguf", "--prompt", "Name a colour.", "--prompt",
            "Count to three.", "--temperatures", "0,1", "--samples", "2", "--max-new-tokens",
            "8", "--seed", "3"]
    local = invoke(*args, "--db", str(tmp_path / "local.db"))
    on_ray = invoke(*args, "--db", str(tmp_path / "ray.db"), "--ray")
    assert local.exit_code == 0 and on_ray.exit_code == 0, on_ray.output
    assert stored(tmp_path / "ray.db") == stored(tmp_path / "local.db")
