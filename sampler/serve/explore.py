"""``sampler explore``: the page as one self-contained offline file, for sharing.

A text is generated from a prompt (greedy unless told otherwise); every step's logits row is
embedded with its history, token labels, DRY's repeats (the text's breakers and window) and
mirostat's μ, so the page recomputes any setting at any step with no server: the file makes
no network request at all (its Content-Security-Policy has ``connect-src 'none'``). A text
written under a grammar (``--grammar``) embeds each step's mask too (at most 8 kB a step,
:mod:`sampler.serve.grammar_mask`), so its bars show what the grammar forbade; the page keeps
that grammar read-only (another one would need the model).

Examples
--------
>>> from sampler.sources.synthetic_spec import parse_synthetic
>>> source = parse_synthetic("synthetic:markov?vocab=40&seed=2")
>>> html = explore_page(source, "kalo", steps=2)
>>> "connect-src 'none'" in html and html.count('"logits_float32_b64"') == 2
True
"""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np

from sampler.engine.filters.dry import dry_repeats
from sampler.engine.params import SamplingParams
from sampler.errors import InvalidInputError
from sampler.generation.generation_row import Completion, GenerationRow
from sampler.generation.loop import batch_steps
from sampler.serve.grammar_mask import mask_json
from sampler.serve.page import page_html, step_view
from sampler.serve.token_labels import shown_label
from sampler.sources.base import LogitSource, token_texts, use_chat

__all__ = ["MAX_STEPS", "explore_page"]

# Each step embeds a float32 row (262 kB of base64 at V = 49,152): 256 steps make ~67 MB.
MAX_STEPS = 256


def _restarts(source: LogitSource, breakers: tuple[str, ...]) -> dict | None:
    """DRY's restart sequences for ``breakers``, or None if the source has no token texts."""
    if not breakers:
        return {}
    with contextlib.suppress(Exception):  # a source without texts: DRY is off in the file
        return token_texts(source).restart_sequences(breakers)
    return None


def explore_page(
    source: LogitSource,
    prompt: str,
    steps: int = 16,
    params: SamplingParams | None = None,
    raw: bool = False,
) -> str:
    """The offline page for ``prompt`` and the next ``steps`` tokens drawn under ``params``
    (default greedy, seed 0)."""
    if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= MAX_STEPS:
        raise InvalidInputError(f"steps={steps!r} is out of range: allowed 1..{MAX_STEPS}")
    params = params or SamplingParams(temperature=0.0, seed=0)
    ids = source.encode(prompt, use_chat(source, raw=raw))
    if not ids:
        raise InvalidInputError("the prompt is empty: give at least one token of text")
    completion = Completion(GenerationRow(prompt, params, 0), list(ids))
    pending = [""]  # the text the step's token added (a step may add none: a split character)
    # DRY's repeats under the text's own breakers and window (the defaults when DRY is off)
    restarts = _restarts(source, params.dry_sequence_breakers)
    embedded: list[dict[str, Any]] = []

    def added(_row: int, text: str) -> None:
        pending[0] += text

    for step in batch_steps(source, [completion], steps, on_text=added):
        history = completion.prompt_ids + completion.token_ids[: step.step]
        repeats = (
            None if restarts is None else dry_repeats(history, restarts, params.dry_penalty_last_n)
        )
        token = int(step.tokens[0])
        mu = step.state.get("mirostat_mu")
        total, weight = step.state.get("adaptive_p_sum"), step.state.get("adaptive_p_weight")
        average = None if total is None or weight is None else total[0] / weight[0]
        matchers = step.state.get("grammar_matcher")  # the grammar before this step's draw
        mask = None if matchers is None else mask_json(matchers[0].allowed())
        embedded.append(
            {
                "view": {**step_view(source, step.logits[0], history, repeats), "grammar": mask},
                # mirostat's μ and adaptive-p's average before this step, which the text was
                # drawn with
                "mirostat_mu": _number_or_none(mu),
                "adaptive_average": _number_or_none(average),
                "token": token,
                "label": shown_label(source, token),
                "text": pending[0],
            }
        )
        pending[0] = ""
    settings = {k: v for k, v in completion.to_dict()["params"].items() if k != "seed"}
    html, _ = page_html(
        {
            "mode": "offline",
            "model": source.name,
            "prompt": prompt,
            "steps": embedded,
            "settings": settings,
        }
    )
    return html


def _number_or_none(value: Any) -> float | None:
    """A row's state value as JSON has it: ``None`` where the stage is off (NaN) or absent."""
    if value is None:
        return None
    number = float(np.asarray(value).reshape(-1)[0])
    return number if np.isfinite(number) else None
