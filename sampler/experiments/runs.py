"""Logged runs by kind: the rows each kind plans, and the one path that records and resumes them.

Every run stores a :class:`~sampler.experiments.config.RunConfig` (so stage settings are
derived in one place) and a kind. The kind decides which rows that config plans:

========== ========================================================================
kind       planned rows
========== ========================================================================
sweep      every prompt x temperature x sample (:meth:`RunConfig.rows`)
generate   the same rows, without the sweep's first-step extras
compare    the greedy row once (τ = 0, sample 0), then samples 0..N-1 at τ
========== ========================================================================

A row's index in its plan is its identity in the run log: a run has ``total_rows =
len(plan)``, and :func:`run_rows` generates exactly the planned rows not stored yet, so
``sampler sweep --resume`` finishes a run of any kind with the rows its command meant. Each
row's tokens depend only on its prompt, params and (seed, sample) stream, not on the batch
around it, so a resumed run ends with the tokens an uninterrupted one would have drawn.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sampler.errors import InvalidInputError, RunLogFullError, RunLogLockedError
from sampler.experiments.config import RunConfig
from sampler.experiments.sweep import Extras, first_step_extras
from sampler.generation.compare import compare_rows
from sampler.generation.generation_row import Completion, GenerationRow
from sampler.generation.loop import generate
from sampler.runlog import recording
from sampler.runlog.store import RunStore
from sampler.sources.base import LogitSource, use_chat

__all__ = [
    "RUN_KINDS",
    "RunKind",
    "compare_plan",
    "generate_planned",
    "missing_rows",
    "planned_rows",
    "resume_config",
    "run_kind",
    "run_rows",
    "save_row",
    "start_run",
]


def compare_plan(config: RunConfig) -> list[GenerationRow]:
    """A compare's plan: greedy at index 0, then sample ``i`` at τ at index ``1 + i``.

    The config has one prompt and temperatures ``[0, τ]`` (``[0]`` when τ is 0 itself).
    """
    temperatures = config.temperatures
    if len(config.prompts) != 1 or temperatures[0] != 0 or len(temperatures) > 2:
        raise InvalidInputError(
            f"a compare run needs one prompt and temperatures [0, τ], but its config has "
            f"{len(config.prompts)} prompts and temperatures {list(temperatures)}"
        )
    (prompt,) = config.prompts
    return compare_rows(prompt, config.params(temperatures[-1]), config.samples, config.stream)


@dataclass(frozen=True)
class RunKind:
    """How one kind of run plans its rows, and what it stores with them besides the rows."""

    plan: Callable[[RunConfig], list[GenerationRow]]
    extras: Extras | None = None


RUN_KINDS: dict[str, RunKind] = {
    "sweep": RunKind(RunConfig.rows, extras=first_step_extras),
    "generate": RunKind(RunConfig.rows),
    "compare": RunKind(compare_plan),
}


def run_kind(kind: str) -> RunKind:
    """The :class:`RunKind` named ``kind``; an unknown name is an input error."""
    if kind == "serve":  # saved whole by `sampler serve` (sampler.serve.sessions), never partial
        raise InvalidInputError(
            "run kind 'serve' is a session saved whole by sampler serve: there is nothing to "
            "resume (`sampler export` or `sampler report` read it)"
        )
    if kind not in RUN_KINDS:
        raise InvalidInputError(
            f"run kind '{kind}' is unknown to this sampler (known: {', '.join(RUN_KINDS)}); "
            "upgrade sampler to resume it"
        )
    return RUN_KINDS[kind]


def planned_rows(kind: str, config: RunConfig) -> list[GenerationRow]:
    """Every row a run of ``kind`` with ``config`` generates; a row's index is its id."""
    return run_kind(kind).plan(config)


def start_run(
    kind: str,
    config: RunConfig,
    store: RunStore,
    source: recording.Model,
    versions: dict[str, str] | None = None,
) -> str:
    """Record a new run of ``kind`` (config, model, fingerprint, versions); return its id.

    ``versions``: those of the processes that generate the rows (a Ray cluster's nodes), if
    not this one's.
    """
    total = len(planned_rows(kind, config))
    return recording.start_run(store, kind, source, config.to_dict(), total, versions)


