"""Mirostat v1 and v2 against llama.cpp's own samplers, step by step, μ included.

The peer runs through llama-cpp-python's low-level API: a chain of ``temp`` and
``mirostat``/``mirostat_v2`` applied to a ``llama_token_data_array``. After each apply the
array holds the kept candidates with their renormalised probabilities and the selected one;
llama.cpp's private μ is read from the sampler's context struct (its offset checked against the
known initial value 2τ). The oracle at every step: our kept set and probabilities at the peer's
μ, and our μ update from the peer's drawn token equal the peer's next μ.
"""

import ctypes
import math

import numpy as np
import pytest
import scipy.stats

from sampler import Sampler, SamplingParams, distribution
from sampler.errors import InvalidInputError
from tests.conftest import import_llama_cpp_or_skip, resume_after_losing

# mirostat's μ inside llama.cpp's sampler context (llama-cpp-python 0.3.36, llama.cpp 0c1e570):
# after the vocabulary size (v1 only), seed, current seed, τ and η.
MU_OFFSET = {"mirostat": 24, "mirostat-v2": 16}


U = 2.0**-24  # float32's unit roundoff


def _probability_rtol(kept: int, largest: float) -> float:
    """How far llama.cpp's float32 renormalisation can put a kept token's probability from
    ours, relative: its sequential float32 sum of ``kept`` terms ((kept - 1) u), expf and the
    division (3 u), and the scaled logits x / τ (at most ``largest`` in size) rounded to
    float32 before exp, which moves exp(x_i/τ - max) by up to 3 · 2 · largest · u; the same
    again for our own float32 steps."""
    return 2 * (kept + 2 + 6 * largest) * U


