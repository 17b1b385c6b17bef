"""``POST /api/generate``: several settings side by side in ONE batch, streamed step by step.

A request names a prompt (and optional forced tokens after it) and up to :data:`LIMITS`
``rows`` settings objects; every row runs through the library's own loop
(:func:`~sampler.generation.loop.batch_steps`, the loop ``sampler generate`` runs), so a row
with seed ``s`` and sample ``k`` draws exactly the tokens ``sampler generate --seed s`` draws for
its sample ``k``. The events, as plain dicts (:func:`sse` writes one as a server-sent event):

- ``start``: the model, the prompt's token count, each row's full settings with its seed (drawn
  when the row gave none, like the command line does) and which row is the greedy one;
- ``step`` (one per step): per running row the token, its label, the text it adds, its
  :class:`~sampler.engine.stats.StepStats` and the ``top`` tokens of the law it was drawn from
  (base and final probability, as ``/api/next-token`` gives them);
- with ``logprobs`` (``"raw"`` or ``"processed"``) and ``top_logprobs`` (0..20, default 5) in
  the request, each step's row also has ``logprobs``, that token's entry, and each ``done`` row
  its completion's whole ``logprobs``, as ``sampler generate --json --logprobs`` prints them
  (:mod:`sampler.generation.logprobs`);
- ``done``: each row's completion and, when a greedy row is present, the step where each other
  row first leaves its path (:func:`~sampler.generation.compare.first_divergence`).

Branching is a new request whose ``forced`` tokens are the generated prefix plus the chosen
alternative, with the same rows: a forced token is context, like the prompt, so the branch is
what the library generates after that prefix, its random stream starting afresh.

Examples
--------
>>> from sampler.sources.synthetic_spec import parse_synthetic
>>> source = parse_synthetic("synthetic:markov?vocab=50&seed=1")
>>> job = prepare(source, {"prompt": "kalo", "rows": [{"temperature": 0}, {"seed": 3}],
...                        "max_new_tokens": 3, "top": 2})
>>> [name for name, _ in job.events()][:2], job.greedy_row
(['start', 'step'], 0)
"""

from __future__ import annotations

import contextlib
import math
import secrets
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any

import numpy as np

from sampler.engine.params import SamplingParams
from sampler.engine.sampling import distribution
from sampler.errors import InvalidInputError
from sampler.generation.compare import first_divergence
from sampler.generation.generation_row import Completion, GenerationRow
from sampler.generation.logprobs import LogprobRequest
from sampler.generation.loop import BatchStep, batch_steps
from sampler.serve import api
from sampler.serve.api import shown_value as shown
from sampler.serve.grammar_mask import check_written
from sampler.serve.token_labels import shown_label
from sampler.softmax import softmax
from sampler.sources.base import LogitSource, dry_vocabulary, use_chat

__all__ = ["KEYS", "LIMITS", "Generation", "Guard", "parse_rows", "prepare", "sse"]

# At most 8 rows of at most 256 tokens: a stream ends within seconds on the default model, and
# its events stay small (20 alternatives a row a step).
LIMITS = {"rows": 8, "max_new_tokens": 256, "top": 20}
KEYS = ("prompt", "chat", "forced", "rows", "max_new_tokens", "top", "logprobs", "top_logprobs")
_DEFAULTS = {"max_new_tokens": 64, "top": 5}
# What a caller wraps every model call in (the server: its model lock); nothing by default.
Guard = Callable[[], AbstractContextManager[Any]]


def _bounded(body: dict[str, Any], key: str, low: int, high: int) -> int:
    return api.checked_int(key, body.get(key, _DEFAULTS[key]), low, high)


