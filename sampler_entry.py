"""The ``sampler`` console script: the command line, with Ctrl-C safe from the first instant.

It lives outside the ``sampler`` package on purpose: importing anything inside the package
first runs ``sampler/__init__.py`` (numpy, the engine), and the command modules import click
and more. A Ctrl-C during those imports, before the command line's own handler exists, would
otherwise end in a ``KeyboardInterrupt`` traceback and exit code -2 instead of ``aborted`` and
130.
"""

import sys


def main() -> None:
    """Import the command line, then run it; Ctrl-C at any point is ``aborted``, exit 130."""
    try:
        from sampler.cli import main as run
    except KeyboardInterrupt:
        sys.stderr.write("aborted\n")
        sys.exit(130)
    run()
