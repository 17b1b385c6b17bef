"""Recording a run: the package versions it ran with, its rows as stored, its start and save.

Every run records the same things whoever makes it: sweeps, ``generate`` and ``compare``
(:mod:`sampler.experiments.runs`) start a run and save it row by row, so an interrupted one
can be resumed; the server's sessions (:mod:`sampler.serve.sessions`) save a run whole, in one
transaction. A model and a finished row are taken by what they have (a ``name`` and a
``fingerprint``; ``to_dict()``), so the run log needs nothing from the layers above it.

Examples
--------
>>> import pathlib, tempfile
>>> from sampler.runlog.store import RunStore
>>> class Toy:
...     name, fingerprint = "toy", "f00d"
>>> with tempfile.TemporaryDirectory() as tmp, RunStore(pathlib.Path(tmp) / "r.db") as store:
...     run_id = save_run(store, "serve", Toy(), {"seed": 0}, [])
...     run = store.get_run(run_id)
>>> run["status"], run["total_rows"], {"python", "numpy"} <= set(run["versions"])
('complete', 0, True)
"""

from __future__ import annotations

import contextlib
import platform
import sys
from collections.abc import Sequence
from importlib import metadata
from typing import Any, Protocol

from sampler.errors import RunLogError
from sampler.json_values import json_safe
from sampler.runlog.schema import COMPLETION_FIELDS
from sampler.runlog.store import RunStore

__all__ = [
    "FinishedRow",
    "Model",
    "completion_record",
    "package_versions",
    "save_run",
    "start_run",
]

# Distributions whose version can change a run's numbers, each recorded when its module is
# loaded: the backends (torch and transformers, llama.cpp) are imported only by the models
# that run on them, so a run on a synthetic source records none of them.
VERSIONED = {
    "sampler": None,
    "numpy": None,
    "torch": "torch",
    "transformers": "transformers",
    "llama-cpp-python": "llama_cpp",
}


class Model(Protocol):
    """What a run records of its model (every :class:`~sampler.sources.base.LogitSource`)."""

    @property
    def name(self) -> str: ...

    @property
    def fingerprint(self) -> str: ...


class FinishedRow(Protocol):
    """A finished row (a :class:`~sampler.generation.generation_row.Completion`)."""

    def to_dict(self) -> dict: ...


def package_versions() -> dict[str, str]:
    """Versions that can change results: python, this package, numpy and the loaded backends."""
    versions = {"python": platform.python_version()}
    for name, module in VERSIONED.items():
        if module is not None and module not in sys.modules:
            continue  # not used by this run's model
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[name] = metadata.version(name)
    return versions


def completion_record(completion: FinishedRow, extra: dict[str, Any] | None = None) -> dict:
    """What the run log stores for one finished row (and ``extra``, what the run adds to it)."""
    data = completion.to_dict()
    extra = dict(extra or {})
    if data.get("logprobs") is not None:  # asked for (generate --logprobs): kept with the row
        extra["logprobs"] = json_safe(data["logprobs"])  # -inf as null, as export writes it
    record = {key: data[key] for key in (*COMPLETION_FIELDS, "steps")} | {"extra": extra}
    if "rewinds" in data:  # phrases were banned (sampler.generation.phrase_bans)
        record["rewinds"] = data["rewinds"]
    return record


def start_run(
    store: RunStore,
    kind: str,
    model: Model,
    config: dict,
    total_rows: int,
    versions: dict[str, str] | None = None,
) -> str:
    """Record a new, ``running`` run of ``kind`` (model, fingerprint, versions); return its id.

    ``versions`` default to :func:`package_versions` of this process; a run whose rows are
    generated elsewhere (on a Ray cluster's nodes) records theirs.
    """
    return store.create_run(
        kind=kind,
        model=model.name,
        fingerprint=model.fingerprint,
        config=config,
        versions=package_versions() if versions is None else versions,
        total_rows=total_rows,
    )


def save_run(
    store: RunStore, kind: str, model: Model, config: dict, records: Sequence[dict]
) -> str:
    """Record a whole, ``complete`` run with ``records`` as its rows, in one transaction.

    ``records`` are :func:`completion_record` results. A failure (a full disk, a lock held
    too long) stores nothing, and its message says so.
    """
    versions = package_versions()
    try:
        return store.add_run(kind, model.name, model.fingerprint, config, versions, records)
    except RunLogError as error:
        raise error.with_hint("nothing of the run was saved") from error
