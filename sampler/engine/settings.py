"""What a stage is: its settings (type, "off" value, allowed range, help) and its pure function.

The table of stages itself is :mod:`sampler.engine.stages`; everything here is the vocabulary
it is written in.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from sampler.errors import InvalidInputError
from sampler.messages import check_text, shown
from sampler.softmax import check_temperature

if TYPE_CHECKING:
    from sampler.engine.candidates import Candidates
    from sampler.engine.rows import RowParams

__all__ = ["GROUPS", "Setting", "Slider", "Stage", "StageSpec", "between"]

# A stage: a pure function of the candidates and the batch's per-row settings.
Stage = Callable[["Candidates", "RowParams"], "Candidates"]

# The page's groups of settings, in the page's order: name -> (heading, one-sentence summary).
# Every stage names one (``StageSpec.group``); a setting may sit in another (``Setting.group``:
# dynamic temperature is part of the temperature stage but adapts like mirostat).
GROUPS: dict[str, tuple[str, str]] = {
    "temperature": (
        "Temperature and mode",
        "Temperature τ divides every logit before softmax (below 1 sharper, above 1 flatter); "
        "the mode says whether a token is drawn at random or the likeliest one is taken.",
    ),
    "truncation": (
        "Truncation",
        "Each of these keeps only the head of the distribution (the likeliest tokens, a share "
        "of the probability, or tokens above a threshold) and renormalises what is left.",
    ),
    "penalties": (
        "Penalties",
        "These lower the logits of tokens the text already contains, so that the model "
        "repeats itself less.",
    ),
    "adaptive": (
        "Adaptive samplers",
        "These change what they do from step to step: by how unsure the model is (dynamic "
        "temperature), toward a target surprise (mirostat) or probability (adaptive-p), by "
        "chance (XTC) or by the text's repeats (DRY).",
    ),
    "advanced": (
        "Advanced",
        "Reshaping of the logits and the row's floor on kept tokens: rarely needed, here so "
        "that every setting of the library can be tried.",
    ),
}


def _number(name: str, value: object, allowed: str = "a number") -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidInputError(f"{name}={value!r} is not a number")
    try:
        number = float(value)
    except OverflowError:  # an integer beyond float64, as a TOML or JSON number can be
        raise InvalidInputError(
            f"{name}={shown(value)} is beyond float64's range (about 1.8e308): "
            f"allowed {allowed}"
        ) from None
    if math.isnan(number):
        raise InvalidInputError(f"{name}=nan is not allowed: give a number")
    return number


def _bias(name: str, value: object) -> dict[int, float]:
    if not isinstance(value, Mapping):
        raise InvalidInputError(f"{name}={value!r} must be a mapping {{token id: bias}}")
    checked = {}
    for token, bias in value.items():
        if isinstance(token, bool) or not isinstance(token, int) or not 0 <= token < 2**63:
            raise InvalidInputError(
                f"{name} token {shown(token)} must be an integer id >= 0 (a token of "
                "the model's vocabulary)"
            )
        number = _number(f"{name}[{token}]", bias, "-100 <= bias <= 100")
        if not -100 <= number <= 100:
            raise InvalidInputError(
                f"{name}[{token}]={bias!r} is out of range: allowed -100 <= bias <= 100"
            )
        checked[token] = number
    return checked


def _strings(name: str, value: object, allowed: str) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, list | tuple):
        raise InvalidInputError(f"{name}={shown(value)} must be a list of strings: {allowed}")
    for item in value:
        if not isinstance(item, str) or not item:
            raise InvalidInputError(
                f"{name} item {shown(item)} must be a non-empty string ({allowed})"
            )
        check_text(f"{name} item {shown(item)}", item)
    return tuple(value)


@dataclass(frozen=True)
class Slider:
    """The page's control of a number setting: a range slider from ``low`` to ``high`` in
    steps of ``step``, or on a log scale (``scale="log"``, whose left end is 0: temperature's
    greedy). Any value the setting allows may still be typed beside it."""

    low: float
    high: float
    step: float = 0.0  # 0 on a log scale: the slider moves in thousandths of the range
    scale: str = "linear"


@dataclass(frozen=True)
class Setting:
    """One field of a stage: its type, its "off" value, what is allowed, and its help text.

    ``kind`` is ``int``, ``float``, ``dict`` (the ``{token id: bias}`` of logit bias),
    ``tuple`` (strings: DRY's sequence breakers) or ``str`` (a constraint's grammar and its
    syntax: the command line takes them as ``--grammar FILE``, ``--json-schema FILE`` and
    ``--regex R``, :func:`sampler.cli.options.constraint_options`).
    ``allowed`` is both the rule shown in errors and help, and (for numbers) checked by
    ``valid`` (for a tuple, ``valid`` gets the whole tuple). A setting with
    ``activates=False`` only modifies its stage (how far the penalties look back) and never
    switches it on by itself. ``off_values`` lists further
    values that mean off (vLLM's ``top_k=-1``). ``flag`` is False for the temperature, which
    every command takes in its own way (``-t``, ``--temperatures``).
    ``example`` is one allowed value that is not "off": with it (and its stage's other
    examples) the stage acts, which is how the page's engine is checked against the library
    stage by stage (``tests/test_page_engine.py``). ``slider`` is the page's control; a setting
    without one has no control in the page (the API and the command line take it).
    ``title`` names the setting in words for the page (``"Top-p (nucleus)"``), beside its
    field name; ``group`` is the page's group (:data:`GROUPS`) when not its stage's.
    """

    name: str
    kind: type
    off: Any
    allowed: str
    help: str
    valid: Callable[[Any], bool] = lambda value: True
    activates: bool = True
    off_values: tuple[Any, ...] = ()
    flag: bool = True
    example: Any = None
    slider: Slider | None = None
    title: str = ""
    group: str | None = None

    def check(self, value: object) -> Any:
        """``value`` validated and normalised (an int, a float, a dict or a tuple of strings),
        or a one-line error."""
        if self.kind is dict:
            return _bias(self.name, value)
        if self.kind is tuple:
            strings = _strings(self.name, value, self.allowed)
            if not self.valid(strings):  # a tuple's rule is on its length (DRY's breakers)
                raise InvalidInputError(
                    f"{self.name} has {len(strings)} strings: allowed {self.allowed}"
                )
            return strings
        if self.kind is str:
            if not isinstance(value, str):
                raise InvalidInputError(
                    f"{self.name}={shown(value)} must be a string: {self.allowed}"
                )
            if not self.valid(value):
                raise self._out_of_range(value)
            return check_text(self.name, value)
        if self.name == "temperature":
            return check_temperature(value)
        if self.kind is int:
            # int64: the per-row arrays the filters read, and SQLite's integers
            if (
                isinstance(value, bool)
                or not isinstance(value, int)
                or not -(2**63) <= value < 2**63
                or not self.valid(value)
            ):
                raise self._out_of_range(value)
            return value
        number = _number(self.name, value, self.allowed)
        if not self.valid(number):
            raise self._out_of_range(value)
        return number

    def _out_of_range(self, value: object) -> InvalidInputError:
        return InvalidInputError(
            f"{self.name}={shown(value)} is out of range: allowed {self.allowed}"
        )

    def is_off(self, value: Any) -> bool:
        """Whether ``value`` leaves the stage exactly as if it were absent (or, for a setting
        that does not switch its stage on, is its default)."""
        if self.kind is tuple and isinstance(value, list):
            value = tuple(value)  # a stored config holds its lists as JSON arrays
        return value == self.off or value in self.off_values

    def as_json(self, stage: str | None, group: str | None = None) -> dict[str, Any]:
        """This setting as the page reads it (JSON-ready): its stage, its words and group (its
        own, else ``group``: its stage's), kind, "off" values, rule, help, bounds, example and
        slider."""
        return {
            "name": self.name,
            "stage": stage,
            "title": self.title,
            "group": self.group or group,
            "kind": self.kind.__name__,
            "off": _json_ready(self.off),
            "off_values": [_json_ready(v) for v in self.off_values],
            "activates": self.activates,
            "allowed": self.allowed,
            "help": self.help,
            "bounds": self._bounds(),
            "example": _json_ready(self.example),
            "slider": None if self.slider is None else asdict(self.slider),
        }

    def _bounds(self) -> list[Any] | None:
        """``[low, high, low_open, high_open]`` of a number setting (``None`` for an infinite
        end); temperature's rule (:func:`~sampler.softmax.check_temperature`) is τ >= 0, inf
        included."""
        if self.name == "temperature":
            return [0.0, None, False, False]
        bounds = getattr(self.valid, "bounds", None)
        if bounds is None:
            return None
        low, high, low_open, high_open = bounds
        return [
            None if math.isinf(low) else low,
            None if math.isinf(high) else high,
            low_open,
            high_open,
        ]


def _json_ready(value: Any) -> Any:
    """A setting's value as JSON has it: tuples as lists, a bias's token ids as strings."""
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, Mapping):
        return {str(k): v for k, v in value.items()}
    return value


@dataclass(frozen=True)
class StageSpec:
    """One stage: its name, its pure function, its settings, and the peer its rule follows;
    for the page, its name in words (``title``), its group (a key of :data:`GROUPS`) and a
    one-sentence ``summary`` in plain words (``tests/test_stage_table.py`` requires all three
    of every row)."""

    name: str
    function: Stage
    settings: tuple[Setting, ...]
    peer: str
    required: bool = False  # every order contains it, and it is always listed as active
    # Reshapes logits without dropping tokens by rank or mass (bias, penalties, temperature):
    # the distribution after these, with nothing cut, is what ``entropy_temp`` measures.
    shaping: bool = False
    title: str = ""
    group: str = ""
    summary: str = ""

    def active(self, values: Mapping[str, Any]) -> bool:
        """Whether settings ``values`` (a name → value mapping) switch this stage on."""
        return self.required or any(
            not setting.is_off(values[setting.name])
            for setting in self.settings
            if setting.activates
        )

    def as_json(self) -> dict[str, Any]:
        """This stage as the page reads it: its name, kind, the settings that switch it on,
        its peers, and its words (title, group, summary)."""
        return {
            "name": self.name,
            "required": self.required,
            "shaping": self.shaping,
            "activating": [s.name for s in self.settings if s.activates],
            "peer": self.peer,
            "title": self.title,
            "group": self.group,
            "summary": self.summary,
        }


def between(low: float, high: float, low_open: bool = False, high_open: bool = False):
    def valid(value: float) -> bool:
        above = value > low if low_open else value >= low
        below = value < high if high_open else value <= high
        return above and below

    # read by the page (sampler.serve.page.engine_config), which checks typed values the same way
    valid.bounds = (low, high, low_open, high_open)  # type: ignore[attr-defined]

    return valid
