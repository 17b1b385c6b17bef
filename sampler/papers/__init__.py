"""The sampling literature, reproduced: one experiment per claim, each a report with intervals.

:data:`EXPERIMENTS` maps a name (``sampler reproduce NAME``) to the module that defines it; the
module holds ``EXPERIMENT``, an :class:`~sampler.papers.records.Experiment`. Adding one is a
module and a line here (see /docs/reproductions.md). :func:`run_experiment` loads the model,
runs the experiment, times it and writes its report (:mod:`sampler.papers.writer`).

Examples
--------
>>> "top-n-sigma" in EXPERIMENTS
True
"""

from __future__ import annotations

import importlib
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sampler.errors import InvalidInputError
from sampler.papers.records import Experiment, Options, Outcome

__all__ = ["EXPERIMENTS", "Ran", "experiment", "run_experiment"]

EXPERIMENTS: dict[str, str] = {
    "top-n-sigma": "sampler.papers.top_n_sigma",
    "truncation-cuts": "sampler.papers.truncation_cuts",
    "typical": "sampler.papers.typical",
    "holtzman": "sampler.papers.holtzman",
    "entropy-drift": "sampler.papers.entropy_drift",
    "min-p": "sampler.papers.min_p",
    "mirostat": "sampler.papers.mirostat",
    "speculative": "sampler.papers.speculative",
}


def experiment(name: str) -> Experiment:
    """The experiment called ``name``; an unknown name is an error listing the known ones."""
    if name not in EXPERIMENTS:
        raise InvalidInputError(
            f"experiment {name!r} is unknown: choose one of {', '.join(EXPERIMENTS)} "
            "(sampler reproduce --list)"
        )
    return importlib.import_module(EXPERIMENTS[name]).EXPERIMENT


@dataclass(frozen=True)
class Ran:
    """One finished run: the outcome, what was measured about the run, the files written."""

    outcome: Outcome
    meta: dict[str, Any]
    written: list[Path]


def _load() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


def run_experiment(name: str, options: Options) -> Ran:
    """Run experiment ``name`` with ``options`` and write its report into ``options.out``
    (default ``reproductions/NAME``). The report records the wall and CPU time measured and
    the load average before and after, since a loaded machine runs slower."""
    from sampler.papers.writer import write_outcome
    from sampler.runlog.store import open_run_log
    from sampler.sources import load_source

    chosen = experiment(name)
    folder = options.out if options.out is not None else Path("reproductions") / name
    if folder.exists() and not folder.is_dir():
        raise InvalidInputError(f"report folder {str(folder)!r} is a file: name a folder")
    if options.scale < 1:
        raise InvalidInputError(f"--scale {options.scale} is invalid: use an integer >= 1")
    open_run_log(options.db, create=True).close()  # a bad run log fails before the model loads
    load_before, wall, cpu = _load(), time.perf_counter(), time.process_time()
    source = options.source
    if source is None:
        model = options.model or chosen.default_model
        options.progress(f"loading {model}")
        source = load_source(model, cache_dir=options.cache_dir, progress=options.progress)
    outcome = chosen.run(options, source)
    meta = {
        "model": source.name,
        "fingerprint": source.fingerprint,
        "seed": options.seed,
        "scale": options.scale,
        "wall time (s)": round(time.perf_counter() - wall, 1),
        "CPU time (s)": round(time.process_time() - cpu, 1),
        "load average before (1, 5, 15 min)": load_before,
        "load average after": _load(),
        "cores": os.cpu_count(),
        "machine": platform.machine(),
        "finished": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
    }
    written = write_outcome(chosen, outcome, meta, folder)
    return Ran(outcome, meta, written)
