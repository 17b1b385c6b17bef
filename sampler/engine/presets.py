"""The chain orders of the peers, as data: each preset is a tuple of stage names.

Each comment names the peer's source; ``sampler chain --order all`` shows them side by side.
"""

from __future__ import annotations

from sampler.errors import InvalidInputError

__all__ = [
    "GRAMMAR_MODES",
    "PRESETS",
    "RANKED_TIES",
    "RESAMPLING",
    "check_mode_has_grammar",
    "ranks_ties",
    "resamples_by_default",
]

PRESETS: dict[str, tuple[str, ...]] = {
    # transformers' generate(): processors (bias, repetition penalty), then the warpers in the
    # order _get_logits_processor appends them (top-H right after temperature, 5.x). A grammar
    # is a logits_processor the user passes (transformers has none of its own; outlines,
    # transformers-cfg and llguidance.hf supply one): _get_logits_processor merges those after
    # its own processors and before the warpers.
    "hf": (
        "logit_bias",
        "penalties",
        "grammar",
        "temperature",
        "top_h",
        "top_k",
        "top_p",
        "min_p",
        "typical_p",
        "epsilon",
        "eta",
    ),
    # llama.cpp common_params_sampling.samplers (common/common.h, 001d906a): penalties, DRY,
    # top-n-sigma, top-k, typical, top-p, min-p, XTC, temperature; logit bias is put in front
    # by common_sampler_init (common/sampling.cpp), and adaptive-p, wherever it is listed, at
    # the very end in place of the final draw (common/sampling.cpp, use_adaptive_p, 00efb3e1).
    # The grammar is not in llama.cpp's chain: common_sampler_sample (common/sampling.cpp)
    # runs the chain without it and draws; only when that token breaks the grammar does it
    # reset the logits, apply the grammar, run the whole chain again and draw again
    # (grammar_first=false, what llama-cli and llama-server pass). The grammar stage stands
    # first here: the law of that second pass, and of grammar_first=true. Under this preset
    # grammar_mode "auto" is "resample" (:data:`RESAMPLING`), which draws as llama.cpp does;
    # docs/constraints.md gives the law.
    "llama.cpp": (
        "grammar",
        "logit_bias",
        "penalties",
        "dry",
        "top_n_sigma",
        "top_k",
        "typical_p",
        "top_p",
        "min_p",
        "xtc",
        "temperature",
        "adaptive_p",
    ),
    # vLLM v1 Sampler: logits processors (bias), penalties, temperature, min-p, top-k/top-p.
    # (Neither top-H nor adaptive-p is a vLLM sampling parameter.) The structured-output
    # bitmask (xgrammar, llguidance) is applied to the logits before the Sampler runs
    # (gpu_model_runner: apply_grammar_bitmask, then self.sampler).
    "vllm": ("grammar", "logit_bias", "penalties", "temperature", "min_p", "top_k", "top_p"),
    # text-generation-webui's default sampler_priority (modules/presets.py, default_preset(),
    # the version with the portable mode; the source index gives no commit for it): the
    # repetition/presence/frequency penalties, DRY, top-n-σ, temperature, (dynamic
    # temperature), quadratic smoothing, top-k, top-p, typical, epsilon, eta, tail-free, top-a,
    # min-p, (mirostat, XTC); the logit bias comes first, as a processor. Earlier versions (PR
    # #6796, 2025-03-14) had top-n-σ after smoothing; the first ones sorted only the warpers.
    # Neither top-H nor adaptive-p is in that sampler_priority.
    "webui": (
        "logit_bias",
        "penalties",
        "dry",
        "top_n_sigma",
        "temperature",
        "smoothing",
        "top_k",
        "top_p",
        "typical_p",
        "epsilon",
        "eta",
        "tfs",
        "top_a",
        "min_p",
        "xtc",
    ),
}


# The presets whose peer keeps an exact COUNT of tokens at a cut, choosing among tokens tied at
# it by its (unstable) sort order: llama.cpp's top-k, top-p, min-p's min_keep, XTC and mirostat
# keep ``k`` entries of a sorted candidate array. There every such cut ranks the candidates by
# logit, ties by the lowest token id (a stable stand-in for the sort's unspecified order), and
# keeps exactly the count llama.cpp keeps; thresholds are compared in float32, as llama.cpp
# does. Every other preset keeps tokens tied at a cut together (a filter never tells apart
# equal logits), as transformers' and vLLM's masks do.
RANKED_TIES = frozenset({"llama.cpp"})


def ranks_ties(order: tuple[str, ...]) -> bool:
    """Whether a chain ``order`` takes the ranked tie rule: it is a preset of :data:`RANKED_TIES`
    (an explicit list of stages equal to that preset's counts as the preset)."""
    return any(order == PRESETS[name] for name in RANKED_TIES)


# The presets whose peer draws a constrained token by llama.cpp's common sampler: the chain
# without the grammar first, and only when its token is illegal, the chain after the grammar
# (common/sampling.cpp, common_sampler_sample with grammar_first=false). A row's
# ``grammar_mode="auto"`` resamples there and masks first everywhere else (transformers'
# logits processors and vLLM's bitmask mask before the warpers: sampler.engine.resample).
RESAMPLING = frozenset({"llama.cpp"})
# A row's grammar_mode: "mask" (the mask where the order puts it), "resample" (llama.cpp's
# draw) or "auto" (resample under a preset of RESAMPLING, mask elsewhere).
GRAMMAR_MODES = ("auto", "mask", "resample")


def resamples_by_default(order: tuple[str, ...]) -> bool:
    """Whether a chain ``order`` resamples under ``grammar_mode="auto"``: it is a preset of
    :data:`RESAMPLING` (an explicit list of stages equal to that preset's counts as it)."""
    return any(order == PRESETS[name] for name in RESAMPLING)


def check_mode_has_grammar(grammar: str, grammar_mode: str) -> None:
    """Refuse a ``grammar_mode`` chosen (not ``"auto"``) for a row without a grammar, where it
    would silently do nothing: what the command line and a run's config check (the library
    lets it be, as it lets ``grammar_syntax`` be)."""
    if grammar_mode != "auto" and not grammar:
        raise InvalidInputError(
            f"grammar_mode={grammar_mode!r} (--grammar-mode) needs a grammar: give --grammar, "
            "--json-schema or --regex (grammar = ... in a config), or leave it out"
        )
