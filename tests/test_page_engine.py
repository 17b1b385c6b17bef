"""The page's engine (sampler/serve/static/view.js, stages_later.js, stages.js, engine.js) in
Chromium against the library.

The oracle is :func:`sampler.distribution` and the ``StepStats`` of a :class:`Sampler` step,
both Python; the page must agree within :data:`TOLERANCE` on every probability of the
vocabulary, over a grid of settings covering every stage and preset, on a synthetic row (ties,
masked tokens) and on SmolLM2's real row at V = 49,152 (``tests/test_page_twins.py`` runs every
row of the stage table the same way). Also: the cheat sheet's numbers against
:func:`sampler.cheatsheet.cheat_sheet`, and the recompute time at V = 49,152 (reported; the
16 ms figure is docs/page.md's, measured by scripts, never asserted here).
"""

from __future__ import annotations

import base64

import numpy as np
import pytest

from sampler.cheatsheet import cheat_sheet
from sampler.engine.filters.dry import dry_repeats
from sampler.engine.filters.grammar import GRAMMAR_NOTES
from sampler.engine.params import SamplingParams
from sampler.engine.sampling import Sampler, distribution
from sampler.serve.page import ENGINE_SCRIPTS, _source, engine_config, step_view

# Why 1e-6: both sides keep the weights and the final probabilities as float32 and sum in
# float64, in different orders and with different exp() implementations, so a probability
# (at most 1) differs by a few float32 roundings, each at most 2**-24 ≈ 6e-8 of it; 1e-6 is
# eight float32 steps at 1, above that, and far below a token kept on one side and cut on the
# other (which the exact comparison of kept_tokens catches however small its probability).
TOLERANCE = 1e-6

CASES = [
    {},
    {"temperature": 0.7},
    {"temperature": 0},
    {"mode": "hardmax"},
    {"temperature": 1e-3},
    {"temperature": 5.0},
    {"top_k": 1},
    {"top_k": 40, "temperature": 0.8},
    {"top_p": 0.9},
    {"top_p": 0.5, "temperature": 1.3},
    {"top_p": 0.95, "min_tokens_to_keep": 5},
    {"top_p": 0.5, "min_tokens_to_keep": 1000},
    {"min_p": 0.05},
    {"min_p": 0.2, "temperature": 1.5, "min_tokens_to_keep": 3},
    {"typical_p": 0.9},
    {"typical_p": 0.5, "temperature": 0.8},
    {"epsilon": 3e-4},
    {"eta": 1e-3},
    {"eta": 0.02, "min_tokens_to_keep": 3},
    {"repetition_penalty": 1.3},
    {"frequency_penalty": 0.5, "presence_penalty": 0.3, "penalty_last_n": 5},
    {"repetition_penalty": 0.8, "temperature": 0.6, "top_k": 20},
    {"order": "llama.cpp", "top_n_sigma": 1.0, "temperature": 0.8},
    {"order": "llama.cpp", "top_k": 40, "top_p": 0.9, "min_p": 0.05, "temperature": 0.8},
    {"order": "llama.cpp", "xtc_probability": 0.5, "xtc_threshold": 0.02},
    {"order": "llama.cpp", "xtc_probability": 1.0, "xtc_threshold": 0.01, "temperature": 0.7},
    {"order": "vllm", "temperature": 0.7, "min_p": 0.1, "top_p": 0.8},
    {"order": "webui", "smoothing_factor": 0.3},
    {"order": "webui", "smoothing_factor": 0.5, "smoothing_curve": 4.0},
    {"order": "webui", "smoothing_factor": 2.0, "smoothing_curve": 9.0, "top_k": 30},
    {"order": "webui", "top_a": 0.2},
    {"order": "webui", "tfs": 0.95},
    {"order": "webui", "tfs": 0.5, "temperature": 0.7},
    {"order": "llama.cpp", "dynatemp_range": 0.5, "temperature": 0.9},
    {"order": "webui", "dynatemp_range": 1.0, "dynatemp_exponent": 2.0},
    {"mirostat": 2, "mirostat_tau": 3.0},
    {"mirostat": 1, "mirostat_tau": 4.0, "temperature": 0.9},
    {"mirostat": 2, "mirostat_tau": 5.0, "repetition_penalty": 1.2},
    {"order": "llama.cpp", "dry_multiplier": 0.8, "dry_allowed_length": 1},
    {"order": "webui", "dry_multiplier": 2.0, "dry_base": 2.5, "repetition_penalty": 1.1},
    {"order": "llama.cpp", "dry_multiplier": 1.5, "dry_allowed_length": 0, "top_k": 10},
    # the llama.cpp preset's exact counts at a tie (the row's four tied maxima, its tie in the
    # head) and its array size: each keeps other tokens than the tie-keeping rule would
    {"order": "llama.cpp", "top_k": 2},
    {"order": "llama.cpp", "top_p": 0.1},
    {"order": "llama.cpp", "min_p": 0.9, "min_tokens_to_keep": 6},
    {"order": "llama.cpp", "top_k": 6, "typical_p": 0.4},
    {"order": "llama.cpp", "xtc_probability": 1.0, "xtc_threshold": 0.04},
    {"order": "llama.cpp", "top_k": 6, "dynatemp_range": 0.5},
    {"order": "llama.cpp", "mirostat": 2, "mirostat_tau": 1.0},
    {"order": "llama.cpp", "mirostat": 1, "mirostat_tau": 2.0},
]
STAT_FIELDS = (
    "entropy_base",
    "entropy_temp",
    "entropy_final",
    "top1_prob",
    "kept_mass",
    "kl_final_base",
)

