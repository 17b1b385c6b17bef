"""What ``sampler serve`` answers, as plain functions from a request body to JSON values.

The web layer (:mod:`sampler.serve.app`) only parses, checks limits and calls these; a user can
call them from Python. Bad input raises :class:`~sampler.errors.InvalidInputError` with the
same one-line messages as the command line.

Examples
--------
>>> from sampler.sources.synthetic_spec import parse_synthetic
>>> source = parse_synthetic("synthetic:fixed?logits=3,1,0.2")
>>> answer = next_token(source, {"prompt": "A", "settings": {"top_k": 2}})
>>> [round(t["final_p"], 4) for t in answer["top"]]
[0.8808, 0.1192, 0.0]
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

import numpy as np

from sampler.engine.filters.dry import dry_repeats
from sampler.engine.params import SamplingParams
from sampler.engine.sampling import Sampler, distribution
from sampler.engine.state import copy_state
from sampler.engine.trace import trace_chain
from sampler.errors import InvalidInputError
from sampler.json_values import json_safe
from sampler.json_values import to_json as dump_json
from sampler.messages import check_text, shown
from sampler.serve.grammar_mask import grammar_step
from sampler.serve.page import step_view
from sampler.softmax import softmax
from sampler.sources.base import LogitSource, dry_vocabulary, use_chat

__all__ = [
    "LIMITS",
    "RUN_PAGE_STEPS",
    "checked_int",
    "json_safe",
    "next_token",
    "params_from",
    "prompt_ids",
    "prompt_request",
    "request_object",
    "run_listing",
    "run_page_bounds",
    "run_view",
    "shown_value",
    "to_json",
]

# Bounds on one request, so that no request can hold the server for long or grow its memory.
# A run is read 12,800 steps a page by default (50 completions of 256 steps, what the page
# shows at most), at most 20,000: ~310 bytes of JSON a step (issue 18's 256,000-step run was
# 79 MB), up to ~500 with every stage's telemetry, so a page is 4 to 10 MB at most.
LIMITS = {
    "prompt_chars": 20_000,
    "forced_tokens": 2_048,
    "top": 200,
    "runs": 200,
    "run_steps": 20_000,
}
RUN_PAGE_STEPS = 12_800
_REQUEST_KEYS = ("prompt", "chat", "forced", "settings", "seed", "top")
_PARAM_FIELDS = tuple(f.name for f in fields(SamplingParams))


def params_from(settings: Any) -> SamplingParams:
    """``SamplingParams`` from a JSON object, its keys and values checked by the engine."""
    if settings is None:
        return SamplingParams()
    if not isinstance(settings, dict):
        raise InvalidInputError(
            f"settings must be an object of SamplingParams fields, got {settings!r}"
        )
    unknown = [key for key in settings if key not in _PARAM_FIELDS]
    if unknown:
        raise InvalidInputError(
            f"settings key {unknown[0]!r} is unknown: use SamplingParams fields "
            f"({', '.join(_PARAM_FIELDS)})"
        )
    values = dict(settings)
    if "logit_bias" in values and isinstance(values["logit_bias"], dict):
        try:  # JSON object keys are strings
            values["logit_bias"] = {int(k): v for k, v in values["logit_bias"].items()}
        except ValueError:
            raise InvalidInputError("settings.logit_bias keys must be token ids") from None
    return SamplingParams(**values)


def request_object(body: Any, keys: tuple[str, ...]) -> dict[str, Any]:
    """``body`` if it is a JSON object whose keys are all among ``keys``, else a 400 message."""
    if not isinstance(body, dict):
        raise InvalidInputError("the request body must be a JSON object")
    unknown = [key for key in body if key not in keys]
    if unknown:
        raise InvalidInputError(f"request key {unknown[0]!r} is unknown: use {', '.join(keys)}")
    return body


def prompt_request(body: Any, keys: tuple[str, ...]) -> dict[str, Any]:
    """A request object (:func:`request_object`) with a ``prompt`` string within the limit."""
    body = request_object(body, keys)
    prompt = body.get("prompt")
    if not isinstance(prompt, str):
        raise InvalidInputError(f"prompt must be a string, got {shown_value(prompt)}")
    if len(prompt) > LIMITS["prompt_chars"]:
        raise InvalidInputError(
            f"prompt has {len(prompt)} characters: at most {LIMITS['prompt_chars']}"
        )
    check_text("prompt", prompt)  # JSON's "\ud800" is no text a tokenizer or database takes
    return body


shown_value = shown  # a value as an error message shows it (repr cut at 60 characters)


def checked_int(name: str, value: Any, low: int, high: int) -> int:
    """``value`` if it is an integer in ``low..high`` (not a bool), else a one-line error."""
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidInputError(f"{name} must be an integer in {low}..{high}, got {shown(value)}")
    return value


def prompt_ids(source: LogitSource, body: dict[str, Any]) -> list[int]:
    """The token ids of a request's prompt (chat template or not) and forced tokens, checked."""
    chat = body.get("chat")
    if chat is not None and not isinstance(chat, bool):
        raise InvalidInputError(f"chat must be true or false, got {chat!r}")
    ids = source.encode(body["prompt"], use_chat(source, raw=chat is False))
    forced = body.get("forced", [])
    if not isinstance(forced, list) or len(forced) > LIMITS["forced_tokens"]:
        raise InvalidInputError(
            f"forced must be a list of at most {LIMITS['forced_tokens']} token ids"
        )
    for token in forced:
        if isinstance(token, bool) or not isinstance(token, int):
            raise InvalidInputError(f"forced token {token!r} is not a token id")
        if not 0 <= token < source.vocab_size:
            raise InvalidInputError(
                f"forced token {token} is outside the vocabulary 0..{source.vocab_size - 1}"
            )
    ids = ids + forced
    limit = source.context_limit
    if not ids:
        raise InvalidInputError("the prompt is empty: give at least one token of text")
    if limit is not None and len(ids) >= limit:
        raise InvalidInputError(
            f"prompt and forced tokens are {len(ids)} tokens: the model's context is {limit}"
        )
    return ids


