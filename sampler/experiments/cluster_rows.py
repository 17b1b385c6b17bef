"""Handing a run's rows to Ray actors and storing each finished row on the driver.

The rows not stored yet are cut into shares of at most ``batch_size`` rows (smaller when there
are fewer rows than actors × batch size, so every actor gets work). An idle actor takes the
next share; it streams each row back as it ends, and the driver stores it at once
(:func:`~sampler.experiments.runs.save_row`, as a local run does): the driver is the run log's
one writer. When an actor dies (its process killed, its node lost), the rows of its share not
received yet go back to the front of the queue and run on the next idle actor, the restarted
one included; a row is stored once, whoever made it. An error raised while generating (not a
lost actor) ends the run as it would end a local one; what was stored stays, for ``--resume``.
"""

from __future__ import annotations

import contextlib
import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sampler.errors import InvalidInputError
from sampler.experiments.cluster import (
    MAX_RESTARTS,
    ClusterSettings,
    Workers,
    start_workers,
)
from sampler.experiments.config import RunConfig
from sampler.experiments.ray_session import ray_session
from sampler.experiments.runs import missing_rows, planned_rows, save_row, start_run
from sampler.generation.generation_row import Completion
from sampler.runlog.store import RunStore

__all__ = ["run_rows_on_ray", "shares", "sweep_on_ray"]


def shares(todo: list[int], batch_size: int, actors: int) -> list[list[int]]:
    """``todo`` cut in plan order into shares of at most ``batch_size``, at least one per actor
    when there are enough rows."""
    size = max(1, min(batch_size, math.ceil(len(todo) / max(1, actors))))
    return [todo[start : start + size] for start in range(0, len(todo), size)]


def _parts(share: _Share) -> list[list[int]]:
    """The rows of ``share`` not received, as one share (none if every row came in)."""
    return [list(share.waiting)] if share.waiting else []


@dataclass
class _Share:
    actor: int  # position in Workers.actors
    waiting: dict[int, None] = field(default_factory=dict)  # indices not received, in order


def run_rows_on_ray(
    kind: str,
    config: RunConfig,
    store: RunStore,
    run_id: str,
    workers: Workers,
    on_row: Callable[[Completion], None] | None = None,
    on_event: Callable[[str], None] | None = None,
) -> int:
    """Generate every planned row not stored yet on ``workers``; store each as it arrives.

    ``on_row(completion)`` is called after each row is stored, ``on_event(line)`` when an
    actor is lost. Marks the run complete and returns how many rows were generated now.
    """
    import ray

    rows = planned_rows(kind, config)
    todo = missing_rows(kind, config, store, run_id)
    queue = deque(shares(todo, config.batch_size, len(workers.actors)))
    idle = list(range(len(workers.actors)))
    deaths = [0] * len(workers.actors)
    running: dict[Any, _Share] = {}  # each share's stream of rows
    reviving: dict[Any, int] = {}  # a lost actor's first call after Ray restarts it
    stored: set[int] = set()
    while queue or running:
        while idle and queue:
            actor, part = idle.pop(0), queue.popleft()
            stream = workers.actors[actor].run.options(num_returns="streaming").remote(
                kind, config, part, [rows[i] for i in part]
            )
            running[stream] = _Share(actor, dict.fromkeys(part))
        if not running and not reviving:
            raise InvalidInputError(
                f"every Ray actor of the run died ({len(stored)} rows stored now); the rows "
                f"stored stay: `sampler sweep --resume {run_id}` finishes the run"
            )
        (ready,), _ = ray.wait([*running, *reviving], num_returns=1)
        if ready in reviving:  # back (model loaded again) or gone for good
            actor = reviving.pop(ready)
            with contextlib.suppress(ray.exceptions.RayError):
                ray.get(ready)
                idle.append(actor)
            continue
        share = running[ready]
        try:
            index, completion, extra = ray.get(next(ready))
        except StopIteration:
            del running[ready]
            idle.append(share.actor)
            queue.extendleft(reversed(_parts(share)))  # none: a share ends with every row
            continue
        except ray.exceptions.RayActorError:
            del running[ready]
            deaths[share.actor] += 1
            if deaths[share.actor] <= MAX_RESTARTS:  # Ray restarts it: ask when it is back
                reviving[workers.actors[share.actor].describe.remote()] = share.actor
            queue.extendleft(reversed(_parts(share)))
            if on_event is not None:
                left = len(share.waiting)
                on_event(f"a Ray actor on node {workers.nodes[share.actor]} was lost; " + (
                    f"its {left} unfinished rows run again" if left else "its rows were all in"))
            continue
        except ray.exceptions.RayTaskError as error:
            if isinstance(error.cause, InvalidInputError):
                raise error.cause from None
            raise
        share.waiting.pop(index, None)
        if index in stored:  # a share rerun after a loss never resends a stored row
            continue
        save_row(store, run_id, rows, index, completion, extra)
        stored.add(index)
        if on_row is not None:
            on_row(completion)
    store.finish_run(run_id)
    return len(todo)


def sweep_on_ray(
    config: RunConfig,
    store: RunStore,
    settings: ClusterSettings | None = None,
    cache_dir: str | None = None,
    on_row: Callable[[Any], None] | None = None,
) -> str:
    """Run a sweep of ``config`` on a Ray cluster, logged in ``store``; return the run's id.

    The rows, and every statistic stored with them, are those a local
    :func:`~sampler.experiments.runs.run_rows` stores. ``on_row(completion)`` is called after
    each row is stored. An interrupted run is finished by ``sampler sweep --resume``.
    """
    settings = settings or ClusterSettings()
    with ray_session(settings.address):
        workers = start_workers(config.model, config.dtype, cache_dir, settings)
        try:
            run_id = start_run("sweep", config, store, workers.model, workers.versions)
            run_rows_on_ray("sweep", config, store, run_id, workers, on_row=on_row)
        finally:
            workers.close()
    return run_id
