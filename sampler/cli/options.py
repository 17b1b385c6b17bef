"""The options the commands share (model, seed, temperature, run log, one flag per stage
setting), with clear errors; the number parsers (:mod:`sampler.cli.parse_numbers`) and the
phrase-ban flags (:mod:`sampler.cli.ban_phrase_options`) are importable from here as before."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import click
from click.shell_completion import CompletionItem

from sampler.cli.ban_phrase_options import ban_phrase_options, banned_phrases
from sampler.cli.parse_numbers import parse_logit, parse_temperature, parse_temperatures
from sampler.engine.defaults import DEFAULT_SEED, DEFAULT_TEMPERATURE, parse_seed
from sampler.engine.params import DEFAULT_ORDER, MODES
from sampler.engine.presets import PRESETS
from sampler.engine.settings import Setting
from sampler.engine.stages import SETTINGS
from sampler.errors import InvalidInputError
from sampler.sources import DEFAULT_MODEL, DTYPES

__all__ = [
    "COUNT",
    "DB_HELP",
    "INT64",
    "INT64_MAX",
    "JSON_OPTION",
    "ban_phrase_options",
    "banned_phrases",
    "cache_option",
    "complete_model",
    "db_option",
    "dtype_option",
    "load_model",
    "logged_row",
    "model_option",
    "open_store",
    "order_option",
    "parse_logit",
    "parse_temperature",
    "parse_temperatures",
    "raw_option",
    "sampling_options",
    "seed_option",
    "temperature_option",
    "temperatures_option",
]

DB_HELP = "Run log (SQLite). Default: $SAMPLER_DB, else ~/.local/share/sampler/sampler.db."
MODEL_HELP = "Alias (sampler models), Hugging Face folder or hub id, or synthetic:KIND."
# Integers are stored in SQLite and numpy int64: a larger one is a clear usage error here, not
# an OverflowError deep inside. The lower bounds are each setting's own rule (its message).
INT64_MAX = 2**63 - 1
INT64 = click.IntRange(-INT64_MAX - 1, INT64_MAX)
COUNT = click.IntRange(max=INT64_MAX)  # samples, tokens, rows: checked >= 1 by their rule
db_option = click.option("--db", default=None, metavar="PATH", help=DB_HELP)
# One flag, one meaning: the command's result as one JSON document on stdout (NaN, inf: null).
JSON_OPTION = click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
cache_option = click.option("--cache-dir", default=None, metavar="DIR", help="Model cache folder.")


def complete_model(
    _ctx: click.Context, _param: click.Parameter, incomplete: str
) -> list[CompletionItem]:
    """Shell completion of ``--model``: the aliases (``sampler models``) that start so."""
    from sampler.sources.cache_folder import ALIASES

    return [
        CompletionItem(alias, help=spec.description)
        for alias, spec in ALIASES.items()
        if alias.startswith(incomplete)
    ]


def model_option(default: str | None = DEFAULT_MODEL, help: str = MODEL_HELP) -> Any:
    """``--model``: the logit source (the default model unless the command says otherwise)."""
    return click.option(
        "--model",
        default=default,
        show_default=default is not None,
        metavar="M",
        help=help,
        shell_complete=complete_model,
    )


def order_option(default: str | None = DEFAULT_ORDER) -> Any:
    """``--order``: a chain preset (``sampler chain`` also takes a list of stages)."""
    return click.option(
        "--order",
        type=click.Choice(list(PRESETS)),
        default=default,
        show_default=default is not None,
        help="Chain order: whose order the stages run in.",
    )


def _seed(_ctx: click.Context, _param: click.Parameter, text: str | None) -> int | None:
    if text is None:
        return None
    seed, drawn = parse_seed(text)
    if drawn:
        click.echo(f"seed {seed} (drawn: --seed {seed} repeats this)", err=True)
    return seed


def seed_option(default: int | None = DEFAULT_SEED, help: str = "Seed, or 'random'.") -> Any:
    """``--seed``: an integer >= 0 or ``random`` (drawn, and said on stderr); the default is
    the one rule's (:mod:`sampler.engine.defaults`) unless a command's config gives it."""
    return click.option(
        "--seed",
        default=None if default is None else str(default),
        show_default=default is not None,
        metavar="N|random",
        callback=_seed,
        help=help,
    )


def temperature_option(help: str = "Temperature (0 = greedy).") -> Any:
    """``-t/--temperature``: one temperature, by default the one rule's
    (:data:`sampler.engine.defaults.DEFAULT_TEMPERATURE`); parse it with
    :func:`parse_temperature`."""
    return click.option(
        "-t",
        "--temperature",
        "temperature_text",
        default=f"{DEFAULT_TEMPERATURE:g}",
        show_default=True,
        metavar="T",
        help=help,
    )


# The one chat-template switch (see sampler.engine.defaults): the model's own template unless --raw.
raw_option = click.option(
    "--raw",
    "--no-chat-template",
    "raw",
    is_flag=True,
    help="Send the prompt as it is, without the model's chat template.",
)


def temperatures_option(help: str) -> Any:
    """``-t/--temperature``, repeatable; parse the values with :func:`parse_temperatures`."""
    return click.option(
        "-t", "--temperature", "temperatures", multiple=True, metavar="T", help=help
    )


def dtype_option(default: str | None = "float32") -> Any:
    """``--dtype``: the torch backend's weight type."""
    return click.option(
        "--dtype",
        type=click.Choice(DTYPES),
        default=default,
        show_default=default is not None,
        help="Torch weights (auto: bfloat16 where the CPU has it); others: float32 only.",
    )


