"""Stages at the edges of their ranges, on logits at the edges of float64.

The rule tested: whatever the allowed settings and logits, a stage never leaves a row with no
token, never makes a NaN, and numpy prints no warning; the final distribution is finite, sums
to 1 and has at least one token. An adversarial pass found a tiny repetition penalty, dynamic
temperature and smoothing breaking it (an IndexError in the draw, "logits[1] is nan" for finite
logits, RuntimeWarnings with numpy source lines on stderr). The suite turns RuntimeWarnings
into errors (pyproject filterwarnings), so any warning fails these tests.
"""

import itertools
import json
import math
from dataclasses import replace

import numpy as np
import pytest
from scipy.special import softmax as reference_softmax
from test_bad_input import one_error_line, run_cli

from sampler import SamplingParams
from sampler.engine.filters.dry import TokenTexts
from sampler.engine.sampling import Sampler, distribution
from sampler.errors import InvalidInputError

TINY, HUGE = 5e-324, float(np.finfo(np.float64).max)
EXTREMES = {
    "repetition_penalty": [1e-300, TINY, 1e300, HUGE],
    "dry_multiplier": [HUGE],
    "dynatemp_range": [TINY, 1e308, HUGE],
    "dynatemp_exponent": [0.0, HUGE],
    "top_k": [1, 2**63 - 1],
    "top_p": [TINY],
    "min_p": [TINY, 1.0],
    "typical_p": [TINY],
    "epsilon": [0.9999999999],
    "eta": [TINY],
    "smoothing_factor": [TINY, 10.0],
    "smoothing_curve": [10.0],
    "top_a": [TINY, 1.0],
    "tfs": [0.0],
    "top_n_sigma": [TINY, HUGE],
    "xtc_threshold": [0.0],
    "mirostat_tau": [TINY, HUGE],
    "mirostat_eta": [HUGE],
}
# what a setting that does not switch its stage on needs beside it
_COMPANIONS = {
    "dynatemp_exponent": {"dynatemp_range": 1.0},
    "smoothing_curve": {"smoothing_factor": 1.0},
    "xtc_threshold": {"xtc_probability": 1.0},
    "mirostat_tau": {"mirostat": 2},
    "mirostat_eta": {"mirostat": 1},
}
LOGITS = [[1000.0, 0.0], [1e200, -1e200], [1e308, -1e308], [3.0, 1.0, 0.2], [1e-300, 0.0]]
TEMPERATURES = [0.0, TINY, 1.0, 1e308, math.inf]
HISTORY = [0, 1, 0, 1, 0, 1, 0]  # a repeat, for the penalties and DRY
VOCABULARY = TokenTexts([f"t{i}".encode() for i in range(4)], lambda data: [])


def _cases():
    for name, values in EXTREMES.items():
        for value, temperature, order in itertools.product(
            values, TEMPERATURES, ["hf", "llama.cpp", "webui"]
        ):
            settings = {name: value, **_COMPANIONS.get(name, {})}
            try:
                params = SamplingParams(temperature=temperature, order=order, seed=3, **settings)
            except InvalidInputError:
                continue  # a stage the order lacks
            yield pytest.param(params, id=f"{name}={value:g}-t{temperature:g}-{order}")


def _row(values, dtype):
    row = np.full(4, -np.inf, dtype=dtype)
    row[: len(values)] = values
    return row


@pytest.mark.parametrize("params", list(_cases()))
def test_no_stage_leaves_no_token_nor_a_nan(params):
    for values, dtype in itertools.product(LOGITS, [np.float64, np.float32]):
        if dtype is np.float32 and max(abs(v) for v in values) > float(np.finfo(np.float32).max):
            continue
        logits = _row(values, dtype)
        probs = distribution(logits, params, history=[HISTORY], vocabulary=VOCABULARY)
        assert np.isfinite(probs).all() and (probs > 0).any(), (values, dtype, probs)
        assert probs.sum() == pytest.approx(1.0, abs=1e-6)  # float32 rounding of 4 terms
        sampler = Sampler([params], vocabulary=VOCABULARY)
        for step in range(3):  # mirostat's μ moves between steps
            tokens, _ = sampler.step(logits[None, :], history=[HISTORY + [0] * step])
            assert np.isfinite(logits[tokens[0]])  # never a masked token
        assert np.isfinite(sampler.state["mirostat_mu"]).all() or not params.mirostat


