"""``POST /api/runs``: a session's generations saved as one run of kind ``serve``.

What is logged is the engine's own output, never numbers a client sends: each generation is
its ``/api/generate`` request (prompt, chat, forced tokens, rows with their seeds,
``max_new_tokens``), re-run here through the same loop, and the completions and per-step
statistics stored are that re-run's. A generation may carry the ``tokens`` the page was
streamed (``done``'s ``token_ids`` per row); they must equal the re-run's, so a saved session
is exactly what this model and these seeds generate, or nothing is saved.

The run records the model, its fingerprint and package versions like any run
(:mod:`sampler.runlog.recording`), all in one transaction: a failure while saving (a full disk)
leaves nothing behind. Its config holds the generations as re-run (``kind: serve``). Row ``i``
of the run is the ``i``-th row over all generations in order; ``extra`` says which generation
and row it is, the forced tokens and, when the generation had a greedy row, the step where the
row leaves greedy's path.

Examples
--------
>>> import pathlib, tempfile
>>> from sampler.runlog.store import RunStore
>>> from sampler.sources.synthetic_spec import parse_synthetic
>>> source = parse_synthetic("synthetic:markov?vocab=50&seed=1")
>>> body = {"generations": [{"prompt": "kalo", "rows": [{"seed": 1}], "max_new_tokens": 3}]}
>>> with tempfile.TemporaryDirectory() as tmp, RunStore(pathlib.Path(tmp) / "r.db") as store:
...     saved = save_session(source, store, body)
...     store.get_run(saved["id"])["kind"], saved["rows"]
('serve', 1)
"""

from __future__ import annotations

import contextlib
from typing import Any

from sampler.errors import InvalidInputError
from sampler.generation.compare import first_divergence
from sampler.runlog.recording import completion_record, save_run
from sampler.runlog.store import RunStore
from sampler.serve.api import request_object
from sampler.serve.stream import Generation, Guard, prepare
from sampler.sources.base import LogitSource

__all__ = ["LIMITS", "RUN_KIND", "save_session"]

RUN_KIND = "serve"
# At most 8 generations a run (8 rows of 256 tokens each at most): a save re-runs them all.
LIMITS = {"generations": 8}
_KEYS = ("generations",)


def _generation(source: LogitSource, index: int, item: Any) -> tuple[Generation, Any]:
    """A generation of the session, checked, and the tokens the client says it got."""
    where = f"generations[{index}]"
    if not isinstance(item, dict):
        raise InvalidInputError(f"{where} must be an /api/generate request object")
    request = {key: value for key, value in item.items() if key != "tokens"}
    rows = request.get("rows")
    for row, settings in enumerate(rows if isinstance(rows, list) else []):
        if isinstance(settings, dict) and settings.get("seed") is None:
            raise InvalidInputError(
                f"{where}.rows[{row}] has no seed: a saved row is re-run from its seed "
                "(/api/generate's start event gives every row's)"
            )
    try:
        return prepare(source, request | {"top": 0}), item.get("tokens")
    except InvalidInputError as error:
        raise InvalidInputError(f"{where}: {error}") from None


def _check_tokens(index: int, generation: Generation, tokens: Any) -> None:
    """The client's tokens, if given, must be the re-run's (same model, same seeds)."""
    if tokens is None:
        return
    where = f"generations[{index}].tokens"
    rows = generation.completions
    if not isinstance(tokens, list) or len(tokens) != len(rows):
        raise InvalidInputError(f"{where} must be a list of {len(rows)} token id lists, one a row")
    for row, (given, completion) in enumerate(zip(tokens, rows, strict=True)):
        if given != completion.token_ids:
            step = first_divergence(completion.token_ids, given if isinstance(given, list) else [])
            raise InvalidInputError(
                f"{where}[{row}] differs from the re-run at step {step}: a session is saved "
                "only as this model generates it from the rows' seeds; nothing was saved"
            )


def save_session(
    source: LogitSource,
    store: RunStore,
    body: Any,
    guard: Guard = contextlib.nullcontext,
) -> dict[str, Any]:
    """Re-run a session's generations and store them as one ``serve`` run.

    Parameters
    ----------
    source
        The model the server serves (the run records its name and fingerprint).
    store
        The run log given on the command line.
    body
        ``{"generations": [request, ...]}``: up to 8 ``/api/generate`` request bodies (every
        row with its ``seed``), each with optional ``tokens`` to check (one list per row).
    guard
        Wraps every model call (the server's model lock).

    Returns
    -------
    dict
        ``{"id": run id, "rows": rows stored, "generations": generations stored}``.
    """
    body = request_object(body, _KEYS)
    items = body.get("generations")
    if not isinstance(items, list) or not 1 <= len(items) <= LIMITS["generations"]:
        count = len(items) if isinstance(items, list) else "no list of"
        raise InvalidInputError(
            f"generations must be a list of 1..{LIMITS['generations']} /api/generate requests, "
            f"got {count} generations"
        )
    # everything is checked and re-run before the run is recorded: a refused session leaves
    # no half-written run behind
    done = []
    for index, item in enumerate(items):
        generation, tokens = _generation(source, index, item)
        generation.run(guard)
        _check_tokens(index, generation, tokens)
        done.append(generation)
    config = {"source": "sampler serve", "generations": [_request(g) for g in done]}
    records = []
    for index, generation in enumerate(done):
        summary = generation.done_event()["rows"]
        for row, completion in enumerate(generation.completions):
            extra = {"generation": index, "row": row, "forced": generation.forced}
            if "divergence_step" in summary[row]:
                extra["divergence_step"] = summary[row]["divergence_step"]
            records.append(completion_record(completion, extra))
    # one transaction: a failure (a full disk) leaves no half-written run behind
    run_id = save_run(store, RUN_KIND, source, config, records)
    return {"id": run_id, "rows": len(records), "generations": len(done)}


def _request(generation: Generation) -> dict[str, Any]:
    """A generation as the request that re-runs it (every row's seed and sample explicit)."""
    start = generation.start_event()
    request = {
        "prompt": generation.completions[0].row.prompt,
        "chat": generation.chat,
        "forced": generation.forced,
        "max_new_tokens": generation.max_new_tokens,
        "rows": [row["settings"] | {"sample": row["sample"]} for row in start["rows"]],
    }
    return request
