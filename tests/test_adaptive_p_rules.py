"""Adaptive-p's rules on our side: where the chain runs it, how the sampler moves its state
(closed form), that draws follow ``distribution()`` at a given state, its settings' errors,
and a sweep that logs its telemetry and resumes token for token. Its parity with llama.cpp's
own sampler is tests/test_adaptive_p.py.
"""

import numpy as np
import pytest
import scipy.stats

from sampler import Sampler, SamplingParams, distribution
from sampler.errors import InvalidInputError
from tests.conftest import resume_after_losing


def _row(vocab: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.permutation(-1.1 * np.log(np.arange(1, vocab + 1))) * 2.5).astype(np.float32)


def test_adaptive_p_runs_last_wherever_an_order_lists_it():
    # llama.cpp's common_sampler_init adds adaptive-p after every other sampler (it draws)
    listed_first = SamplingParams(
        adaptive_target=0.3, top_k=5, order=["adaptive_p", "top_k", "temperature"]
    )
    assert listed_first.stages == ("top_k", "temperature", "adaptive_p")
    assert SamplingParams(order="llama.cpp").stages[-2:] == ("temperature", "adaptive_p")
    last = SamplingParams(
        adaptive_target=0.3, top_k=5, order=["top_k", "temperature", "adaptive_p"]
    )
    x = _row(200, seed=9)
    np.testing.assert_array_equal(distribution(x, listed_first), distribution(x, last))
    # the page's engine reads the same rule from SamplingParams' chain (engine.js, rowOf)


def test_the_sampler_moves_its_average_by_the_drawn_tokens_prior_probability():
    # closed form: S0 = t/(1-d), W0 = 1/(1-d); after drawing a token of pre-transform
    # probability p: S = p + d·S0, W = 1 + d·W0, and the next target is clip(2t - S/W, 0, 1)
    target, decay = 0.4, 0.5
    params = [
        SamplingParams(adaptive_target=target, adaptive_decay=decay, seed=s, order="llama.cpp")
        for s in range(6)
    ]
    x = _row(80, seed=2)
    prior = distribution(x, SamplingParams(order="llama.cpp"))  # the chain before adaptive-p
    sampler = Sampler(params)
    tokens, stats = sampler.step(np.tile(x, (6, 1)))
    np.testing.assert_allclose(stats.adapted_target, target)
    np.testing.assert_allclose(stats.adaptive_average, target)
    total = prior[tokens] + decay * target / (1 - decay)
    weight = 1 + decay / (1 - decay)
    np.testing.assert_allclose(sampler.state["adaptive_p_sum"], total)
    np.testing.assert_allclose(sampler.state["adaptive_p_weight"], weight)
    _, stats = sampler.step(np.tile(x, (6, 1)))
    np.testing.assert_allclose(stats.adaptive_average, total / weight)
    np.testing.assert_allclose(stats.adapted_target, np.clip(2 * target - total / weight, 0, 1))
    # rows without adaptive-p report nothing
    _, plain = Sampler([SamplingParams(seed=1)]).step(x[None, :])
    assert np.isnan(plain.adaptive_average[0]) and "adapted_target" not in plain.row(0)


@pytest.mark.parametrize(
    ("settings", "fragment"),
    [
        ({"adaptive_target": -1.5}, "adaptive_target=-1.5 is out of range: allowed -1 <="),
        ({"adaptive_target": 1.5}, "adaptive_target=1.5 is out of range"),
        ({"adaptive_target": 0.3, "adaptive_decay": 1.0}, "adaptive_decay=1.0 is out of range"),
        ({"adaptive_target": 0.3, "order": "hf"}, "adaptive_p is set but the chain"),
        ({"adaptive_target": 0.3, "mirostat": 2}, "adaptive_p has no effect with mirostat=2"),
    ],
)
def test_bad_adaptive_p_settings_are_one_clear_error(settings, fragment):
    with pytest.raises(InvalidInputError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        SamplingParams(**settings)


def test_a_bad_adaptive_state_is_one_clear_error():
    params = SamplingParams(adaptive_target=0.3, order="llama.cpp")
    with pytest.raises(InvalidInputError, match="adaptive_p_sum'\\] must be a finite number >= 0"):
        distribution([1.0, 2.0], params, state={"adaptive_p_sum": [-1.0]})


def test_an_adaptive_p_sweep_logs_its_average_and_resumes_token_for_token(tmp_path):
    from click.testing import CliRunner

    from sampler.cli import cli
    from sampler.runlog.store import RunStore

    db = str(tmp_path / "runs.db")
    args = ["sweep", "--model", "synthetic:markov?vocab=300&sharpness=2.0&seed=1",
            "--prompt", "kalo mesu", "--prompt", "puzo", "--temperatures", "0.8,1.2",
            "--samples", "2", "--max-new-tokens", "12", "--order", "llama.cpp",
            "--adaptive-target", "0.3", "--adaptive-decay", "0.6", "--db", db]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    with RunStore(db) as store:
        run = store.get_run("latest")
        original = store.completions(run["id"])
    for completion in original:
        steps = completion["steps"]
        # the first average is the target; approx's default (1e-6 relative) absorbs the
        # float32 rounding (2^-24) a state of the row's dtype may add, and 2 τ - a's float64 ops
        assert steps[0]["adaptive_average"] == pytest.approx(0.3)
        for step in steps:
            adapted = min(max(2 * 0.3 - step["adaptive_average"], 0.0), 1.0)
            assert step["adapted_target"] == pytest.approx(adapted)
    again = resume_after_losing(db, run["id"], (1, 6))
    assert [c["token_ids"] for c in again] == [c["token_ids"] for c in original]
    assert [c["steps"] for c in again] == [c["steps"] for c in original]


def test_draws_follow_the_distribution_at_a_given_state():
    # 4,000 rows, each its own stream, one step from an explicit state whose average (0.05)
    # moves the target to 2·0.3 − 0.05 = 0.55. Chi-square at a 1e-3 false-alarm rate.
    x = _row(60, seed=11)
    state = {"adaptive_p_sum": 0.5, "adaptive_p_weight": 10.0}
    params = [
        SamplingParams(adaptive_target=0.3, order="llama.cpp", seed=s) for s in range(4000)
    ]
    law = distribution(x, params[0], state=state)
    assert np.abs(law - distribution(x, params[0])).max() > 0.05  # the state matters here
    tokens, stats = Sampler(params, state=state).step(np.tile(x, (4000, 1)))
    np.testing.assert_allclose(stats.adapted_target, 0.55)
    counts = np.bincount(tokens, minlength=len(x))
    expected = law.astype(np.float64) / law.sum(dtype=np.float64) * 4000  # float32 rounding
    assert scipy.stats.chisquare(counts, expected).pvalue > 1e-3


def test_any_negative_target_is_off_as_in_llama_cpp():
    params = SamplingParams(adaptive_target=-0.25, order="llama.cpp")
    assert params.adaptive_target == -1.0 and "adaptive_p" not in params.active_stages
    assert SamplingParams(adaptive_target=-0.25, order="hf").adaptive_target == -1.0
