"""`trace_chain` and `sampler chain`: the distribution after each stage."""

import itertools
import json

import numpy as np
import pytest
import scipy.special
import scipy.stats
from click.testing import CliRunner

from sampler import SamplingParams, distribution
from sampler.cli import cli
from sampler.engine.trace import trace_chain

LOGITS = [3.0, 2.5, 1.0, 0.2]


# Stage by stage for the cheat sheet's example, worked by hand: (stage, kept tokens, τ applied
# so far). min-p 0.2 keeps x_i ≥ x_max + τ·log 0.2 = x_max − 1.609τ:
# - hf: τ = 2, top-k 3 drops D, then min-p's floor 1.5 − 1.609 = −0.11 (in x/τ) keeps C (0.5);
# - llama.cpp: top-k 3 drops D, min-p at τ = 1 has floor 3 − 1.609 = 1.39 and drops C (1.0);
# - vllm: τ = 2, min-p's floor −0.11 keeps D (0.1), then top-k 3 drops it.
CHEAT_SHEET_TRACES = {
    "hf": [
        ("input", [0, 1, 2, 3], 1.0),
        ("temperature", [0, 1, 2, 3], 2.0),
        ("top_k", [0, 1, 2], 2.0),
        ("min_p", [0, 1, 2], 2.0),
        ("final", [0, 1, 2], 2.0),
    ],
    "llama.cpp": [
        ("input", [0, 1, 2, 3], 1.0),
        ("top_k", [0, 1, 2], 1.0),
        ("min_p", [0, 1], 1.0),
        ("temperature", [0, 1], 2.0),
        ("final", [0, 1], 2.0),
    ],
    "vllm": [
        ("input", [0, 1, 2, 3], 1.0),
        ("temperature", [0, 1, 2, 3], 2.0),
        ("min_p", [0, 1, 2, 3], 2.0),
        ("top_k", [0, 1, 2], 2.0),
        ("final", [0, 1, 2], 2.0),
    ],
}


@pytest.mark.parametrize("order", ["hf", "llama.cpp", "vllm"])
def test_trace_ends_in_the_closed_form_and_only_shrinks(order):
    params = SamplingParams(temperature=2.0, min_p=0.2, top_k=3, order=order)
    steps = trace_chain(LOGITS, params)
    expected = CHEAT_SHEET_TRACES[order]
    assert [s.stage for s in steps] == [stage for stage, _, _ in expected]
    x = np.array(LOGITS)
    base = scipy.special.softmax(x)
    for step, (stage, kept, tau) in zip(steps, expected, strict=True):
        # Each stage's distribution is softmax of the kept logits over the τ applied so far.
        probs = np.zeros(len(x))
        probs[kept] = scipy.special.softmax(x[kept] / tau)
        # float64 softmax of ≤ 3 kept logits on both sides: a few ulps of numbers ≤ 1
        np.testing.assert_allclose(step.probs, probs, atol=1e-12, err_msg=stage)
        assert step.entropy == pytest.approx(scipy.stats.entropy(probs), abs=1e-12), stage
        assert step.kept_tokens == len(kept), stage
        assert step.kept_mass == pytest.approx(base[kept].sum(), abs=1e-12), stage
    # Only shrinks: every stage's kept set lies inside the one before it.
    kept_sets = [{i for i, v in enumerate(step.logits) if v is not None} for step in steps]
    assert kept_sets == [set(kept) for _, kept, _ in expected]
    for before, after in itertools.pairwise(kept_sets):
        assert after <= before
    # README's and docs/engine.md's `sampler chain` tables print these finals (rounded to 4 places).
    readme = {"hf": [0.4658, 0.3628, 0.1714, 0], "llama.cpp": [0.5622, 0.4378, 0, 0]}
    readme["vllm"] = readme["hf"]
    # the tables print 4 decimals: half a unit of the last
    np.testing.assert_allclose(steps[-1].probs, readme[order], atol=5e-5)
    np.testing.assert_allclose(steps[-1].probs, distribution(LOGITS, params), atol=1e-12)


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
    # one block per preset: hf, llama.cpp, vllm, webui
    lines = result.output.splitlines()
    headers = [line.split(":")[0] for line in lines if line.startswith("order ")]
    assert headers == ["order hf", "order llama.cpp", "order vllm", "order webui"]
    assert "min_p" in result.output
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