def _rows(count: int, vocab: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    zipf = -1.2 * np.log(np.arange(1, vocab + 1))
    return [
        (rng.permutation(zipf) * rng.uniform(1.5, 3.0) + rng.normal(0, 0.3, vocab)).astype(
            np.float32
        )
        for _ in range(count)
    ]


def _peer_steps(lib, rows, temperature, version, tau, eta, seed=7):
    """Per step: (μ before, kept ids, their renormalised p, selected id, μ after)."""
    vocab = len(rows[0])
    if version == 2:
        mirostat = lib.llama_sampler_init_mirostat_v2(seed, tau, eta)
    else:
        mirostat = lib.llama_sampler_init_mirostat(vocab, seed, tau, eta, 100)
    name = lib.llama_sampler_name(mirostat).decode()
    address = mirostat.contents.ctx + MU_OFFSET[name]
    mu = ctypes.c_float.from_address(address)
    assert mu.value == np.float32(2 * np.float32(tau)), "llama.cpp's sampler layout changed"
    temp = lib.llama_sampler_init_temp(temperature)
    steps = []
    for x in rows:
        data = (lib.llama_token_data * len(x))()
        for i, value in enumerate(x):
            data[i].id, data[i].logit, data[i].p = i, float(value), 0.0
        array = lib.llama_token_data_array(data=data, size=len(x), selected=-1, sorted=False)
        before = float(mu.value)
        lib.llama_sampler_apply(temp, ctypes.byref(array))
        lib.llama_sampler_apply(mirostat, ctypes.byref(array))
        kept = np.array([array.data[i].id for i in range(array.size)])
        probs = np.array([array.data[i].p for i in range(array.size)])
        steps.append((before, kept, probs, int(array.data[array.selected].id), float(mu.value)))
    lib.llama_sampler_free(temp)
    lib.llama_sampler_free(mirostat)
    return steps


CASES = [(2, 5.0, 0.1, 1.0), (2, 3.0, 0.3, 0.8), (2, 8.0, 0.5, 1.3), (1, 5.0, 0.1, 1.0),
         (1, 3.0, 0.2, 0.7), (1, 6.0, 0.4, 1.2)]


@pytest.mark.parametrize(("version", "tau", "eta", "temperature"), CASES)
@pytest.mark.parametrize("vocab", [300, 4096])
def test_each_step_matches_llama_cpp_at_its_mu(version, tau, eta, temperature, vocab):
    lib = import_llama_cpp_or_skip()
    rows = _rows(12, vocab, seed=version * 100 + vocab)
    params = SamplingParams(
        temperature=temperature, mirostat=version, mirostat_tau=tau, mirostat_eta=eta,
        order="llama.cpp",
    )
    from sampler.engine.rows import RowParams
    from sampler.engine.state import next_state

    row_params = RowParams.from_params([params])
    for step, (before, kept, probs, chosen, after) in enumerate(
        _peer_steps(lib, rows, temperature, version, tau, eta)
    ):
        ours = distribution(rows[step], params, state={"mirostat_mu": [before]})
        np.testing.assert_array_equal(np.flatnonzero(ours > 0), np.sort(kept), f"step {step}")
        rtol = _probability_rtol(len(kept), float(np.abs(rows[step]).max()) / temperature)
        np.testing.assert_allclose(ours[kept], probs, rtol=rtol, atol=0, err_msg=f"{step}")
        moved = next_state({"mirostat_mu": np.array([before])}, row_params, ours[[chosen]])
        # μ' = μ - η (-log2 p - τ) in float32 there (η and τ float32 too), float64 here: p's
        # relative error over ln 2, plus a few float32 roundings of each term
        surprise = -math.log2(ours[chosen])
        bound = eta * (rtol / math.log(2) + 4 * U * (surprise + tau)) + 4 * U * (
            abs(before) + abs(after))
        assert moved["mirostat_mu"][0] == pytest.approx(after, abs=bound), step


def test_v1_falls_back_to_greedy_where_llama_cpp_does():
    lib = import_llama_cpp_or_skip()
    x = np.full(300, -np.inf, dtype=np.float32)
    x[:10] = np.linspace(3, 0, 10)  # fewer finite tokens than v1's m = 100: no estimate
    (step,) = _peer_steps(lib, [x], 1.0, 1, 5.0, 0.1)
    assert len(step[1]) == 1
    ours = distribution(x, SamplingParams(mirostat=1, order="llama.cpp"))
    assert (ours > 0).sum() == 1 and ours[0] == 1


def test_a_sampler_carries_mu_per_row_and_reports_it():
    rows = np.stack(_rows(1, 500, seed=3) * 3)
    params = [
        SamplingParams(mirostat=2, mirostat_tau=4.0, mirostat_eta=0.2, seed=1),
        SamplingParams(temperature=0.9, seed=2),
        SamplingParams(mirostat=1, mirostat_tau=5.0, seed=3),
    ]
    sampler = Sampler(params)
    expected = np.array([8.0, np.nan, 10.0])  # μ starts at 2τ; NaN where mirostat is off
    for _ in range(5):
        state = sampler.state
        np.testing.assert_allclose(state["mirostat_mu"], expected)
        law = distribution(rows, params, state=state)
        tokens, stats = sampler.step(rows)
        np.testing.assert_allclose(stats.mirostat_mu, expected)
        q = law[np.arange(3), tokens]
        np.testing.assert_allclose(stats.kept_tokens[[0, 2]], (law[[0, 2]] > 0).sum(axis=1))
        for row, tau, eta in ((0, 4.0, 0.2), (2, 5.0, 0.1)):
            expected[row] -= eta * (-np.log2(q[row]) - tau)
    alone = Sampler([params[0]])
    for _ in range(5):
        alone.step(rows[:1])
    np.testing.assert_allclose(alone.state["mirostat_mu"], sampler.state["mirostat_mu"][:1])


def test_draws_follow_the_distribution_at_the_sampler_state():
    # 4,000 rows, each its own stream, one step each, first from μ = 2τ and then from a state
    # given explicitly. Chi-square at a 1e-3 false-alarm rate per test.
    x = _rows(1, 60, seed=11)[0]
    for state in (None, {"mirostat_mu": np.full(4000, 5.5)}):
        params = [SamplingParams(mirostat=2, mirostat_tau=3.0, seed=s) for s in range(4000)]
        law = distribution(x, params[0], state=None if state is None else {"mirostat_mu": [5.5]})
        sampler = Sampler(params, state=state)
        tokens, _ = sampler.step(np.tile(x, (4000, 1)))
        kept = np.flatnonzero(law > 0)
        counts = np.array([(tokens == token).sum() for token in kept])
        assert counts.sum() == 4000
        assert scipy.stats.chisquare(counts, law[kept] * 4000).pvalue > 1e-3


@pytest.mark.parametrize(
    ("settings", "fragment"),
    [
        ({"mirostat": 3}, "mirostat=3 is out of range: allowed 0 (off), 1 or 2"),
        ({"mirostat": 2, "top_k": 40}, "top_k has no effect with mirostat=2"),
        ({"mirostat": 1, "dynatemp_range": 0.5}, "dynatemp_range has no effect with mirostat=1"),
        ({"mirostat": 2, "mirostat_tau": 0.0}, "mirostat_tau=0.0 is out of range"),
        ({"mirostat": 2, "mirostat_eta": -0.1}, "mirostat_eta=-0.1 is out of range"),
    ],
)
def test_bad_mirostat_settings_are_one_clear_error(settings, fragment):
    with pytest.raises(InvalidInputError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        SamplingParams(**settings)


def test_a_bad_state_is_one_clear_error():
    params = SamplingParams(mirostat=2)
    with pytest.raises(InvalidInputError, match="state key 'mu' is unknown"):
        distribution([1.0, 2.0], params, state={"mu": [1.0]})
    with pytest.raises(InvalidInputError, match="must be a finite number on the rows that use it"):
        distribution([1.0, 2.0], params, state={"mirostat_mu": [np.nan]})


def test_with_mirostat_the_chain_is_bias_penalties_temperature_mirostat():
    params = SamplingParams(mirostat=2, repetition_penalty=1.2, order="webui")
    assert params.stages == ("logit_bias", "penalties", "temperature", "mirostat")
    assert SamplingParams(order="webui").stages[-1] != "mirostat"


def test_a_mirostat_sweep_logs_mu_and_resumes_token_for_token(tmp_path):
    from click.testing import CliRunner

    from sampler.cli import cli
    from sampler.runlog.store import RunStore

    db = str(tmp_path / "runs.db")
    args = ["sweep", "--model", "synthetic:markov?vocab=300&sharpness=2.0&seed=1",
            "--prompt", "kalo mesu", "--prompt", "puzo", "--temperatures", "0.8,1.2",
            "--samples", "2", "--max-new-tokens", "12", "--mirostat", "2",
            "--mirostat-tau", "3.0", "--mirostat-eta", "0.5", "--db", db]
    assert CliRunner().invoke(cli, args).exit_code == 0
    with RunStore(db) as store:
        run = store.get_run("latest")
        original = store.completions(run["id"])
    for completion in original:
        mu = [step["mirostat_mu"] for step in completion["steps"]]
        assert mu[0] == 6.0  # 2τ
        for before, after, step in zip(mu, mu[1:], completion["steps"], strict=False):
            # μ moves by η (τ - surprise), the surprise in bits under the final distribution
            assert after == pytest.approx(before - 0.5 * (step["surprisal"] / np.log(2) - 3.0))
        assert all("temperature_chosen" not in step for step in completion["steps"])
    again = resume_after_losing(db, run["id"], (1, 6))
    assert [c["token_ids"] for c in again] == [c["token_ids"] for c in original]
    assert [c["steps"] for c in again] == [c["steps"] for c in original]
    csv_text = CliRunner().invoke(cli, ["export", run["id"], "--format", "csv", "--db", db])
    assert "mirostat_mu" in csv_text.stdout.splitlines()[0]


def test_a_sampler_with_one_params_for_any_batch_has_no_state_before_its_first_step():
    sampler = Sampler(SamplingParams(mirostat=2, seed=1))
    with pytest.raises(InvalidInputError, match="no state before its first step"):
        _ = sampler.state
    sampler.step(np.zeros((2, 5)))
    np.testing.assert_allclose(sampler.state["mirostat_mu"].shape, (2,))