def next_token(source: LogitSource, body: Any) -> dict[str, Any]:
    """The next-token law after a prompt (and forced tokens) under the given settings.

    Returns the full float32 logits row (base64, little-endian) from which the page recomputes
    any setting exactly, with the history the penalties see, labels of the tokens the page may
    show and, when DRY is on, its repeats (:func:`sampler.serve.page.step_view`); the top
    tokens with their base and final probabilities; one draw with the request's seed and its
    :class:`~sampler.engine.stats.StepStats`; and the stage-by-stage trace (kept tokens,
    entropy, kept mass per stage). With a grammar in the settings, all of it is constrained:
    its matcher has taken the forced tokens (the text written after the prompt), and
    ``grammar`` is the step's mask (:mod:`sampler.serve.grammar_mask`) for the page's twin.
    """
    body = prompt_request(body, _REQUEST_KEYS)
    params = params_from(body.get("settings"))
    seed = body.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise InvalidInputError(f"seed must be an integer >= 0, got {seed!r}")
    top = checked_int("top", body.get("top", 20), 1, LIMITS["top"])
    ids = prompt_ids(source, body)
    # a grammar's matcher after the forced tokens (written under it): a 400 before the model
    state, mask = grammar_step(source, params, body.get("forced", []))
    logits, _ = source.start([ids])
    row = np.asarray(logits[0], dtype=np.float32)
    vocabulary = dry_vocabulary(source, [params])
    final = distribution(row, params, history=[ids], vocabulary=vocabulary, state=state).astype(
        np.float64
    )
    base = softmax(row.astype(np.float64))
    order = np.argsort(-final, kind="stable")[:top]
    seeded = SamplingParams(**{**{f: getattr(params, f) for f in _PARAM_FIELDS}, "seed": seed})
    trace = trace_chain(row, params, ids, vocabulary, state=state)
    # the draw advances its matcher: the sampler gets a copy
    drawer = Sampler(
        [seeded], vocabulary=vocabulary, state=None if state is None else copy_state(state)
    )
    tokens, stats = drawer.step(row[None, :], history=[ids])
    return {
        "model": source.name,
        "prompt_tokens": len(ids),
        "vocab_size": int(row.size),
        **step_view(source, row, ids, _repeats(params, ids, vocabulary)),
        "top": [
            {
                "token": int(t),
                "label": source.token_label(int(t)),
                "base_p": float(base[t]),
                "final_p": float(final[t]),
            }
            for t in order
        ],
        "draw": {
            "seed": seed,
            "token": int(tokens[0]),
            "label": source.token_label(int(tokens[0])),
        },
        "stats": stats.row(0) if stats is not None else {},
        "trace": [
            {
                "stage": s.stage,
                "kept_tokens": s.kept_tokens,
                "entropy": s.entropy,
                "kept_mass": s.kept_mass,
            }
            for s in trace
        ],
        "stages": list(params.stages),
        # the tokens the grammar allows at this step (None without one): grammar_mask.py
        "grammar": mask,
    }


def to_json(value: Any) -> str:
    """Compact JSON of ``value`` (:func:`json_safe`): what every answer and event is."""
    return dump_json(value, separators=(",", ":"))


def _repeats(params: SamplingParams, ids: list[int], vocabulary: Any) -> Any:
    """DRY's repeats of this history under the request's breakers and window, when DRY is on
    (the page computes the penalties from them for any multiplier, base and allowed length)."""
    if vocabulary is None or "dry" not in params.active_stages:
        return None
    breakers = params.dry_sequence_breakers
    restarts = vocabulary.restart_sequences(breakers) if breakers else {}
    return dry_repeats(ids, restarts, params.dry_penalty_last_n)


def run_listing(store: Any, limit: int = 50) -> list[dict[str, Any]]:
    """The newest runs of the run log, newest first."""
    return store.list_runs(checked_int("limit", limit, 1, LIMITS["runs"]))


def run_view(
    store: Any, run_id: str, offset: int = 0, limit: int = RUN_PAGE_STEPS
) -> dict[str, Any]:
    """One run: its record and a page of its steps (``limit`` from ``offset``, in row and step
    order) with the completions they belong to (:func:`sampler.runlog.pages.run_page`)."""
    from sampler.runlog.pages import run_page

    return run_page(store, run_id, *run_page_bounds(offset, limit))


def run_page_bounds(offset: Any, limit: Any) -> tuple[int, int]:
    """``(offset, limit)`` of a page of a run's steps, checked."""
    return checked_int("offset", offset, 0, 2**63 - 1), checked_int(
        "limit", limit, 1, LIMITS["run_steps"]
    )
