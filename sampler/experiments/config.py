"""`SweepConfig`: what a temperature sweep runs, from a TOML file and command-line overrides.

Every key is optional; unknown keys are an error naming the key. Example
(``configs/default.toml``)::

    model = "smollm2-135m"
    prompts = ["Write a short story about a lighthouse keeper."]
    temperatures = [0.0, 0.3, 0.7, 1.0, 1.5]
    samples = 4
    max_new_tokens = 64
    seed = 0

Rows are every prompt x temperature x sample, in that order; a row's index in that list is its
identity in the run log (what ``--resume`` skips). Temperature 0 is greedy.
"""

from __future__ import annotations

import json
import math
import tomllib
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from sampler.engine.params import SamplingParams
from sampler.errors import InvalidInputError
from sampler.generation.loop import GenerationRow

__all__ = ["SweepConfig", "load_config", "parse_temperatures", "read_prompts"]

DEFAULT_PROMPTS = (
    "Write a short story about a lighthouse keeper.",
    "Explain why the sky is blue.",
    "Describe your ideal weekend.",
)


@dataclass(frozen=True)
class SweepConfig:
    """A sweep: prompts x temperatures x samples, shared filters, one seed."""

    model: str = "smollm2-135m"
    prompts: tuple[str, ...] = DEFAULT_PROMPTS
    temperatures: tuple[float, ...] = (0.0, 0.3, 0.7, 1.0, 1.5)
    samples: int = 4
    max_new_tokens: int = 64
    seed: int = 0
    top_k: int = 0
    top_p: float = 1.0
    min_p: float = 0.0
    typical_p: float = 1.0
    epsilon: float = 0.0
    eta: float = 0.0
    top_n_sigma: float = 0.0
    repetition_penalty: float = 1.0
    order: str = "hf"
    mode: str = "sample"
    raw: bool = False
    stop: tuple[str, ...] = ()
    batch_size: int = 64

    def __post_init__(self) -> None:
        if not self.prompts:
            raise InvalidInputError("no prompts: give --prompt, --prompts FILE or prompts = [...]")
        if not self.temperatures:
            raise InvalidInputError("no temperatures: give e.g. --temperatures 0,0.7,1.0")
        for name in ("samples", "max_new_tokens", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidInputError(f"{name}={value!r} is invalid: use an integer >= 1")
        for temperature in self.temperatures:
            self.params(temperature)  # SamplingParams checks every filter value

    def params(self, temperature: float) -> SamplingParams:
        """The sampling settings of one temperature's rows."""
        # Every field the sweep shares with SamplingParams passes straight through.
        shared = {name: getattr(self, name) for name in _SHARED_WITH_PARAMS}
        return SamplingParams(temperature=temperature, **shared)

    def rows(self) -> list[GenerationRow]:
        """Every prompt x temperature x sample, in a fixed order (a row's index is its id)."""
        by_temperature = {tau: self.params(tau) for tau in self.temperatures}
        return [
            GenerationRow(prompt, by_temperature[tau], sample)
            for prompt in self.prompts
            for tau in self.temperatures
            for sample in range(self.samples)
        ]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in data.items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any], origin: str = "config") -> SweepConfig:
        """Build from plain values, checking every key and type (``origin`` names the source)."""
        known = {f.name: f for f in fields(cls)}
        values: dict[str, Any] = {}
        for key, value in data.items():
            if key not in known:
                raise InvalidInputError(
                    f"{origin}: unknown key {key!r}; allowed keys are {', '.join(known)}"
                )
            values[key] = _checked(key, value, cls.__dataclass_fields__[key].default, origin)
        return cls(**values)


_SHARED_WITH_PARAMS = tuple(
    f.name for f in fields(SweepConfig) if f.name in SamplingParams.__dataclass_fields__
)


def _checked(key: str, value: Any, default: Any, origin: str) -> Any:
    if isinstance(default, tuple):
        if not isinstance(value, list | tuple):
            raise InvalidInputError(f"{origin}: {key} must be a list, got {value!r}")
        if key == "temperatures":
            return tuple(parse_temperatures(",".join(str(v) for v in value)))
        if not all(isinstance(v, str) for v in value):
            raise InvalidInputError(f"{origin}: {key} must be a list of strings")
        return tuple(value)
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise InvalidInputError(f"{origin}: {key} must be true or false, got {value!r}")
        return value
    if isinstance(default, int) and (isinstance(value, bool) or not isinstance(value, int)):
        raise InvalidInputError(f"{origin}: {key} must be an integer, got {value!r}")
    if isinstance(default, float) and (
        isinstance(value, bool) or not isinstance(value, int | float)
    ):
        raise InvalidInputError(f"{origin}: {key} must be a number, got {value!r}")
    if isinstance(default, str) and not isinstance(value, str):
        raise InvalidInputError(f"{origin}: {key} must be a string, got {value!r}")
    return float(value) if isinstance(default, float) else value


def parse_temperatures(text: str) -> list[float]:
    """``"0,0.3,0.7"`` → ``[0.0, 0.3, 0.7]``; each value a number >= 0, no duplicates."""
    values = []
    for item in (part.strip() for part in text.split(",")):
        try:
            value = float(item)
        except ValueError:
            raise InvalidInputError(
                f"temperature {item!r} in {text!r} is not a number: give "
                "comma-separated numbers >= 0, e.g. 0,0.7,1.0"
            ) from None
        if math.isnan(value) or value < 0 or math.isinf(value):
            raise InvalidInputError(
                f"temperature {item} in {text!r} is invalid: use finite numbers >= 0 (0 = greedy)"
            )
        if value in values:
            raise InvalidInputError(f"temperature {item} appears twice in {text!r}")
        values.append(value)
    return values


def load_config(path: str | Path) -> dict[str, Any]:
    """The raw key/values of a TOML config file (checked by :meth:`SweepConfig.from_dict`)."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as error:
        raise InvalidInputError(f"cannot read config {str(file)!r}: {error.strerror}") from None
    except UnicodeDecodeError:
        raise InvalidInputError(f"config {str(file)!r} is not UTF-8 text") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise InvalidInputError(f"config {str(file)!r} is not valid TOML: {error}") from None


def read_prompts(path: str | Path) -> list[str]:
    """Prompts from a file: one per line, or JSONL lines ``{"prompt": "..."}``; blanks skipped."""
    file = Path(path)
    try:
        lines = file.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        reason = getattr(error, "strerror", None) or "not UTF-8 text"
        raise InvalidInputError(f"cannot read prompts {str(file)!r}: {reason}") from None
    prompts = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        if line.lstrip().startswith("{"):
            try:
                prompt = json.loads(line)["prompt"]
            except (ValueError, KeyError, TypeError):
                raise InvalidInputError(
                    f'{file}:{number}: a JSON line needs a "prompt" string'
                ) from None
            if not isinstance(prompt, str):
                raise InvalidInputError(f'{file}:{number}: "prompt" must be a string')
            prompts.append(prompt)
        else:
            prompts.append(line)
    if not prompts:
        raise InvalidInputError(f"prompts file {str(file)!r} has no prompts")
    return prompts