def test_a_tiny_repetition_penalty_saturates_instead_of_overflowing():
    # 1 / 1e-300 is beyond float32: both seen positive logits are held at float32's largest,
    # so they tie; the seen negative one is multiplied by 1e-300 (≈ 0) and the unseen 0.5 stays
    logits = np.array([1.0, 2.0, -1.0, 0.5], dtype=np.float32)
    probs = distribution(logits, SamplingParams(repetition_penalty=1e-300), history=[[0, 1, 2]])
    assert probs.tolist() == [0.5, 0.5, 0.0, 0.0]


def test_dynamic_temperature_on_a_certain_row_is_greedy():
    # H(softmax([1000, 0])) is 0 in float64 (e^-1000 underflows), so τ' = max(0, τ - R) = 0
    for temperature, spread in [(1.0, 1.0), (1e308, 1e308)]:
        params = SamplingParams(temperature=temperature, dynatemp_range=spread)
        assert distribution([1000.0, 0.0], params).tolist() == [1.0, 0.0]


@pytest.mark.parametrize(
    "args",
    [
        ["1e200", "-1e200", "--order", "webui", "--smoothing-factor", "10",
         "--smoothing-curve", "10"],
        ["1000", "0", "-t", "1e308", "--dynatemp-range", "1e308"],
        ["1000", "0", "--repetition-penalty", "1e-300", "--history", "A,B"],
    ],
    ids=["smoothing", "dynatemp", "repetition-penalty"],
)
def test_extreme_chains_on_the_command_line(args):
    result = run_cli("chain", *args, "--json")
    assert result.exit_code == 0, (result.output, result.exception)
    assert result.stderr == ""
    (steps,) = json.loads(result.stdout)["chains"].values()
    # one token keeps all the mass: 1 up to float rounding, which approx's 1e-6 absorbs
    assert steps[-1]["probs"][0] == pytest.approx(1.0) or "--repetition-penalty" in args


def test_a_stage_that_breaks_the_rule_is_named(monkeypatch):
    from sampler.engine import chain

    def broken(candidates, rows):
        return candidates.with_logits(np.full_like(candidates.logits, np.nan))

    monkeypatch.setitem(chain.BY_NAME, "top_k", replace(chain.BY_NAME["top_k"], function=broken))
    with pytest.raises(InvalidInputError, match=r"the top_k stage left row 0 no token.*top_k=2"):
        Sampler([SamplingParams(top_k=2, seed=0)]).step(np.array([[1.0, 2.0, 3.0]]))


# --- DRY and the penalties on `sampler chain`: --history, labels as the vocabulary ------------


def test_chain_runs_dry_with_the_labels_as_its_vocabulary():
    result = run_cli("chain", "3", "2", "1", "0.5", "--labels", "a,b,c,:", "--order",
                     "llama.cpp", "--dry-multiplier", "1", "--dry-allowed-length", "1",
                     "--history", "a,b,c,a,b", "--json")
    assert result.exit_code == 0, (result.output, result.exception)
    steps = json.loads(result.stdout)["chains"]["llama.cpp"]
    # "a b" was followed by c before, and "a b" ends the history: a repeat of length 2 that c
    # would extend, penalised by 1 × 1.75^(2 - 1) (llama.cpp's rule, transcribed)
    expected = reference_softmax([3.0, 2.0, 1.0 - 1.75, 0.5])
    assert steps[-1]["probs"] == pytest.approx(expected.tolist(), rel=1e-12)


def test_chain_says_what_to_type_for_dry_without_history():
    result = run_cli("chain", "--order", "llama.cpp", "--dry-multiplier", "1")
    assert result.exit_code == 0, result.output
    assert "--history A,B,A,B" in result.stdout and "vocabulary=" not in result.output


def test_chain_history_must_use_the_labels():
    one_error_line(run_cli("chain", "3", "2", "--history", "A,Q"), "'Q'", "labels A, B")
