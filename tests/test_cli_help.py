"""Help pages are short (a phrase per option, no int64 bounds), and the bounds are in the error
a value outside gets; shell completion comes from click (``_SAMPLER_COMPLETE``)."""

import os
import subprocess
import sys

import pytest
from click.testing import CliRunner

from sampler.cli import cli

INT64_DIGITS = "9223372036854775807"


@pytest.mark.parametrize("command", sorted(cli.commands))
def test_help_names_no_int64_bound_and_no_allowed_range(command):
    result = CliRunner().invoke(cli, [command, "--help"])
    assert result.exit_code == 0, result.output
    assert INT64_DIGITS not in result.output
    assert "Allowed:" not in result.output and "INTEGER RANGE" not in result.output


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--top-k", "99999999999999999999"], "-9223372036854775808<=x<=9223372036854775807"),
        (["--top-p", "2"], "allowed 0 < top_p <= 1"),
        (["--penalty-last-n", "-5"], "allowed 0 (all) or a positive integer"),
        (["--logit-bias", "3=500"], "-100"),
    ],
)
def test_the_range_left_out_of_the_help_is_in_the_error(args, named):
    result = CliRunner().invoke(cli, ["chain", *args])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and named in lines[0], lines


def _complete(words: str, cword: int, shell: str = "bash") -> subprocess.CompletedProcess:
    env = dict(os.environ, _SAMPLER_COMPLETE=f"{shell}_complete", COMP_WORDS=words,
               COMP_CWORD=str(cword))
    return subprocess.run([sys.executable, "-m", "sampler"], env=env, capture_output=True,
                          text=True, timeout=60)


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_the_completion_script_is_produced_in_a_real_process(shell):
    env = dict(os.environ, _SAMPLER_COMPLETE=f"{shell}_source")
    result = subprocess.run([sys.executable, "-m", "sampler"], env=env, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "_SAMPLER_COMPLETE" in result.stdout and "sampler" in result.stdout


def test_completion_completes_a_command_name():
    result = _complete("sampler gen", 1)
    assert result.returncode == 0, result.stderr
    assert "plain,generate" in result.stdout.split()


def test_completion_completes_a_model_alias():
    from sampler.sources.model_cache import ALIASES

    result = _complete("sampler generate --model smollm2", 3)
    assert result.returncode == 0, result.stderr
    offered = {line.split(",", 1)[1] for line in result.stdout.split()}
    assert offered == {alias for alias in ALIASES if alias.startswith("smollm2")}