def parse_rows(rows: Any) -> list[tuple[SamplingParams, int]]:
    """Each row's params (its ``seed`` drawn when it has none) and sample index, checked.

    A row is an object of :class:`SamplingParams` fields (as ``/api/next-token``'s
    ``settings``) plus an optional ``sample`` (default 0), which with the seed and the prompt
    keys the row's random stream as ``sampler generate --samples`` does.
    """
    if not isinstance(rows, list) or not rows:
        raise InvalidInputError(
            f"rows must be a list of 1..{LIMITS['rows']} settings objects, got {shown(rows)}"
        )
    if len(rows) > LIMITS["rows"]:
        raise InvalidInputError(f"rows has {len(rows)} settings objects: at most {LIMITS['rows']}")
    parsed = []
    for index, row in enumerate(rows):
        if not isinstance(row, dict):
            raise InvalidInputError(
                f"rows[{index}] must be an object of SamplingParams fields, got {shown(row)}"
            )
        settings = dict(row)
        sample = settings.pop("sample", 0)
        if isinstance(sample, bool) or not isinstance(sample, int) or not 0 <= sample < 2**31:
            raise InvalidInputError(
                f"rows[{index}].sample must be an integer in 0..{2**31 - 1}, got {shown(sample)}"
            )
        if settings.get("seed") is None:
            settings["seed"] = secrets.randbelow(2**31)  # drawn and reported, as the CLI does
        try:
            parsed.append((api.params_from(settings), sample))
        except InvalidInputError as error:
            raise InvalidInputError(f"rows[{index}]: {error}") from None
    return parsed


def prepare(source: LogitSource, body: Any) -> Generation:
    """A checked generation request, ready to run (nothing is generated yet).

    Raises :class:`~sampler.errors.InvalidInputError` naming the bad field: unknown keys,
    malformed or too many rows, ``max_new_tokens`` or ``top`` out of bounds, the prompt's length,
    forced tokens, or prompt + forced + ``max_new_tokens`` over the model's context.
    """
    body = api.prompt_request(body, KEYS)
    prompt = body["prompt"]
    rows = parse_rows(body.get("rows"))
    max_new_tokens = _bounded(body, "max_new_tokens", 1, LIMITS["max_new_tokens"])
    top = _bounded(body, "top", 0, LIMITS["top"])
    # the prompt, chat and forced tokens checked and encoded as /api/next-token does
    ids = api.prompt_ids(source, body)
    check_written(source, [params for params, _ in rows], body.get("forced", []))
    completions = [
        Completion(GenerationRow(prompt, params, sample), list(ids)) for params, sample in rows
    ]
    return Generation(
        source,
        completions,
        body.get("forced", []),
        max_new_tokens,
        top,
        chat=use_chat(source, raw=body.get("chat") is False),
        logprobs=LogprobRequest.from_body(body),
    )