def save_row(
    store: RunStore,
    run_id: str,
    rows: Sequence[GenerationRow],
    index: int,
    completion: Completion,
    extra: dict[str, Any] | None = None,
) -> None:
    """Store ``completion`` as planned row ``index`` of ``rows``.

    Raises ``RuntimeError`` if the completion is not of that row: an index that names another
    row would make resume skip a row never generated, or generate one twice. A full disk or a
    lock held too long is a :class:`~sampler.errors.RunLogError` saying how to finish the run.
    """
    if completion.row != rows[index]:
        raise RuntimeError(
            f"completion of {completion.row} is not planned row {index} ({rows[index]})"
        )
    try:
        store.add_completion(run_id, index, recording.completion_record(completion, extra))
    except (RunLogFullError, RunLogLockedError) as error:
        # every row committed before this one stays: the run is resumable as it is
        raise error.with_hint(
            f"the rows stored before stay: `sampler sweep --resume {run_id}` finishes the run"
        ) from error


def resume_config(store: RunStore, run_id: str, source: LogitSource) -> RunConfig:
    """The config of a stored run, after checking its kind, its model and its stored rows."""
    run = store.get_run(run_id)
    run_kind(run["kind"])
    if run["fingerprint"] != source.fingerprint:
        raise InvalidInputError(
            f"run {run['id']} was made with model fingerprint {run['fingerprint']}, but "
            f"{source.name} now has {source.fingerprint}: resuming would mix models"
        )
    # a damaged stored row fails here, before any row is generated, not in the final summary
    for _ in store.iter_completions(run["id"], with_steps=False):
        pass
    return RunConfig.from_dict(run["config"], origin=f"run {run['id']}")


def missing_rows(kind: str, config: RunConfig, store: RunStore, run_id: str) -> list[int]:
    """Indices of the planned rows not stored yet, in plan order."""
    done = store.done_rows(run_id)
    return [index for index in range(len(planned_rows(kind, config))) if index not in done]


def generate_planned(
    kind: str,
    config: RunConfig,
    source: LogitSource,
    rows: Sequence[GenerationRow],
    on_finish: Callable[[int, Completion, dict | None], None],
    on_step: Callable[[int, int], None] | None = None,
) -> None:
    """Generate ``rows`` (planned rows of a run of ``kind``) in batches of ``config.batch_size``.

    ``on_finish(position in rows, completion, extra)`` gets each row as it ends, with what the
    kind stores besides it (``None``: nothing). One function for a local run and for each
    share of a run on a Ray cluster (:mod:`sampler.experiments.cluster`), so both generate
    and record a row the same way.
    """
    chat = use_chat(source, config.raw)
    extras = run_kind(kind).extras
    extra_of = None if extras is None else extras(source, rows, chat)
    for start in range(0, len(rows), config.batch_size):

        def finish(position: int, completion: Completion, start: int = start) -> None:
            extra = None if extra_of is None else extra_of(completion.row)
            on_finish(start + position, completion, extra)

        generate(
            source,
            rows[start : start + config.batch_size],
            max_new_tokens=config.max_new_tokens,
            stop=config.stop,
            chat=chat,
            ban_phrases=config.ban_phrases,
            on_step=on_step,
            on_finish=finish,
        )


def run_rows(
    kind: str,
    config: RunConfig,
    store: RunStore,
    run_id: str,
    source: LogitSource,
    on_step: Callable[[int, int], None] | None = None,
    on_row: Callable[[], None] | None = None,
) -> int:
    """Generate every planned row of the run not stored yet, committing each as it finishes.

    ``on_step`` is the generation loop's (``(step, rows running)``, for progress); ``on_row``
    is called after each row is stored. Marks the run complete at the end and returns how many
    rows were generated now.
    """
    rows = planned_rows(kind, config)
    todo = missing_rows(kind, config, store, run_id)

    def save(position: int, completion: Completion, extra: dict | None) -> None:
        save_row(store, run_id, rows, todo[position], completion, extra)
        if on_row is not None:
            on_row()

    generate_planned(kind, config, source, [rows[i] for i in todo], save, on_step)
    store.finish_run(run_id)
    return len(todo)