def load_model(spec: str, cache_dir: str | None, dtype: str = "float32") -> Any:
    """The logit source ``spec``, its download and conversion progress on stderr."""
    from sampler.sources import load_source

    return load_source(
        spec,
        cache_dir=cache_dir,
        progress=lambda line: click.echo(line, err=True),
        quiet=True,
        dtype=dtype,
    )


def logged_row(db: str | None, run_id: str, row: int) -> tuple[dict, dict]:
    """A logged run and its stored row ``row`` (prompt, token ids; no steps)."""
    store = open_store(db, create=False)
    run = store.get_run(run_id)
    completions = store.completions(run["id"], with_steps=False)
    if not 0 <= row < len(completions):
        raise InvalidInputError(
            f"--row {row} is out of range: run {run['id']} has "
            f"{len(completions)} stored rows (0..{len(completions) - 1})"
        )
    return run, completions[row]


def open_store(db: str | None, create: bool = True) -> Any:
    """The run log at ``db``, or the default (:mod:`sampler.runlog.location`); a command that
    only reads passes ``create=False`` and a missing log is then an error naming its path."""
    from sampler.runlog.store import open_run_log

    return open_run_log(db, create=create)


def _logit_bias(_ctx: click.Context, _param: click.Parameter, items: tuple[str, ...]) -> dict:
    """``ID=BIAS`` items into ``{id: bias}`` (the stage table checks the values)."""
    bias: dict[int, float] = {}
    for item in items:
        token, _, value = item.partition("=")
        try:
            bias[int(token)] = float(value)
        except ValueError:
            raise InvalidInputError(
                f"--logit-bias {item!r} is not ID=BIAS: give e.g. --logit-bias 50256=-100"
            ) from None
    return SETTINGS["logit_bias"].check(bias)  # token ids within int64, biases in range


def _string_list(name: str) -> Callable[[click.Context, click.Parameter, str | None], Any]:
    """A JSON list of strings (escapes such as ``\\n`` work), or ``None`` when not given."""

    def parse(_ctx: click.Context, _param: click.Parameter, text: str | None) -> Any:
        if text is None:
            return SETTINGS[name].off
        flag = f"--{name.replace('_', '-')}"
        try:
            value = json.loads(text)
        except (ValueError, RecursionError):  # RecursionError: arrays nested thousands deep
            shown = text if len(text) <= 60 else text[:60] + "…"
            raise InvalidInputError(
                f"{flag} {shown!r} is not a JSON list of strings: give e.g. "
                '\'["\\n", ":", "\\"", "*"]\''
            ) from None
        return SETTINGS[name].check(value)

    return parse


def _setting_option(setting: Setting) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    flag = "--" + setting.name.replace("_", "-")
    if setting.kind is tuple:
        return click.option(
            flag,
            setting.name,
            default=None,
            metavar="JSON",
            callback=_string_list(setting.name),
            help=f"{setting.help} Default: {json.dumps(list(setting.off))}.",
        )
    if setting.kind is dict:
        return click.option(
            flag,
            setting.name,
            multiple=True,
            metavar="ID=BIAS",
            callback=_logit_bias,
            help=f"{setting.help} Repeatable.",
        )
    return click.option(
        flag,
        type=INT64 if setting.kind is int else click.FLOAT,
        default=setting.off,
        show_default=True,
        help=setting.help,  # what is allowed is in the error a value outside gets
    )


def sampling_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """A flag for every stage setting of the stage table (the constraint's as
    :func:`~sampler.cli.constraint_options.constraint_options`), and ``--mode`` (neutral
    defaults).

    They reach the command as keyword arguments named like ``SamplingParams`` fields.
    """
    from sampler.cli.constraint_options import constraint_options

    # the constraint's two settings (kind str) come from their own flags: --grammar FILE, ...
    options = [_setting_option(s) for s in SETTINGS.values() if s.flag and s.kind is not str]
    options.append(constraint_options)
    options.append(
        click.option("--mode", type=click.Choice(MODES), default="sample", show_default=True)
    )
    for option in reversed(options):
        command = option(command)
    return command