class Generation:
    """One request's rows as one batch, run step by step (see the module docstring)."""

    def __init__(
        self,
        source: LogitSource,
        completions: list[Completion],
        forced: list[int],
        max_new_tokens: int,
        top: int,
        chat: bool,
        logprobs: LogprobRequest | None = None,
    ) -> None:
        self.source, self.completions, self.forced = source, completions, list(forced)
        self.max_new_tokens, self.top, self.chat = max_new_tokens, top, chat
        self._params = [c.row.params for c in completions]
        self._vocabulary = dry_vocabulary(source, self._params)
        self._pending = [""] * len(completions)
        # checks the context now (a 400 before any event); the model is called only on next()
        self._steps = batch_steps(
            source, completions, max_new_tokens, self._text, logprobs=logprobs, written=forced
        )
        # XTC's coin can drop greedy's argmax, so a greedy row with XTC is no reference path
        self.greedy_row = next(
            (i for i, p in enumerate(self._params) if p.is_greedy and "xtc" not in p.active_stages),
            None,
        )

    def _text(self, row: int, text: str) -> None:
        self._pending[row] += text

    def events(self, guard: Guard = contextlib.nullcontext) -> Iterator[tuple[str, dict]]:
        """``(name, data)`` of every event; each step runs inside ``guard()``, nothing else does.

        Closing the iterator stops the batch between two steps (and drops its session).
        """
        try:
            yield "start", self.start_event()
            while True:
                with guard():
                    step = next(self._steps, None)
                    if step is None:
                        break
                    event = self.step_event(step)
                yield "step", event
            yield "done", self.done_event()
        finally:
            self._steps.close()

    def run(self, guard: Guard = contextlib.nullcontext) -> list[Completion]:
        """Run every step (no events) and return the completions."""
        while True:
            with guard():
                if next(self._steps, None) is None:
                    return self.completions

    def close(self) -> None:
        """Stop the batch (its session, the KV cache, is dropped)."""
        self._steps.close()

    def start_event(self) -> dict[str, Any]:
        """The model, the prompt's length and each row's settings (with its seed)."""
        return {
            "model": self.source.name,
            "prompt_tokens": len(self.completions[0].prompt_ids),
            "forced": self.forced,
            "max_new_tokens": self.max_new_tokens,
            "greedy_row": self.greedy_row,
            "rows": [
                {"row": i, "sample": c.row.sample, "settings": c.to_dict()["params"]}
                for i, c in enumerate(self.completions)
            ],
        }

    def step_event(self, step: BatchStep) -> dict[str, Any]:
        """Per running row: token, label, new text, statistics, top alternatives."""
        running = step.running
        tops: list[list[dict[str, Any]]] = [[] for _ in running]
        if self.top:
            rows = [self.completions[i] for i in running]
            final = distribution(
                step.logits[running],
                [self._params[i] for i in running],
                history=[c.prompt_ids + c.token_ids[: step.step] for c in rows],
                state={name: values[running] for name, values in step.state.items()},
                vocabulary=self._vocabulary,
            ).astype(np.float64)
            base = softmax(step.logits[running].astype(np.float64))
            for j in range(len(running)):
                order = _top(final[j], self.top)
                tops[j] = [self._token(t, base[j, t], final[j, t]) for t in order]
        items = []
        for j, index in enumerate(running):
            completion, token = self.completions[index], int(step.tokens[index])
            stats = {k: _finite(v) for k, v in completion.steps[-1].items() if k != "token"}
            item = {
                "row": int(index),
                "token": token,
                "label": shown_label(self.source, token),
                "text": self._pending[index],
                "stats": stats,
                "top": tops[j],
            }
            if completion.logprobs is not None:  # asked for: the step's entry (logprobs.py)
                item["logprobs"] = completion.logprobs["content"][-1]
            self._pending[index] = ""
            if token in self.source.eos_token_ids or step.step == self.max_new_tokens - 1:
                item["finish_reason"] = completion.finish_reason
            items.append(item)
        return {"step": step.step, "rows": items}

    def _token(self, token: Any, base: float, final: float) -> dict[str, Any]:
        token = int(token)
        label = shown_label(self.source, token)
        return {"token": token, "label": label, "base_p": float(base), "final_p": float(final)}

    def done_event(self) -> dict[str, Any]:
        """Each row's completion; with a greedy row, where each other row leaves its path."""
        paths = [[s["token"] for s in c.steps] for c in self.completions]
        rows = []
        for index, completion in enumerate(self.completions):
            row = {
                "row": index,
                "text": completion.text,
                "token_ids": completion.token_ids,
                "finish_reason": completion.finish_reason,
                "steps": len(completion.steps),
            }
            if completion.logprobs is not None:
                row["logprobs"] = completion.logprobs
            if self.greedy_row is not None and index != self.greedy_row:
                row["divergence_step"] = first_divergence(paths[self.greedy_row], paths[index])
            rows.append(row)
        return {"greedy_row": self.greedy_row, "rows": rows}


def _top(law: np.ndarray, count: int) -> np.ndarray:
    """The ``count`` most likely tokens, ties by lower id: ``argsort(-law, stable)[:count]``.

    Sorting a whole row costs ~5 ms at V = 49,152: only the tokens at or above the
    ``count``-th largest positive probability are sorted, then zero-probability tokens fill up
    by id, as a stable sort places them (partitioning a row of mostly zeros is slow too).
    """
    positive = np.flatnonzero(law > 0)
    if positive.size > count:
        values = law[positive]
        threshold = np.partition(values, values.size - count)[values.size - count]
        positive = positive[values >= threshold]
    order = positive[np.argsort(-law[positive], kind="stable")][:count]
    if order.size < count:
        order = np.concatenate([order, np.flatnonzero(law <= 0)[: count - order.size]])
    return order


def _finite(value: Any) -> Any:
    # JSON has no NaN or infinity: a statistic that is not finite is sent as null
    return None if isinstance(value, float) and not math.isfinite(value) else value


def sse(name: str, data: dict[str, Any]) -> str:
    """One server-sent event: ``event: NAME`` and its data as one line of JSON."""
    return f"event: {name}\ndata: {api.to_json(data)}\n\n"
