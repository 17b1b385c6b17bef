"""`SamplingParams`: one row's validated, frozen decoding settings, and the chain orders.

Names follow vLLM's ``SamplingParams``; neutral values (``top_k=0``, ``top_p=1``, ``min_p=0``,
...) switch a stage off entirely. The chain ``order`` is a preset name or an explicit list of
stage names; presets reproduce the order of each peer:

========== ==================================================================================
preset     order
========== ==================================================================================
hf         logit_bias, penalties, temperature, top_k, top_p, min_p, typical_p, epsilon, eta
llama.cpp  logit_bias, penalties, top_n_sigma, top_k, typical_p, top_p, min_p, temperature
vllm       logit_bias, penalties, temperature, min_p, top_k, top_p
========== ==================================================================================

Examples
--------
>>> params = SamplingParams(temperature=0.7, top_p=0.9, order="llama.cpp")
>>> params.stages
('logit_bias', 'penalties', 'top_n_sigma', 'top_k', 'typical_p', 'top_p', 'min_p', 'temperature')
>>> SamplingParams(top_p=1.5)
Traceback (most recent call last):
...
sampler.errors.InvalidInputError: top_p=1.5 is out of range: allowed 0 < top_p <= 1 (1 = off)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from sampler.errors import InvalidInputError

__all__ = ["DEFAULT_ORDER", "MODES", "PRESETS", "STAGES", "SamplingParams"]

STAGES = (
    "logit_bias",
    "penalties",
    "temperature",
    "top_k",
    "top_p",
    "min_p",
    "typical_p",
    "epsilon",
    "eta",
    "top_n_sigma",
)

PRESETS: dict[str, tuple[str, ...]] = {
    # transformers' generate(): processors (bias, repetition penalty), then the warpers in the
    # order _get_logits_processor appends them.
    "hf": (
        "logit_bias",
        "penalties",
        "temperature",
        "top_k",
        "top_p",
        "min_p",
        "typical_p",
        "epsilon",
        "eta",
    ),
    # llama.cpp common_params_sampling.samplers: penalties, (DRY), top-n-sigma, top-k, typical,
    # top-p, min-p, (XTC), temperature; logit bias is put in front by common_sampler_init.
    "llama.cpp": (
        "logit_bias",
        "penalties",
        "top_n_sigma",
        "top_k",
        "typical_p",
        "top_p",
        "min_p",
        "temperature",
    ),
    # vLLM v1 Sampler: logits processors (bias), penalties, temperature, min-p, top-k/top-p.
    "vllm": ("logit_bias", "penalties", "temperature", "min_p", "top_k", "top_p"),
}
# transformers is the peer most users already know, and its order (temperature first) is the one
# whose parity the test suite checks against the transformers warpers themselves.
DEFAULT_ORDER = "hf"

MODES = ("sample", "greedy", "hardmax")
Mode = Literal["sample", "greedy", "hardmax"]


def _out_of_range(name: str, value: object, allowed: str) -> InvalidInputError:
    return InvalidInputError(f"{name}={value!r} is out of range: allowed {allowed}")


def _number(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidInputError(f"{name}={value!r} is not a number")
    if math.isnan(value):
        raise InvalidInputError(f"{name}=nan is not allowed: give a number")
    return float(value)


@dataclass(frozen=True)
class SamplingParams:
    """How one row is decoded. All fields are validated on construction.

    Parameters
    ----------
    temperature
        ``>= 0``; 0 means greedy (as in vLLM and llama.cpp).
    top_k
        Keep the ``top_k`` most likely tokens (ties with the k-th kept); ``0`` or ``-1`` = off.
    top_p
        Nucleus: the smallest set whose probability reaches ``top_p``; in ``(0, 1]``, 1 = off.
    min_p
        Keep tokens with probability ``>= min_p * max probability``; in ``[0, 1]``, 0 = off.
    typical_p
        Locally typical sampling mass; in ``(0, 1]``, 1 = off.
    epsilon
        Epsilon sampling: drop tokens with probability ``< epsilon``; in ``[0, 1)``, 0 = off.
    eta
        Eta sampling: drop below ``min(eta, sqrt(eta) * exp(-H))``; in ``[0, 1)``, 0 = off.
    top_n_sigma
        Keep logits ``>= max - n * std`` (population std of the finite logits); ``>= 0``,
        0 = off.
    repetition_penalty
        ``> 0``; seen tokens' positive logits are divided by it, negative ones multiplied.
    frequency_penalty, presence_penalty
        In ``[-2, 2]``: subtract ``count * frequency + (count > 0) * presence``.
    penalty_last_n
        How many of the most recent history tokens the penalties look at; 0 = all.
    logit_bias
        ``{token id: bias}`` added to the logits, each bias in ``[-100, 100]``.
    mode
        ``"sample"``, ``"greedy"`` (argmax, lowest index on ties) or ``"hardmax"`` (uniform
        over the tied maxima: the τ → 0 limit of sampling).
    seed
        Seed of this row's random stream (``None``: fresh OS entropy).
    order
        A preset name (``"hf"``, ``"llama.cpp"``, ``"vllm"``) or a list of stage names.
    min_tokens_to_keep
        Every truncating filter keeps at least this many tokens (``>= 1``).
    """

    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    min_p: float = 0.0
    typical_p: float = 1.0
    epsilon: float = 0.0
    eta: float = 0.0
    top_n_sigma: float = 0.0
    repetition_penalty: float = 1.0
    frequency_penalty: float = 0.0
    presence_penalty: float = 0.0
    penalty_last_n: int = 0
    logit_bias: Mapping[int, float] = field(default_factory=dict)
    mode: Mode = "sample"
    seed: int | None = None
    order: str | Sequence[str] = DEFAULT_ORDER
    min_tokens_to_keep: int = 1

    def __post_init__(self) -> None:
        temperature = _number("temperature", self.temperature)
        if temperature < 0 or math.isinf(temperature):
            raise _out_of_range("temperature", self.temperature, ">= 0 and finite (0 = greedy)")
        self._check_int("top_k", self.top_k, -1, "-1, 0 (off) or a positive integer")
        self._check("top_p", self.top_p, lambda v: 0 < v <= 1, "0 < top_p <= 1 (1 = off)")
        self._check("min_p", self.min_p, lambda v: 0 <= v <= 1, "0 <= min_p <= 1 (0 = off)")
        self._check(
            "typical_p", self.typical_p, lambda v: 0 < v <= 1, "0 < typical_p <= 1 (1 = off)"
        )
        self._check("epsilon", self.epsilon, lambda v: 0 <= v < 1, "0 <= epsilon < 1 (0 = off)")
        self._check("eta", self.eta, lambda v: 0 <= v < 1, "0 <= eta < 1 (0 = off)")
        self._check(
            "top_n_sigma",
            self.top_n_sigma,
            lambda v: 0 <= v < math.inf,
            "0 <= top_n_sigma, finite (0 = off)",
        )
        self._check(
            "repetition_penalty",
            self.repetition_penalty,
            lambda v: 0 < v < math.inf,
            "repetition_penalty > 0, finite (1 = off)",
        )
        for name in ("frequency_penalty", "presence_penalty"):
            self._check(name, getattr(self, name), lambda v: -2 <= v <= 2, f"-2 <= {name} <= 2")
        self._check_int("penalty_last_n", self.penalty_last_n, 0, "0 (all) or a positive integer")
        self._check_int("min_tokens_to_keep", self.min_tokens_to_keep, 1, "an integer >= 1")
        if self.mode not in MODES:
            raise InvalidInputError(f"mode={self.mode!r} is unknown: use one of {', '.join(MODES)}")
        if self.seed is not None:
            self._check_int("seed", self.seed, 0, "None or an integer >= 0")
        object.__setattr__(self, "logit_bias", self._checked_bias(self.logit_bias))
        object.__setattr__(self, "order", self._checked_order(self.order))
        unused = [name for name in self.active_stages if name not in self.order]
        if unused:
            raise InvalidInputError(
                f"{unused[0]} is set but the chain {list(self.order)} has no {unused[0]} stage: "
                "add it to order or choose another preset"
            )

    @staticmethod
    def _check(name: str, value: object, ok: object, allowed: str) -> None:
        number = _number(name, value)
        if not ok(number):  # type: ignore[operator]
            raise _out_of_range(name, value, allowed)

    @staticmethod
    def _check_int(name: str, value: object, low: int, allowed: str) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise _out_of_range(name, value, allowed)

    @staticmethod
    def _checked_bias(bias: Mapping[int, float]) -> dict[int, float]:
        if not isinstance(bias, Mapping):
            raise InvalidInputError(f"logit_bias={bias!r} must be a mapping {{token id: bias}}")
        checked = {}
        for token, value in bias.items():
            if isinstance(token, bool) or not isinstance(token, int) or token < 0:
                raise InvalidInputError(f"logit_bias token {token!r} must be an integer id >= 0")
            number = _number(f"logit_bias[{token}]", value)
            if not -100 <= number <= 100:
                raise _out_of_range(f"logit_bias[{token}]", value, "-100 <= bias <= 100")
            checked[token] = number
        return checked

    @staticmethod
    def _checked_order(order: str | Sequence[str]) -> tuple[str, ...]:
        if isinstance(order, str):
            if order in PRESETS:
                return PRESETS[order]
            names = ", ".join(PRESETS)
            raise InvalidInputError(
                f"order={order!r} is not a preset: use one of {names}, or a list of stages"
            )
        stages = tuple(order)
        for name in stages:
            if name not in STAGES:
                raise InvalidInputError(f"stage {name!r} is unknown: use {', '.join(STAGES)}")
        if len(set(stages)) != len(stages):
            raise InvalidInputError(f"order {list(stages)} names a stage twice")
        if "temperature" not in stages:
            raise InvalidInputError("order must contain the temperature stage")
        return stages

    def __hash__(self) -> int:
        return hash(
            (
                self.stages,
                tuple(sorted(self.logit_bias.items())),
                *(getattr(self, name) for name in self._scalar_fields()),
            )
        )

    @classmethod
    def _scalar_fields(cls) -> tuple[str, ...]:
        return tuple(n for n in cls.__dataclass_fields__ if n not in ("logit_bias", "order"))

    @property
    def stages(self) -> tuple[str, ...]:
        """The chain order as a tuple of stage names."""
        return self.order  # type: ignore[return-value]

    @property
    def is_greedy(self) -> bool:
        """Greedy decoding: ``mode="greedy"``, or sampling at temperature 0."""
        return self.mode == "greedy" or (self.mode == "sample" and self.temperature == 0)

    @property
    def active_stages(self) -> tuple[str, ...]:
        """The stages whose parameters are not neutral (temperature is always active)."""
        active = {
            "logit_bias": bool(self.logit_bias),
            "penalties": self.repetition_penalty != 1
            or self.frequency_penalty != 0
            or self.presence_penalty != 0,
            "temperature": True,
            "top_k": self.top_k > 0,
            "top_p": self.top_p < 1,
            "min_p": self.min_p > 0,
            "typical_p": self.typical_p < 1,
            "epsilon": self.epsilon > 0,
            "eta": self.eta > 0,
            "top_n_sigma": self.top_n_sigma > 0,
        }
        return tuple(name for name in STAGES if active[name])