EVALUATE = """([b64, settings, context]) => {
  const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  const step = SamplerEngine.prepare(new Float32Array(bytes.buffer));
  const out = [];
  for (const one of settings) {
    const result = SamplerEngine.evaluate(step, one, context);
    const raw = new Uint8Array(result.probs.buffer);
    let text = "";
    for (let i = 0; i < raw.length; i += 8192) {
      text += String.fromCharCode.apply(null, raw.subarray(i, i + 8192));
    }
    out.push({ probs: btoa(text), stats: result.stats, notes: result.notes, ms: result.ms });
  }
  return out;
}"""


def open_engine(browser, config):
    """A blank page with the page's engine alone, configured with ``config`` (the table's
    JSON, :func:`sampler.serve.page.engine_config`)."""
    page = browser.new_page()
    page.set_content("<!doctype html><html><body></body></html>")
    page.add_script_tag(content="\n".join(_source(name) for name in ENGINE_SCRIPTS))
    page.evaluate("(config) => SamplerEngine.configure(config)", config)
    return page


@pytest.fixture(scope="module")
def engine_page(browser):
    page = open_engine(browser, engine_config())
    yield page
    page.close()


def in_page(page, row, cases, context):
    """The page's probabilities (float32), statistics and notes of ``row`` under each case."""
    b64 = base64.b64encode(np.asarray(row, "<f4").tobytes()).decode()
    answers = page.evaluate(EVALUATE, [b64, cases, context])
    for answer in answers:
        answer["probs"] = np.frombuffer(base64.b64decode(answer["probs"]), "<f4")
    return answers


