"""Running a sweep into the run log: every row batched, each finished row committed at once.

A run's rows are fixed by its config (:meth:`SweepConfig.rows`); the run log keeps the config,
so ``resume`` re-creates the rows, skips those already stored, and runs the rest. Each row's
tokens depend only on its prompt, params and (seed, sample) stream, not on the batch around
it, so a resumed run ends with the tokens an uninterrupted one would have drawn.
"""

from __future__ import annotations

import contextlib
import platform
import sys
from collections.abc import Callable, Sequence
from importlib import metadata
from typing import Any

import numpy as np

from sampler.engine.sampling import distribution
from sampler.errors import InvalidInputError
from sampler.experiments.config import SweepConfig
from sampler.generation.loop import Completion, GenerationRow, generate
from sampler.runlog.schema import COMPLETION_FIELDS
from sampler.runlog.store import RunStore
from sampler.sources.base import LogitSource

__all__ = ["completion_record", "first_step_tops", "package_versions", "run_rows", "start_sweep"]

FIRST_STEP_TOP = 10  # tokens kept per (prompt, temperature) for the first-step bar plot


def package_versions() -> dict[str, str]:
    """Versions that can change results: python, this package, numpy, torch, transformers."""
    versions = {"python": platform.python_version()}
    for name in ("sampler", "numpy", "torch", "transformers"):
        if name in ("torch", "transformers") and name not in sys.modules:
            continue  # not used by this run (a synthetic source)
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[name] = metadata.version(name)
    return versions


def completion_record(completion: Completion, extra: dict[str, Any] | None = None) -> dict:
    """What the run log stores for one finished row."""
    data = completion.to_dict()
    return {key: data[key] for key in (*COMPLETION_FIELDS, "steps")} | {"extra": extra or {}}


def first_step_tops(
    source: LogitSource, rows: Sequence[GenerationRow], chat: bool, top: int = FIRST_STEP_TOP
) -> dict[tuple[str, float], list[dict]]:
    """Per (prompt, temperature), the first step's most likely tokens under the final chain.

    One forward pass per distinct prompt; every temperature reuses its logits.
    """
    logits_by_prompt: dict[str, np.ndarray] = {}
    tops = {}
    for row in rows:
        key = (row.prompt, row.params.temperature)
        if key in tops:
            continue
        if row.prompt not in logits_by_prompt:
            logits, _ = source.start([source.encode(row.prompt, chat)])
            logits_by_prompt[row.prompt] = logits[0]
        probs = distribution(logits_by_prompt[row.prompt], row.params)
        best = np.argsort(-probs, kind="stable")[:top]
        tops[key] = [
            {"token": int(t), "label": source.token_label(int(t)), "prob": float(probs[t])}
            for t in best
        ]
    return tops


def start_sweep(
    config: SweepConfig, store: RunStore, source: LogitSource, kind: str = "sweep"
) -> str:
    """Record a new run (config, model, fingerprint, versions) and return its id."""
    return store.create_run(
        kind=kind,
        model=source.name,
        fingerprint=source.fingerprint,
        config=config.to_dict(),
        versions=package_versions(),
        total_rows=len(config.rows()),
    )


def resume_config(store: RunStore, run_id: str, source: LogitSource) -> SweepConfig:
    """The config of a stored run, after checking the model is still the same."""
    run = store.get_run(run_id)
    if run["fingerprint"] != source.fingerprint:
        raise InvalidInputError(
            f"run {run['id']} was made with model fingerprint {run['fingerprint']}, but "
            f"{source.name} now has {source.fingerprint}: resuming would mix models"
        )
    return SweepConfig.from_dict(run["config"], origin=f"run {run['id']}")


def run_rows(
    config: SweepConfig,
    store: RunStore,
    run_id: str,
    source: LogitSource,
    on_step: Callable[[int, int], None] | None = None,
) -> int:
    """Generate every row of the run not stored yet, committing each as it finishes.

    Returns how many rows were generated now.
    """
    rows = config.rows()
    done = store.done_rows(run_id)
    todo = [index for index in range(len(rows)) if index not in done]
    chat = False if config.raw else None
    use_chat = source.is_chat if chat is None else chat
    tops = first_step_tops(source, [rows[i] for i in todo if rows[i].sample == 0], use_chat)
    for start in range(0, len(todo), config.batch_size):
        chunk = todo[start : start + config.batch_size]

        def save(position: int, completion: Completion, chunk: list[int] = chunk) -> None:
            row = completion.row
            extra = (
                {"first_step_top": tops[(row.prompt, row.params.temperature)]}
                if row.sample == 0
                else {}
            )
            store.add_completion(run_id, chunk[position], completion_record(completion, extra))

        generate(
            source,
            [rows[i] for i in chunk],
            max_new_tokens=config.max_new_tokens,
            stop=config.stop,
            chat=chat,
            on_step=on_step,
            on_finish=save,
        )
    store.finish_run(run_id)
    return len(todo)
