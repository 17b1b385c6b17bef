"""Running a logged run's rows on a Ray cluster: the settings, the actors and their model.

A run's rows are independent (each keyed by seed, prompt and sample), so they can be generated
anywhere. :func:`~sampler.experiments.ray_session.ray_session` connects to a cluster (a local
one when no address is given), :func:`start_workers` puts actors on its nodes, each loading
the model once through the checksum-verified model cache of its own node, and
:func:`~sampler.experiments.cluster_rows.run_rows_on_ray` hands them the rows and stores each
finished one on the driver, the one writer of the run log.

Examples
--------
A sweep on a local cluster, from Python::

    from sampler.experiments.cluster_rows import sweep_on_ray
    from sampler.experiments.config import RunConfig
    from sampler.runlog.store import RunStore

    with RunStore("runs.db") as store:
        run_id = sweep_on_ray(RunConfig(model="smollm2-135m-gguf", samples=2), store)
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sampler.errors import InvalidInputError
from sampler.experiments.worker import RowWorker, first_line
from sampler.runlog.recording import package_versions
from sampler.sources.cache_folder import ALIASES

__all__ = [
    "EXECUTOR_KEYS",
    "ClusterSettings",
    "Workers",
    "actor_plan",
    "split_executor",
    "start_workers",
]

EXECUTOR_KEYS = ("executor", "ray_address", "actors_per_node", "threads_per_actor")
# An actor killed mid-run is restarted once on its node (it loads the model again); a second
# death drops it, and its rows run on the others.
MAX_RESTARTS = 1
# Versions a row's tokens depend on: every node must run the driver's.
MATCHING_VERSIONS = ("sampler", "numpy")


@dataclass(frozen=True)
class ClusterSettings:
    """Where and how a run's rows are spread: the cluster, actors per node, threads per actor.

    ``address`` ``None`` joins ``$RAY_ADDRESS`` if set, else starts a local cluster. With
    neither count given, every node runs one single-threaded actor per CPU; with one given,
    the other is derived from each node's CPUs; actors that would not fit a node are left out.
    ``start_seconds`` bounds the wait for every actor to load its model.
    """

    address: str | None = None
    actors_per_node: int | None = None
    threads_per_actor: int | None = None
    start_seconds: float = 900.0

    def __post_init__(self) -> None:
        for name in ("actors_per_node", "threads_per_actor"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                      or value < 1):
                raise InvalidInputError(f"{name}={value!r} is invalid: use an integer >= 1")


def split_executor(data: dict[str, Any], origin: str) -> tuple[ClusterSettings | None, dict]:
    """A config's executor keys as settings (``None``: run here) and the rest of its keys.

    ``executor`` is ``"local"`` (the default) or ``"ray"``; ``ray_address``,
    ``actors_per_node`` and ``threads_per_actor`` go with ``executor = "ray"`` only.
    """
    rest = {key: value for key, value in data.items() if key not in EXECUTOR_KEYS}
    executor = data.get("executor", "local")
    if executor not in ("local", "ray"):
        raise InvalidInputError(f"{origin}: executor={executor!r} is unknown: use local or ray")
    given = [key for key in EXECUTOR_KEYS[1:] if key in data]
    if executor == "local":
        if given:
            raise InvalidInputError(f'{origin}: {given[0]} needs executor = "ray"')
        return None, rest
    address = data.get("ray_address")
    if address is not None and not isinstance(address, str):
        raise InvalidInputError(f"{origin}: ray_address must be a string such as 'host:6379'")
    try:
        settings = ClusterSettings(
            address, data.get("actors_per_node"), data.get("threads_per_actor")
        )
    except InvalidInputError as error:
        raise InvalidInputError(f"{origin}: {error}") from None
    return settings, rest


def actor_plan(node_cpus: dict[str, int], settings: ClusterSettings) -> list[tuple[str, int]]:
    """``(node id, threads)`` of each actor to start, from each node's CPUs and ``settings``."""
    plan = []
    for node, cpus in node_cpus.items():
        threads = settings.threads_per_actor or (
            max(1, cpus // settings.actors_per_node) if settings.actors_per_node else 1
        )
        fit = cpus // threads
        count = min(settings.actors_per_node or fit, fit)
        plan += [(node, threads)] * count
    if not plan:
        most = max(node_cpus.values(), default=0)
        raise InvalidInputError(
            f"threads_per_actor={settings.threads_per_actor} is more than any node's CPUs "
            f"(largest: {most}): use at most {most}"
        )
    return plan


@dataclass
class RemoteModel:
    """What a run records of the model the actors loaded; ``decode`` asks one of them."""

    name: str
    fingerprint: str
    decode: Callable[[list[int]], str]


@dataclass
class Workers:
    """The actors of a run, the model they loaded and the versions they run with."""

    actors: list[Any]
    nodes: list[str]  # each actor's node address
    model: RemoteModel
    versions: dict[str, str]

    def apply(self, function: Callable[..., Any], *args: Any) -> Any:
        """``function(source, *args)`` on the first actor's loaded model (a check, a decode)."""
        import ray

        return _unwrapped(ray, lambda: ray.get(self.actors[0].apply.remote(function, *args)))

    def close(self) -> None:
        """Stop every actor (the cluster keeps running)."""
        import ray

        for actor in self.actors:
            ray.kill(actor, no_restart=True)


def _decode(source: Any, ids: list[int]) -> str:
    return source.decode(ids)


def _unwrapped(ray: Any, call: Callable[[], Any]) -> Any:
    """``call()``, an input error raised in an actor re-raised as itself (one line)."""
    try:
        return call()
    except ray.exceptions.RayTaskError as error:
        if isinstance(error.cause, InvalidInputError):
            raise error.cause from None
        raise


def start_workers(
    model: str, dtype: str, cache_dir: str | None, settings: ClusterSettings
) -> Workers:
    """Start the actors of :func:`actor_plan` and load ``model`` in each; all or none.

    Raises :class:`~sampler.errors.InvalidInputError` naming the node when one cannot load
    the model (cannot fetch it, has no backend), loads another one, or runs other versions.
    """
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    # an actor's working folder is Ray's, not the driver's: relative paths are the driver's
    cache_dir = None if cache_dir is None else str(Path(cache_dir).resolve())
    if model not in ALIASES and not model.startswith("synthetic:") and Path(model).exists():
        model = str(Path(model).resolve())  # a local .gguf file or model folder
    nodes = {n["NodeID"]: n for n in ray.nodes() if n["Alive"] and n["Resources"].get("CPU")}
    plan = actor_plan({i: int(n["Resources"]["CPU"]) for i, n in nodes.items()}, settings)
    remote = ray.remote(RowWorker)
    actors = [
        remote.options(
            num_cpus=threads,
            max_restarts=MAX_RESTARTS,
            max_task_retries=0,
            scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=False),
        ).remote(model, dtype, cache_dir, threads)
        for node, threads in plan
    ]
    addresses = [nodes[node]["NodeManagerAddress"] for node, _ in plan]
    try:
        infos = _described(ray, actors, plan, addresses, model, settings.start_seconds)
    except BaseException:
        Workers(actors, addresses, RemoteModel("", "", str), {}).close()
        raise
    mine = package_versions()
    for info, address in zip(infos, addresses, strict=True):
        if info["fingerprint"] != infos[0]["fingerprint"]:
            first = infos[0]["fingerprint"]
            problem = f"loads model fingerprint {info['fingerprint']}, not {first}"
        else:
            theirs = info["versions"]
            differ = [n for n in MATCHING_VERSIONS if theirs.get(n) != mine.get(n)]
            problem = differ and (
                "runs " + ", ".join(f"{n} {theirs.get(n)}" for n in differ) + ", this driver "
                + ", ".join(f"{n} {mine.get(n)}" for n in differ)
            )
        if problem:
            Workers(actors, addresses, RemoteModel("", "", str), {}).close()
            raise InvalidInputError(f"node {address} {problem}: every node must run the same "
                                    "model and versions, or a run would mix them")
    workers = Workers(actors, addresses, RemoteModel(infos[0]["name"], infos[0]["fingerprint"],
                                                     str), infos[0]["versions"])
    workers.model.decode = lambda ids: workers.apply(_decode, ids)
    return workers


