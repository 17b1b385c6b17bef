"""The page of ``sampler serve`` and ``sampler explore``: one HTML document, built here.

The page's sources live in ``sampler/serve/static/`` (the engine transcription, the page's
script, its styles, the HTML frame) and are put together into one document: scripts and styles
inline, each allowed by its SHA-256 in a strict Content-Security-Policy (no ``unsafe-inline``,
no other origin). Every list the page has of stages and settings (their names and kinds, the
presets' orders, the sliders with bounds, defaults, scale and help, "off" values, what greys
out) is generated from :mod:`sampler.engine.stages` and embedded as JSON data at assembly; the
engine's stage functions are paired with the table's rows by name, and
``tests/test_page_twins.py`` checks every row's twin against the library. ``sampler explore``
embeds the logits rows too.

Examples
--------
>>> html, csp = page_html({"mode": "server", "model": "synthetic"})
>>> html.startswith("<!doctype html>") and "script-src 'sha256-" in csp
True
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import re
from functools import cache
from importlib import resources
from typing import Any

import numpy as np

from sampler.cheatsheet import CHEAT_SHEET_LOGITS, CHEAT_SHEET_TEMPERATURES
from sampler.engine.constraints import SYNTAXES
from sampler.engine.params import DEFAULT_ORDER, MIROSTAT_CHAIN, MODES, PRESETS, SamplingParams
from sampler.engine.presets import GRAMMAR_MODES, RANKED_TIES, RESAMPLING
from sampler.engine.settings import Setting, Slider, StageSpec, between
from sampler.engine.stages import STAGES, table_json
from sampler.errors import InvalidInputError
from sampler.serve.token_labels import shown_label
from sampler.sources.base import use_chat

__all__ = [
    "FIRST_PROMPT",
    "MIN_TOKENS_TO_KEEP",
    "engine_config",
    "page_html",
    "server_view",
    "step_view",
]

# Labels sent with a step: the most likely raw tokens (the bar chart's candidates under most
# settings) and every history token (penalties can lift any of them into view).
LABELLED_TOP = 200
_DATA_ID = "sampler-data"
# The one setting of the page's that belongs to the row, not to a stage: SamplingParams checks
# it itself (tests/test_page_engine.py compares this rule with its refusals).
MIN_TOKENS_TO_KEEP = Setting(
    "min_tokens_to_keep",
    int,
    1,
    "an integer >= 1",
    "Every truncating stage keeps at least this many tokens.",
    between(1, math.inf, high_open=True),
    example=3,
    slider=Slider(1, 20, 1),
    title="Minimum tokens kept",
    group="advanced",
)
# The row's choice beside the stage settings, in words for the page and in its group.
MODE_WORDS = {
    "name": "mode",
    "title": "Mode",
    "group": "temperature",
    "help": "sample: draw the token at random from the final distribution; greedy: take the "
    "likeliest (lowest id on ties); hardmax: draw among the tied likeliest (τ → 0).",
}
# The string settings whose values are a closed list, as the page's choice offers them (the
# library's own list), and those values in words (tests/test_page_grammar.py: each is allowed).
CHOICES = {"grammar_syntax": SYNTAXES, "grammar_mode": GRAMMAR_MODES}
CHOICE_WORDS = {
    "gbnf": "GBNF",
    "lark": "Lark",
    "regex": "regular expression",
    "json_schema": "JSON schema",
    "auto": "as the order's peer",
    "mask": "mask first",
    "resample": "draw, then redraw if illegal",
}
# The server page's first prompt: SmolLM2-135M-Instruct's next token after it (chat template,
# τ = 1) is spread but sensible: entropy 3.02 nats (4.36 bits), "There" 0.21, "One" 0.17,
# "The" 0.14, "Once" 0.10, "I" 0.07, "A" 0.05; so top-p, min-p or a lower τ visibly changes
# which of these is kept (pagesettings-docs.md has the measurement).
FIRST_PROMPT = "Tell me a story about a cat."
# One script, in this order: the engine (its view of a chain state, the stages, the chain),
# then the page (page.js's helpers are used by the rest).
ENGINE_SCRIPTS = ("view.js", "ranked.js", "stages_later.js", "stages.js", "engine.js")
_SCRIPTS = (
    *ENGINE_SCRIPTS,
    "page.js",
    "settings.js",
    "grammar.js",
    "cheatsheet.js",
    "tokens.js",
    "bars.js",
    "requests.js",
    "fragment.js",
    "steps.js",
    "generate.js",
    "tabs.js",
)

# The page's styles, in this order: the page, then the settings panel's and the cheat sheet's.
_STYLES = ("page.css", "settings.css")


def engine_config() -> dict[str, Any]:
    """What the page reads of the library: the stage table (:func:`table_json`: stages,
    settings, sliders), the row's own ``min_tokens_to_keep``, the presets, the presets whose
    cuts rank ties (``presets.RANKED_TIES``: exact counts, float32 thresholds), those whose
    grammar resamples by default (``presets.RESAMPLING``), the modes, and per preset the
    settings the library refuses there (greyed out in the page); the values of the string
    settings that are a closed list (the grammar's syntax), with their words."""
    return {
        **table_json(),
        "row_settings": [MIN_TOKENS_TO_KEEP.as_json(stage=None)],
        "presets": {name: list(order) for name, order in PRESETS.items()},
        "default_order": DEFAULT_ORDER,
        "ranked_ties": sorted(RANKED_TIES),
        "resampling": sorted(RESAMPLING),
        "mirostat_chain": list(MIROSTAT_CHAIN),
        "modes": list(MODES),
        "mode_words": MODE_WORDS,
        "unusable": _unusable(),
        "choices": {name: list(values) for name, values in CHOICES.items()},
        "choice_words": CHOICE_WORDS,
    }


@cache
def server_view(
    source: Any, prompt: str = FIRST_PROMPT, temperature: float | None = None
) -> dict[str, Any]:
    """The data of ``sampler serve``'s page: the model, the first view's prompt and its chat
    template (on when the model has one, as every command's default), and the sliders' first
    settings: ``temperature``, by default the library's own (:class:`SamplingParams`)."""
    return {
        "mode": "server",
        "model": source.name,
        "prompt": prompt,
        "chat": use_chat(source, raw=False),
        "settings": {
            "temperature": SamplingParams().temperature if temperature is None else temperature
        },
    }


@cache
def _unusable() -> dict[str, dict[str, list[str]]]:
    """Per preset, the settings :class:`SamplingParams` refuses there, ``alone`` and beside
    ``mirostat``: each probed at its example (a setting that only modifies its stage, with the
    stage's switches on too), so what the page greys out is what the library would refuse."""
    probes = {s.name: _probe(spec, s) for spec in STAGES for s in spec.settings}
    return {
        preset: {
            beside: [
                name
                for name, probe in probes.items()
                if not _accepted({**extra, **probe, "order": preset})
            ]
            for beside, extra in (("alone", {}), ("mirostat", {"mirostat": 1}))
        }
        for preset in PRESETS
    }


def _probe(spec: StageSpec, setting: Setting) -> dict[str, Any]:
    """``setting`` at its example; one that only modifies its stage (DRY's base), with the
    settings that switch the stage on at theirs."""
    if setting.activates:
        return {setting.name: setting.example}
    switches = {s.name: s.example for s in spec.settings if s.activates}
    return {**switches, setting.name: setting.example}


def _accepted(values: dict[str, Any]) -> bool:
    try:
        SamplingParams(**values)
    except InvalidInputError:
        return False
    return True


def step_view(
    source: Any, row: np.ndarray, history: list[int], repeats: Any = None
) -> dict[str, Any]:
    """One step as the page recomputes it: the float32 logits row (base64, little-endian),
    the history the penalties see, labels of the tokens it may show, DRY's repeats."""
    row = np.asarray(row, dtype=np.float32)
    top = min(LABELLED_TOP, row.size)
    candidates = np.argpartition(-row, top - 1)[:top] if top < row.size else np.arange(row.size)
    shown = sorted(set(candidates.tolist()) | set(history))
    return {
        "logits_float32_b64": base64.b64encode(row.astype("<f4").tobytes()).decode("ascii"),
        "history": [int(t) for t in history],
        "labels": {str(t): shown_label(source, int(t)) for t in shown},
        "dry": None
        if repeats is None
        else {
            "window": repeats.window,
            "limit": repeats.limit,
            "longest": {str(t): n for t, n in repeats.longest.items()},
            "exempt": sorted(repeats.exempt),
        },
    }


@cache
def _source(name: str) -> str:
    return resources.files("sampler.serve").joinpath("static", name).read_text(encoding="utf-8")


def _digest(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


def _data_block(data: dict[str, Any]) -> str:
    # No "<", ">" or "&" in the block, whatever a token's text holds: "</script" would end it
    # early and "<!--<script" would make the HTML parser swallow the page's own script.
    text = (
        json.dumps(data, separators=(",", ":"))
        .replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026")
    )
    return f'<script type="application/json" id="{_DATA_ID}">{text}</script>'


def _sheet() -> dict[str, list[float]]:
    """The cheat sheet's first logits and the temperatures its picture draws (as ``sampler
    softmax --plot``)."""
    return {"logits": list(CHEAT_SHEET_LOGITS), "temperatures": list(CHEAT_SHEET_TEMPERATURES)}


def page_html(data: dict[str, Any]) -> tuple[str, str]:
    """The page with ``data`` embedded (``mode`` "server" or "offline", the model, and for
    offline, the steps), and the Content-Security-Policy that lets exactly its code run."""
    script = "\n".join(_source(name) for name in _SCRIPTS)
    style = "\n".join(_source(name) for name in _STYLES)
    connect = "'self'" if data.get("mode") == "server" else "'none'"
    csp = (
        f"default-src 'none'; script-src {_digest(script)}; style-src {_digest(style)}; "
        f"img-src data:; connect-src {connect}; base-uri 'none'; form-action 'none'"
    )
    # an offline file carries its own policy (frame-ancestors works only as a header)
    meta = (
        ""
        if data.get("mode") == "server"
        else (f'<meta http-equiv="Content-Security-Policy" content="{csp}">')
    )
    parts = {
        "<!--csp-->": meta,
        "<!--data-->": _data_block({**data, "engine": engine_config(), "cheat_sheet": _sheet()}),
        "/*style*/": style,
        "/*script*/": script,
    }
    # one pass over the frame: nothing inserted (a token's text in the data) is read again
    body = re.sub(
        "|".join(re.escape(m) for m in parts), lambda m: parts[m.group()], _source("page.html")
    )
    return body, csp + ("; frame-ancestors 'none'" if data.get("mode") == "server" else "")
