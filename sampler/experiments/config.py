"""`RunConfig`: what a run (sweep, generate, compare) runs, from a TOML file and command-line flags.

Every key is optional; unknown keys are an error naming the key. Example
(``configs/default.toml``)::

    model = "smollm2-135m"
    prompts = ["Write a short story about a lighthouse keeper."]
    temperatures = [0.0, 0.3, 0.7, 1.0, 1.5]
    samples = 4
    max_new_tokens = 64
    seed = 0

Rows are every prompt x temperature x sample, in that order; a row's index in that list is its
identity in the run log (what ``--resume`` skips). Temperature 0 is greedy. Type checkers
read the fields from ``config.pyi`` (``scripts/write_stubs.py`` writes it from the stage table).
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import field, make_dataclass
from pathlib import Path
from typing import Any

from sampler.engine.params import DEFAULT_ORDER, SamplingParams, setting_fields
from sampler.engine.presets import check_mode_has_grammar
from sampler.engine.stages import SETTINGS
from sampler.errors import InvalidInputError
from sampler.files import read_lines
from sampler.generation.generation_row import STREAM_KEYS, GenerationRow
from sampler.generation.phrase_bans import check_phrases
from sampler.messages import check_text
from sampler.softmax import check_temperatures
from sampler.sources import DEFAULT_MODEL, DTYPES

__all__ = ["RunConfig", "load_config", "read_prompts"]

DEFAULT_PROMPTS = (
    "Write a short story about a lighthouse keeper.",
    "Explain why the sky is blue.",
    "Describe your ideal weekend.",
)


class _Run:
    """Checks and views of :class:`RunConfig` (its stage settings come from the stage table)."""

    def __post_init__(self) -> None:
        if not self.prompts:
            raise InvalidInputError("no prompts: give --prompt, --prompts FILE or prompts = [...]")
        if not self.temperatures:
            raise InvalidInputError("no temperatures: give e.g. --temperatures 0,0.7,1.0")
        object.__setattr__(self, "temperatures", tuple(check_temperatures(self.temperatures)))
        for name in ("samples", "max_new_tokens", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidInputError(f"{name}={value!r} is invalid: use an integer >= 1")
        if self.dtype not in DTYPES:
            raise InvalidInputError(
                f"dtype={self.dtype!r} is unknown: use one of {', '.join(DTYPES)}"
            )
        if self.stream not in STREAM_KEYS:
            raise InvalidInputError(
                f"stream={self.stream!r} is unknown: use one of {', '.join(STREAM_KEYS)}"
            )
        check_mode_has_grammar(self.grammar, self.grammar_mode)
        check_phrases(self.ban_phrases)
        for tau in self.temperatures:  # a bad setting (a grammar) is named with its file
            self.params(tau)

    def params(self, temperature: float) -> SamplingParams:
        """The sampling settings of one temperature's rows."""
        shared = {name: getattr(self, name) for name in _SHARED_WITH_PARAMS}
        return SamplingParams(temperature=temperature, **shared)

    def rows(self) -> list[GenerationRow]:
        """Every prompt x temperature x sample, in a fixed order (a row's index is its id)."""
        by_temperature = {tau: self.params(tau) for tau in self.temperatures}
        return [
            GenerationRow(prompt, by_temperature[tau], sample, self.stream)
            for prompt in self.prompts
            for tau in self.temperatures
            for sample in range(self.samples)
        ]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON/TOML values: tuples as lists, logit-bias token ids as strings."""
        data = {name: getattr(self, name) for name in self.__dataclass_fields__}
        data["logit_bias"] = {str(token): bias for token, bias in data["logit_bias"].items()}
        return {k: list(v) if isinstance(v, tuple) else v for k, v in data.items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any], origin: str = "config") -> RunConfig:
        """Build from plain values, checking every key and type (``origin`` names the source)."""
        values: dict[str, Any] = {}
        for key, value in data.items():
            if key not in cls.__dataclass_fields__:
                allowed = ", ".join(cls.__dataclass_fields__)
                raise InvalidInputError(
                    f"{origin}: unknown key {key!r}; allowed keys are {allowed}"
                )
            values[key] = _checked(key, value, origin)
        try:
            return cls(**values)
        except InvalidInputError as error:
            raise InvalidInputError(f"{origin}: {error}") from None


_EXPERIMENT_FIELDS: list[tuple[str, type, Any]] = [
    ("model", str, field(default=DEFAULT_MODEL)),
    ("dtype", str, field(default="float32")),  # torch models' weights (sources.DTYPES)
    ("prompts", tuple, field(default=DEFAULT_PROMPTS)),
    ("temperatures", tuple, field(default=(0.0, 0.3, 0.7, 1.0, 1.5))),
    ("samples", int, field(default=4)),
    ("max_new_tokens", int, field(default=64)),
    ("seed", int, field(default=0)),
    ("order", str, field(default=DEFAULT_ORDER)),
    ("mode", str, field(default="sample")),
    ("raw", bool, field(default=False)),
    ("stop", tuple, field(default=())),
    # phrases no row may produce (sampler.generation.phrase_bans)
    ("ban_phrases", tuple, field(default=())),
    ("batch_size", int, field(default=64)),
    # how rows' random streams are keyed: "prompt" = (seed, prompt, sample); "sample" = (seed,
    # sample), the 0.1.0 keying that runs logged then keep (migration 004_stream_keys)
    ("stream", str, field(default="prompt")),
]
_FLAG_SETTINGS = [name for name, setting in SETTINGS.items() if setting.flag]
RunConfig = make_dataclass(
    "RunConfig",
    [*_EXPERIMENT_FIELDS, *setting_fields(_FLAG_SETTINGS)],
    bases=(_Run,),
    namespace={
        "__doc__": "A run: prompts x temperatures x samples, shared stage settings, one seed.",
        "__module__": __name__,
    },
    frozen=True,
    kw_only=True,
)
_SHARED_WITH_PARAMS = (*_FLAG_SETTINGS, "order", "mode", "seed")
_KINDS = {name: kind for name, kind, _ in _EXPERIMENT_FIELDS} | {
    name: SETTINGS[name].kind for name in _FLAG_SETTINGS
}


def _checked(key: str, value: Any, origin: str) -> Any:
    kind = _KINDS[key]
    if kind is tuple:
        if not isinstance(value, list | tuple):
            raise InvalidInputError(f"{origin}: {key} must be a list, got {value!r}")
        if key == "temperatures":
            return tuple(value)  # checked with the one temperature rule on construction
        if not all(isinstance(v, str) for v in value):
            raise InvalidInputError(f"{origin}: {key} must be a list of strings")
        for number, text in enumerate(value, start=1):
            check_text(f"{origin}: {key} item {number}", text)
        return tuple(value)
    if kind is dict:
        if not isinstance(value, dict):
            raise InvalidInputError(f"{origin}: {key} must be a table {{token id = bias}}")
        try:
            return {int(token): bias for token, bias in value.items()}
        except ValueError:
            raise InvalidInputError(f"{origin}: {key} keys must be token ids") from None
    if kind is bool:
        if not isinstance(value, bool):
            raise InvalidInputError(f"{origin}: {key} must be true or false, got {value!r}")
        return value
    if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise InvalidInputError(f"{origin}: {key} must be an integer, got {value!r}")
    if kind is float and (isinstance(value, bool) or not isinstance(value, int | float)):
        raise InvalidInputError(f"{origin}: {key} must be a number, got {value!r}")
    if kind is str and not isinstance(value, str):
        raise InvalidInputError(f"{origin}: {key} must be a string, got {value!r}")
    if kind is float:  # every float key is a stage setting: its rule converts and checks it
        try:
            return SETTINGS[key].check(value)
        except InvalidInputError as error:
            raise InvalidInputError(f"{origin}: {error}") from None
    return value


def load_config(path: str | Path) -> dict[str, Any]:
    """The raw key/values of a TOML config file (checked by :meth:`RunConfig.from_dict`)."""
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
    lines = read_lines(file, "prompts")
    prompts = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        if line.lstrip().startswith("{"):
            try:
                prompt = json.loads(line)["prompt"]
            except (ValueError, KeyError, TypeError, RecursionError):  # or nested too deep
                raise InvalidInputError(
                    f'{file}:{number}: a JSON line needs a "prompt" string (one object of '
                    'plain values, e.g. {"prompt": "Hello"})'
                ) from None
            if not isinstance(prompt, str):
                raise InvalidInputError(f'{file}:{number}: "prompt" must be a string')
            prompts.append(check_text(f'{file}:{number}: "prompt"', prompt))
        else:
            prompts.append(line)
    if not prompts:
        raise InvalidInputError(f"prompts file {str(file)!r} has no prompts")
    return prompts