def _described(
    ray: Any, actors: list, plan: list[tuple[str, int]], addresses: list[str], model: str,
    seconds: float,
) -> list[dict]:
    """Each actor's loaded model and versions, or one line on the first that failed.

    The first actor of each node loads alone first: it fills that node's model cache once (a
    download, a checksum), and the node's other actors then find it ready, instead of every
    actor fetching the same files at once.
    """
    firsts = {node: index for index, (node, _) in reversed(list(enumerate(plan)))}
    waves = [sorted(firsts.values()), [i for i in range(len(actors)) if i not in firsts.values()]]
    deadline = time.monotonic() + seconds
    infos: dict[int, dict] = {}
    for wave in waves:
        refs = {index: actors[index].describe.remote() for index in wave}
        left = max(0.0, deadline - time.monotonic())
        ready, _ = ray.wait(list(refs.values()), num_returns=len(refs), timeout=left)
        if len(ready) < len(refs):
            raise InvalidInputError(
                f"{len(refs) - len(ready)} of {len(actors)} Ray actors did not load {model!r} "
                f"within {seconds:.0f} s: are the cluster's CPUs taken by other jobs?"
            )
        for index, ref in refs.items():
            try:
                infos[index] = ray.get(ref)
            except ray.exceptions.RayTaskError as error:
                raise InvalidInputError(
                    f"node {addresses[index]} cannot load model {model!r}: "
                    f"{first_line(error.cause or error)}"
                ) from None
            except ray.exceptions.RayActorError as error:
                raise InvalidInputError(
                    f"the Ray actor on node {addresses[index]} did not start (is sampler "
                    f"installed there?): {first_line(error)}"
                ) from None
    return [infos[index] for index in range(len(actors))]
