"""`sampler sweep` running its rows: here, or on a Ray cluster (``--ray``), with one progress line.

Either way the run is logged the same (one row at a time, by this process) and its results are
printed the same; :mod:`sampler.experiments.cluster` does the work on a cluster, this module
only wires it to the command line.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import click

from sampler.errors import InvalidInputError
from sampler.experiments.progress import RunProgress

__all__ = ["ray_options", "ray_settings", "resume_on_ray", "run_with_progress", "sweep_on_ray"]


def ray_options(command: Callable) -> Callable:
    """``--ray [ADDRESS]``, ``--actors-per-node``, ``--threads-per-actor``."""
    from sampler.cli.options import COUNT

    for option in reversed([
        click.option(
            "--ray",
            "ray_address",
            is_flag=False,
            flag_value="",
            default=None,
            metavar="[ADDRESS]",
            help="Run the rows on a Ray cluster: ADDRESS (host:port, ray://host:port) joins "
            "one, else $RAY_ADDRESS, else a local one starts (extra: sampler[ray]).",
        ),
        click.option("--actors-per-node", type=COUNT, help="With --ray; default: CPUs/threads."),
        click.option("--threads-per-actor", type=COUNT, help="With --ray; default: 1."),
    ]):
        command = option(command)
    return command


def ray_settings(
    ray_address: str | None,
    actors_per_node: int | None,
    threads_per_actor: int | None,
    from_config: Any = None,
) -> Any:
    """The cluster settings the flags (else the config's executor keys) ask for; ``None``:
    run here."""
    from sampler.experiments.cluster import ClusterSettings

    if ray_address is None and from_config is None:
        if actors_per_node is not None or threads_per_actor is not None:
            raise InvalidInputError(
                "--actors-per-node and --threads-per-actor go with --ray (or executor = \"ray\" "
                "in the --config file)"
            )
        return None
    base = from_config or ClusterSettings()
    return ClusterSettings(
        ray_address or base.address,
        actors_per_node or base.actors_per_node,
        threads_per_actor or base.threads_per_actor,
    )


def run_with_progress(
    kind: str, config: Any, store: Any, run_id: str, model_name: str,
    generate: Callable[[RunProgress], None], rows_rate: bool = False,
) -> None:
    """Say what the run is, then ``generate(progress)`` with one progress line on stderr."""
    from sampler.experiments.runs import missing_rows, planned_rows

    rows = len(planned_rows(kind, config))
    todo = len(missing_rows(kind, config, store, run_id))
    click.echo(
        f"run {run_id} ({kind}): {rows} rows ({rows - todo} already done) × up to "
        f"{config.max_new_tokens} tokens, model {model_name}",
        err=True,
    )
    progress = RunProgress(
        rows, rows - todo, todo * config.max_new_tokens, sys.stderr, rows_rate=rows_rate
    )
    try:
        generate(progress)
    except BaseException:  # Ctrl-C, a full disk: the error line starts on a line of its own
        progress.stop()
        raise
    progress.finish()


def _on_ray(
    kind: str, config: Any, store: Any, run_id: str, workers: Any,
    all_columns: bool, as_json: bool,
) -> None:
    from sampler.cli.experiment_output import print_results
    from sampler.experiments.cluster_rows import run_rows_on_ray

    def generate(progress: RunProgress) -> None:
        def row(completion: Any) -> None:
            progress.step(0, len(completion.steps))  # its tokens, counted when it arrives
            progress.row()

        run_rows_on_ray(
            kind, config, store, run_id, workers, on_row=row,
            # a live progress line is left as it is: the notice starts a line of its own
            on_event=lambda line: click.echo(("\n" if progress.live else "") + line, err=True),
        )

    click.echo(f"on Ray: {len(workers.actors)} actors", err=True)
    run_with_progress(kind, config, store, run_id, workers.model.name, generate, True)
    print_results(store, run_id, workers.model, all_columns, as_json)


def sweep_on_ray(
    config: Any, settings: Any, db: str | None, cache_dir: str | None,
    check: Callable[[Any], None], all_columns: bool, as_json: bool,
) -> None:
    """A new sweep on a cluster: actors load the model, ``check(source)`` runs on one, and
    only then is the run log opened and the run recorded."""
    from sampler.cli.options import open_store
    from sampler.experiments.cluster import start_workers
    from sampler.experiments.ray_session import ray_session
    from sampler.experiments.runs import start_run

    with ray_session(settings.address):
        workers = start_workers(config.model, config.dtype, cache_dir, settings)
        try:
            workers.apply(check)
            store = open_store(db)
            run_id = start_run("sweep", config, store, workers.model, workers.versions)
            _on_ray("sweep", config, store, run_id, workers, all_columns, as_json)
        finally:
            workers.close()


def resume_on_ray(
    store: Any, run: dict, settings: Any, cache_dir: str | None, all_columns: bool, as_json: bool
) -> None:
    """Finish a stored run of any kind on a cluster (its model checked by fingerprint)."""
    from sampler.experiments.cluster import start_workers
    from sampler.experiments.ray_session import ray_session
    from sampler.experiments.runs import resume_config
    from sampler.sources import DEFAULT_MODEL

    saved = run["config"]
    with ray_session(settings.address):
        workers = start_workers(
            saved.get("model", DEFAULT_MODEL), saved.get("dtype", "float32"), cache_dir, settings
        )
        try:
            config = resume_config(store, run["id"], workers.model)
            _on_ray(run["kind"], config, store, run["id"], workers, all_columns, as_json)
        finally:
            workers.close()