def check_against_library(row, history, cases, answers, vocabulary=None, state_of=None):
    """Each answer of the page equals the library's distribution and StepStats; ``state_of``
    gives a case's sampler state (a grammar's matcher), or ``None``."""
    for settings, answer in zip(cases, answers, strict=True):
        params = SamplingParams(**settings)
        state = None if state_of is None else state_of(settings)
        expected = distribution(
            row, params, history=[history], vocabulary=vocabulary, state=state
        )
        difference = np.abs(answer["probs"].astype(np.float64) - expected).max()
        assert difference <= TOLERANCE, (settings, difference)
        if "xtc_probability" in settings:
            continue  # a Sampler step draws XTC's coin; the page's statistics hold it back
        seeded = SamplingParams(**settings, seed=0)
        sampler = Sampler([seeded], vocabulary=vocabulary, state=state)
        _, stats = sampler.step(row[None], history=[history])
        python = stats.row(0)
        for name in STAT_FIELDS:
            tolerance = TOLERANCE * max(1.0, abs(python[name]))
            assert abs(answer["stats"][name] - python[name]) <= tolerance, (settings, name)
        assert answer["stats"]["kept_tokens"] == python["kept_tokens"], settings
        assert answer["stats"]["base_argmax"] == python["base_argmax"], settings
        for name in (
            "temperature_chosen", "mirostat_mu", "dry_match", "dry_penalty", *GRAMMAR_NOTES
        ):
            if name in python:
                assert answer["notes"][name] == pytest.approx(python[name], rel=TOLERANCE), name


def _synthetic_row() -> tuple[np.ndarray, list[int]]:
    rng = np.random.default_rng(7)
    row = rng.normal(0.0, 2.5, 3000).astype(np.float32)
    row[[10, 11, 12]] = row.max()  # tied maxima
    row[[20, 21]] = np.sort(row)[-5]  # a tie inside the head
    row[[30, 31]] = -np.inf  # masked tokens
    top = [int(t) for t in np.argsort(-row, kind="stable")[:6]]
    history = [top[3], top[4], top[5], top[0], top[3], top[4], top[5], top[1], top[3], top[4]]
    return row, history


def test_page_engine_matches_the_library_on_a_synthetic_row(engine_page):
    row, history = _synthetic_row()
    repeats = dry_repeats(history, {}, -1)  # no breakers: DRY needs no vocabulary
    context = {"history": history, "dry": step_view(Labels(), row, history, repeats)["dry"]}
    cases = [{**c, "dry_sequence_breakers": []} if "dry_multiplier" in c else c for c in CASES]
    check_against_library(row, history, cases, in_page(engine_page, row, cases, context))


def test_page_engine_matches_the_library_on_smollm2(engine_page, gguf):
    from sampler.serve import api

    body = {
        "prompt": "The cat sat on the mat. The cat sat on the",
        "chat": False,
        "settings": {"order": "llama.cpp", "dry_multiplier": 0.8},
    }
    answer = api.next_token(gguf, body)
    row = np.frombuffer(base64.b64decode(answer["logits_float32_b64"]), "<f4")
    assert row.size == 49152
    history = answer["history"]
    context = {"history": history, "dry": answer["dry"]}
    assert answer["dry"]["longest"], "the repeated sentence gives DRY something to penalise"
    assert [s["stage"] for s in answer["trace"]] == ["input", "dry", "temperature", "final"]
    from sampler.sources.base import token_texts

    answers = in_page(engine_page, row, CASES, context)
    check_against_library(row, history, CASES, answers, vocabulary=token_texts(gguf))
    times = sorted(a["ms"] for a in answers)
    print(
        f"\npage engine at V = 49,152: median {times[len(times) // 2]:.2f} ms, "
        f"max {times[-1]:.2f} ms over {len(times)} settings"
    )


@pytest.mark.parametrize("logits", [[3.0, 1.0, 0.2], [1.0, 1.0, -2.0], [0.5, -1e3, 2.0, 2.0]])
@pytest.mark.parametrize("tau", [0.0, 0.1, 0.5, 1.0, 2.0, 10.0])
def test_cheat_sheet_in_the_page_matches_python(engine_page, logits, tau):
    python = cheat_sheet(logits, temperatures=[tau])["rows"][0]
    page = engine_page.evaluate("([l, t]) => SamplerEngine.cheatSheet(l, t)", [logits, tau])
    assert page["probs"] == pytest.approx(python["probs"], abs=1e-12)
    assert page["entropy_nats"] == pytest.approx(python["entropy_nats"], abs=1e-12)


class Labels:
    """A source that labels token ids by number (step_view only needs ``token_label``)."""

    def token_label(self, token: int) -> str:
        return str(token)
