"""The Ray actor of a run: one model loaded once, rows generated in batches and streamed back.

:class:`RowWorker` is a plain class; :func:`~sampler.experiments.cluster.start_workers` makes
it a Ray actor, so this module never imports Ray. It generates rows with
:func:`~sampler.experiments.runs.generate_planned`, the function a local run uses, so a row
made here is the row a local run makes.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from sampler.experiments.config import RunConfig
from sampler.generation.generation_row import Completion, GenerationRow
from sampler.runlog.recording import package_versions
from sampler.sources.base import LogitSource
from sampler.sources.model_cache import first_line

__all__ = ["RowWorker", "first_line"]

_END = object()


class RowWorker:
    """Loads ``model`` on first use (through this node's model cache) and generates rows.

    ``threads`` is the actor's share of its node: the engine's threads and llama.cpp's
    (``SAMPLER_THREADS``) and torch's (``OMP_NUM_THREADS``), set before anything loads.
    """

    def __init__(self, model: str, dtype: str, cache_dir: str | None, threads: int) -> None:
        os.environ["SAMPLER_THREADS"] = os.environ["OMP_NUM_THREADS"] = str(threads)
        self._spec = (model, dtype, cache_dir)
        self._source: LogitSource | None = None

    def _loaded(self) -> LogitSource:
        # a restarted actor (its process was killed) loads again on its first call
        if self._source is None:
            from sampler.sources import load_source

            model, dtype, cache_dir = self._spec
            self._source = load_source(model, cache_dir=cache_dir, quiet=True, dtype=dtype)
        return self._source

    def describe(self) -> dict[str, Any]:
        """Load the model; its name and fingerprint, the versions in use, this process."""
        source = self._loaded()
        return {
            "name": source.name,
            "fingerprint": source.fingerprint,
            "versions": package_versions(),
            "pid": os.getpid(),
        }

    def apply(self, function: Callable[..., Any], *args: Any) -> Any:
        """``function(source, *args)``: a check of the driver's, a decode."""
        return function(self._loaded(), *args)

    def run(
        self, kind: str, config: RunConfig, indices: Sequence[int], rows: Sequence[GenerationRow]
    ) -> Iterator[tuple[int, Completion, dict | None]]:
        """``(index, completion, extra)`` of each of ``rows`` (planned rows ``indices`` of the
        run) as soon as it ends; a Ray streaming generator sends each to the driver then."""
        from sampler.experiments.runs import generate_planned

        source = self._loaded()
        finished: queue.Queue = queue.Queue()

        def work() -> None:
            # generate_planned reports rows through a callback; the generator yields them here
            try:
                generate_planned(
                    kind, config, source, list(rows),
                    lambda position, completion, extra: finished.put(
                        (indices[position], completion, extra)
                    ),
                )
                finished.put(_END)
            except BaseException as error:  # re-raised in the actor's own call, below
                finished.put(error)

        threading.Thread(target=work, daemon=True).start()
        while (item := finished.get()) is not _END:
            if isinstance(item, BaseException):
                raise item
            yield item
