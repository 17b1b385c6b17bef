"""`trace_chain` and `sampler chain`: the distribution after each stage."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from sampler import SamplingParams, distribution
from sampler.cli import cli
from sampler.engine.trace import trace_chain

LOGITS = [3.0, 2.5, 1.0, 0.2]


@pytest.mark.parametrize("order", ["hf", "llama.cpp", "vllm"])
def test_trace_ends_in_the_distribution_and_only_shrinks(order):
    params = SamplingParams(temperature=2.0, min_p=0.2, top_k=3, order=order)
    steps = trace_chain(LOGITS, params)
    assert steps[0].stage == "input" and steps[-1].stage == "final"
    np.testing.assert_allclose(steps[-1].probs, distribution(LOGITS, params), atol=1e-12)
    kept = [step.kept_tokens for step in steps]
    assert kept == sorted(kept, reverse=True)
    assert [s.stage for s in steps[1:-1]] == [n for n in params.stages if n in params.active_stages]


def test_min_p_before_or_after_temperature_keeps_different_sets():
    kept = {
        order: trace_chain(LOGITS, SamplingParams(temperature=2.0, min_p=0.2, order=order))[
            -1
        ].kept_tokens
        for order in ("hf", "llama.cpp")
    }
    assert kept == {"hf": 4, "llama.cpp": 2}


def test_chain_command_all_orders_and_json():
    runner = CliRunner()
    result = runner.invoke(
        cli, ["chain", "3", "2.5", "1", "0.2", "-t", "2", "--min-p", "0.2", "--order", "all"]
    )
    assert result.exit_code == 0, result.output
    assert result.output.count("order ") == 3 and "min_p" in result.output
    result = runner.invoke(cli, ["chain", "--top-k", "2", "--json"])
    data = json.loads(result.output)
    final = data["chains"]["hf"][-1]
    assert data["labels"] == ["A", "B", "C"] and final["kept_tokens"] == 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--top-p", "1.5"], "top_p=1.5 is out of range"),
        (["--top-k", "x"], "'x' is not a valid integer"),
        (["--order", "hf,foo"], "stage 'hf' is unknown"),
        (["1", "2", "--labels", "a"], "1 labels given for 2 logits"),
        (["-t", "-1"], "temperature=-1 is out of range"),
        (["--top-n-sigma", "1"], "top_n_sigma is set but the chain"),
    ],
)
def test_chain_bad_input(args, message):
    result = CliRunner().invoke(cli, ["chain", *args])
    assert result.exit_code == 2
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
