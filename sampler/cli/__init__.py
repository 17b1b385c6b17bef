"""The ``sampler`` command line: a thin layer over the library.

Every command parses its arguments, calls library functions a user could call from Python,
and prints. Bad input becomes one line on stderr and exit code 2, never a traceback. The
commands live in ``math_commands`` (softmax, chain, verify), ``model_commands`` (generate,
models), ``experiment_commands`` (sweep, compare), ``analyze_command`` (analyze) and
``runlog_commands`` (runs, export, report); ``options`` holds the parsing they share,
including a flag for every setting of the stage table.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import Any

import click

from sampler.cli.output import GuardedOutput, OutputError, closed_stdout_message, discard_stdout
from sampler.errors import InvalidInputError

__all__ = ["COMPLETE_VAR", "cli", "main"]

# Shell completion: `eval "$(_SAMPLER_COMPLETE=bash_source sampler)"` (zsh_source, fish_source).
# Named here so `python -m sampler` answers to it too (click would derive another name there).
COMPLETE_VAR = "_SAMPLER_COMPLETE"


def check_utf8(arguments: Sequence[str]) -> None:
    """Refuse an argument that is not valid UTF-8, naming its option.

    Python hands undecodable argv bytes over as lone surrogates (``b"\\xff"`` becomes
    ``"\\udcff"``), which pass through click and fail much later, when the text is encoded.
    """
    for position, argument in enumerate(arguments):
        if not any("\ud800" <= char <= "\udfff" for char in argument):
            continue
        name, equals, value = argument.partition("=")
        if argument.startswith("--") and equals:
            what = f"{name} value"
        elif position and arguments[position - 1].startswith("-"):
            what, value = f"{arguments[position - 1]} value", argument
        else:
            what, value = f"argument {position + 1}", argument
        shown = value.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
        raise InvalidInputError(
            f"{what} '{shown}' is not valid UTF-8: give UTF-8 text (check the terminal's "
            "or the script's encoding)"
        )


class ShortHelpOption(click.Option):
    """An option whose help is its phrase and default: its allowed range (int64 bounds of 19
    digits) is left to the error message, which names it when a value is outside."""

    def get_help_extra(self, ctx: click.Context) -> Any:
        extra = super().get_help_extra(ctx)
        extra.pop("range", None)
        return extra


class ShortHelpCommand(click.Command):
    """A command whose options are :class:`ShortHelpOption` (their metavar ``INTEGER`` or
    ``FLOAT``, not ``INTEGER RANGE``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for param in self.params:
            if type(param) is click.Option:
                param.__class__ = ShortHelpOption
                if isinstance(param.type, click.types._NumberRangeBase) and not param.metavar:
                    floats = isinstance(param.type, click.FloatRange)
                    param.metavar = "FLOAT" if floats else "INTEGER"


class OneLineErrors(click.Group):
    """A click group whose usage and input errors are a single ``error: ...`` line, exit 2.

    Ctrl-C while a command runs prints ``aborted`` and exits with 130. Output that standard
    output cannot take (closed, a full disk, a closed pipe) is such an error too.
    """

    command_class = ShortHelpCommand

    def main(self, *args: Any, **kwargs: Any) -> Any:
        kwargs["standalone_mode"] = False
        stdout = sys.stdout
        try:
            if stdout is None:  # Python's stdout when file descriptor 1 was closed
                raise InvalidInputError(closed_stdout_message())
            sys.stdout = GuardedOutput(stdout)
            arguments = args[0] if args else kwargs.get("args")
            arguments = sys.argv[1:] if arguments is None else list(arguments)
            check_utf8(arguments)
            if arguments or COMPLETE_VAR in os.environ:  # the shell asks for completions
                kwargs.setdefault("complete_var", COMPLETE_VAR)
                result = super().main(*args, **kwargs)
            else:  # bare `sampler` asks what there is: the help, and no error
                click.echo(self.get_help(click.Context(self, info_name="sampler")))
                result = 0
            sys.stdout.flush()  # output still buffered must fail here, not at the exit
        except (click.ClickException, InvalidInputError, OutputError) as error:
            if isinstance(error, OutputError):
                discard_stdout(stdout)
            message = error.format_message() if isinstance(error, click.ClickException) else error
            click.echo(f"error: {message}", err=True)
            sys.exit(2)
        except (click.Abort, KeyboardInterrupt):
            # click turns Ctrl-C inside a command into Abort; one outside it (while this
            # method runs) arrives as KeyboardInterrupt
            click.echo("aborted", err=True)
            sys.exit(130)
        finally:
            if isinstance(sys.stdout, GuardedOutput):
                sys.stdout = stdout
        sys.exit(result if isinstance(result, int) else 0)


@click.group(cls=OneLineErrors, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="sampler")
def cli() -> None:
    """See and measure what decoding does to a next-token distribution."""


def main() -> None:
    """Console entry point."""
    cli(prog_name="sampler")


# Registering the commands needs `cli` above.
from sampler.cli import (  # noqa: E402, F401
    analyze_command,
    chain_command,
    divergence_command,
    experiment_commands,
    explore_command,
    math_commands,
    model_commands,
    papers_command,
    runlog_commands,
    serve_command,
)
