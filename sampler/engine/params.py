"""`SamplingParams`: one row's validated, frozen decoding settings, built from the stage table.

Names follow vLLM's ``SamplingParams``; neutral values (``top_k=0``, ``top_p=1``, ``min_p=0``,
...) switch a stage off entirely. The stage settings are the fields of the stage table
(:mod:`sampler.engine.stages`), so a new stage's settings become fields here by themselves;
``mode``, ``seed``, ``order`` and ``min_tokens_to_keep`` belong to the row, not to a stage.
Type checkers and IDEs read the fields from ``params.pyi``, written from the same table by
``scripts/write_stubs.py`` (``tests/test_stubs.py`` fails when it is stale).
The chain ``order`` is a preset name or an explicit list of stage names:

========== ==================================================================================
preset     order
========== ==================================================================================
hf         logit_bias, penalties, grammar, temperature, top_h, top_k, top_p, min_p,
           typical_p, epsilon, eta
llama.cpp  grammar, logit_bias, penalties, dry, top_n_sigma, top_k, typical_p, top_p, min_p,
           xtc, temperature, adaptive_p
vllm       grammar, logit_bias, penalties, temperature, min_p, top_k, top_p
========== ==================================================================================

Adaptive-p always runs last, wherever an order lists it (as llama.cpp's common sampling adds
it after every other sampler: it draws the token).

Examples
--------
>>> params = SamplingParams(temperature=0.7, top_p=0.9, order="llama.cpp")
>>> params.stages[-3:]
('xtc', 'temperature', 'adaptive_p')
>>> params.active_stages
('temperature', 'top_p')
>>> SamplingParams(top_p=1.5)
Traceback (most recent call last):
...
sampler.errors.InvalidInputError: top_p=1.5 is out of range: allowed 0 < top_p <= 1 (1 = off)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import field, make_dataclass
from typing import Any, Literal

from sampler.engine.presets import PRESETS, resamples_by_default
from sampler.engine.stages import SETTINGS, STAGE_NAMES, STAGES
from sampler.errors import InvalidInputError
from sampler.messages import shown

__all__ = [
    "DEFAULT_ORDER",
    "MIROSTAT_CHAIN",
    "MODES",
    "PRESETS",
    "SamplingParams",
    "setting_fields",
]

# transformers is the peer most users already know, and its order (temperature first) is the one
# whose parity the test suite checks against the transformers warpers themselves.
DEFAULT_ORDER = "hf"
MODES = ("sample", "greedy", "hardmax")
# With mirostat on, the chain is these stages (those the order has) and then mirostat: as in
# llama.cpp's common sampling, mirostat replaces every truncation stage. llama.cpp (since its
# PR #10803) also drops the penalties there; they stay here, so that a penalty a user sets
# acts (set them off for llama.cpp's chain exactly). A grammar stays too (llama.cpp applies
# its grammar beside any chain, mirostat's included).
MIROSTAT_CHAIN = ("grammar", "logit_bias", "penalties", "temperature")
Mode = Literal["sample", "greedy", "hardmax"]


def setting_fields(names: Sequence[str] | None = None) -> list[tuple[str, type, Any]]:
    """``make_dataclass`` fields for stage settings (all by default), each at its "off" value."""
    chosen = [SETTINGS[name] for name in names] if names is not None else SETTINGS.values()
    return [
        (s.name, s.kind, field(default_factory=dict) if s.kind is dict else field(default=s.off))
        for s in chosen
    ]


def _check_int(name: str, value: object, low: int, allowed: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value < 2**63:
        raise InvalidInputError(f"{name}={value!r} is out of range: allowed {allowed}")


def _checked_order(order: str | Sequence[str]) -> tuple[str, ...]:
    if isinstance(order, str):
        if order in PRESETS:
            return PRESETS[order]
        names = ", ".join(PRESETS)
        raise InvalidInputError(
            f"order={order!r} is not a preset: use one of {names}, or a list of stages"
        )
    if not isinstance(order, Sequence) or isinstance(order, bytes):  # a number, None, ...
        raise InvalidInputError(
            f"order={shown(order)} must be a preset ({', '.join(PRESETS)}) "
            "or a list of stage names"
        )
    stages = tuple(order)
    for name in stages:
        if not isinstance(name, str) or name not in STAGE_NAMES:
            raise InvalidInputError(
                f"stage {shown(name)} is unknown: use {', '.join(STAGE_NAMES)}"
            )
    if len(set(stages)) != len(stages):
        raise InvalidInputError(f"order {list(stages)} names a stage twice")
    for spec in STAGES:
        if spec.required and spec.name not in stages:
            raise InvalidInputError(f"order must contain the {spec.name} stage")
    return stages


class _RowSettings:
    """Validation and derived views of :class:`SamplingParams` (fields come from the table)."""

    def __post_init__(self) -> None:
        for setting in SETTINGS.values():
            object.__setattr__(self, setting.name, setting.check(getattr(self, setting.name)))
        if self.mode not in MODES:
            raise InvalidInputError(f"mode={self.mode!r} is unknown: use one of {', '.join(MODES)}")
        if self.seed is not None:
            _check_int("seed", self.seed, 0, "None or an integer >= 0")
        _check_int("min_tokens_to_keep", self.min_tokens_to_keep, 1, "an integer >= 1")
        object.__setattr__(self, "order", _checked_order(self.order))
        if self.grammar:  # compiled once per (syntax, text): a bad grammar fails here
            from sampler.engine.constraints.compile import compiled

            compiled(self.grammar_syntax, self.grammar)
        if self.mirostat:
            beside = [s for s in self.active_stages if s not in (*MIROSTAT_CHAIN, "mirostat")]
            if self.dynatemp_range:
                beside.insert(0, "dynatemp_range")
            if beside:
                raise InvalidInputError(
                    f"{beside[0]} has no effect with mirostat={self.mirostat}: mirostat "
                    "replaces the truncation stages and dynamic temperature (as in llama.cpp); "
                    "switch one of them off"
                )
        if self.mirostat and self.resamples:
            # llama_sampler_mirostat_apply and _v2_apply (src/llama-sampler.cpp) move μ inside
            # apply: common_sampler_sample's second pass truncates with a μ the rejected token
            # already moved, so the second draw's law depends on that token (not modelled)
            default = " (the llama.cpp preset's default)" if self.grammar_mode == "auto" else ""
            raise InvalidInputError(
                f"grammar_mode={self.grammar_mode!r} resamples{default} but mirostat="
                f"{self.mirostat} is on: llama.cpp moves mirostat's μ in both passes, the "
                "rejected draw's too, which sampler does not model; set grammar_mode='mask'"
            )
        unused = [s for s in self.active_stages if s not in self.stages]
        if unused:
            raise InvalidInputError(
                f"{unused[0]} is set but the chain {list(self.order)} has no {unused[0]} stage: "
                "add it to order or choose another preset"
            )

    def __hash__(self) -> int:
        values = [getattr(self, name) for name in self.__dataclass_fields__]
        return hash(tuple(tuple(sorted(v.items())) if isinstance(v, dict) else v for v in values))

    @property
    def stages(self) -> tuple[str, ...]:
        """The chain this row runs, in order: its ``order`` with adaptive-p moved to the end
        (llama.cpp adds it after every other sampler, wherever ``--samplers`` lists it), or
        with mirostat on, the shaping stages of :data:`MIROSTAT_CHAIN` that the order has,
        then mirostat."""
        if self.mirostat:
            return (*(name for name in self.order if name in MIROSTAT_CHAIN), "mirostat")
        chain = tuple(name for name in self.order if name not in ("mirostat", "adaptive_p"))
        return (*chain, "adaptive_p") if "adaptive_p" in self.order else chain

    @property
    def resamples(self) -> bool:
        """Whether this row draws a constrained token as llama.cpp's common sampler does: from
        the chain without the grammar, and only when that token is illegal, again from the
        chain with it (:mod:`sampler.engine.resample`). True with a grammar and
        ``grammar_mode="resample"``, or ``"auto"`` under a preset of
        :data:`~sampler.engine.presets.RESAMPLING` (llama.cpp's)."""
        if not self.grammar:
            return False
        if self.grammar_mode == "auto":
            return resamples_by_default(self.order)
        return self.grammar_mode == "resample"

    @property
    def is_greedy(self) -> bool:
        """Greedy decoding: ``mode="greedy"``, or sampling at temperature 0."""
        return self.mode == "greedy" or (self.mode == "sample" and self.temperature == 0)

    @property
    def active_stages(self) -> tuple[str, ...]:
        """The stages whose settings are not neutral (temperature is always active)."""
        values = {name: getattr(self, name) for name in SETTINGS}
        return tuple(spec.name for spec in STAGES if spec.active(values))

    def settings(self) -> dict[str, Any]:
        """The stage settings as a plain ``{name: value}`` dict."""
        return {name: getattr(self, name) for name in SETTINGS}


def _docstring() -> str:
    lines = [
        "How one row is decoded. All fields are validated on construction; keywords only.",
        "",
        "Parameters",
        "----------",
    ]
    for spec in STAGES:
        for setting in spec.settings:
            lines += [setting.name, f"    {setting.help} Allowed: {setting.allowed}."]
    lines += [
        "mode",
        '    ``"sample"``, ``"greedy"`` (argmax, lowest index on ties) or ``"hardmax"``',
        "    (uniform over the tied maxima: the τ → 0 limit of sampling).",
        "seed",
        "    Seed of this row's random stream (``None``: fresh OS entropy).",
        "order",
        f"    A preset name ({', '.join(PRESETS)}) or a list of stage names.",
        "min_tokens_to_keep",
        "    Every truncating stage keeps at least this many tokens (``>= 1``).",
        "",
        "With ``mirostat`` on, the chain is bias, penalties, temperature, mirostat (see",
        "``stages``); setting a truncation stage or dynamic temperature beside it is an error.",
    ]
    return "\n".join(lines)


SamplingParams = make_dataclass(
    "SamplingParams",
    [
        *setting_fields(),
        ("mode", str, field(default="sample")),
        ("seed", int | None, field(default=None)),
        ("order", str | Sequence[str], field(default=DEFAULT_ORDER)),
        ("min_tokens_to_keep", int, field(default=1)),
    ],
    bases=(_RowSettings,),
    namespace={
        "__doc__": _docstring(),
        "__hash__": _RowSettings.__hash__,
        "__module__": __name__,
    },
    frozen=True,
    kw_only=True,
)
