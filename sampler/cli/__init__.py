"""The ``sampler`` command line: a thin layer over the library.

Every command parses its arguments, calls library functions a user could call from Python,
and prints. Bad input becomes one line on stderr and exit code 2, never a traceback. The
commands live in ``math_commands`` (softmax, chain, verify), ``model_commands`` (generate,
models) and ``run_commands`` (sweep, compare, runs, export, analyze, report); ``options`` holds
the parsing they share, including a flag for every setting of the stage table.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from sampler.errors import InvalidInputError

__all__ = ["cli", "main"]


class OneLineErrors(click.Group):
    """A click group whose usage and input errors are a single ``error: ...`` line, exit 2."""

    def main(self, *args: Any, **kwargs: Any) -> Any:
        kwargs["standalone_mode"] = False
        try:
            result = super().main(*args, **kwargs)
        except (click.ClickException, InvalidInputError) as error:
            message = error.format_message() if isinstance(error, click.ClickException) else error
            click.echo(f"error: {message}", err=True)
            sys.exit(2)
        except click.Abort:
            click.echo("aborted", err=True)
            sys.exit(130)
        sys.exit(result if isinstance(result, int) else 0)


@click.group(cls=OneLineErrors, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="sampler")
def cli() -> None:
    """See and measure what decoding does to a next-token distribution."""


def main() -> None:
    """Console entry point."""
    cli()


# Registering the commands needs `cli` above.
from sampler.cli import (  # noqa: E402, F401
    experiment_commands,
    math_commands,
    model_commands,
    runlog_commands,
)
