"""The batch-1 fast paths give the very numbers the general path gives.

Two oracles: generations pinned from the engine before the fast paths existed
(``tests/generation_cases.py``), and the engine's general path itself, run on the same
logits with the fast path switched off. Equality is exact (``==`` on every token and every
statistic): the fast paths compute each number by the same expression, so there is no
rounding to allow for.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from generation_cases import CASES, ENGINE_CASES, FIXTURE, hard_rows, run, run_engine

import sampler.engine.sampling as sampling
from sampler import Sampler, SamplingParams
from sampler.engine.candidates import Candidates
from sampler.engine.rows import RowParams
from sampler.engine.stages import STAGES
from sampler.engine.stats import StepStats


@pytest.mark.parametrize("name, spec, rows, new_tokens", CASES, ids=[c[0] for c in CASES])
def test_generations_match_the_engine_before_the_fast_paths(name, spec, rows, new_tokens):
    pinned = json.loads(FIXTURE.read_text())[name]
    assert run(spec, rows, new_tokens) == pinned


@pytest.mark.parametrize("name, rows, dtype", ENGINE_CASES, ids=[c[0] for c in ENGINE_CASES])
def test_engine_steps_match_the_engine_before_the_fast_paths(name, rows, dtype):
    pinned = json.loads(FIXTURE.read_text())[name]
    assert run_engine(rows, dtype) == pinned


def _steps(params, logits_per_step, fast: bool, monkeypatch) -> list:
    with monkeypatch.context() as patch:
        if not fast:
            patch.setattr(sampling, "greedy_only", lambda params: False)
        engine = Sampler(params, row_keys=[(i,) for i in range(len(params))])
        out = []
        for logits in logits_per_step:
            tokens, stats = engine.step(logits)
            out.append((tokens.tolist(), {n: getattr(stats, n).tolist() for n in
                                          StepStats.__dataclass_fields__}))
        return out


def _same(a, b) -> bool:
    """Equal, NaN equal to NaN (telemetry of stages that are off), and of the same sign."""
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a) ==
                                                     math.copysign(1, b))
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return a == b and type(a) is type(b)


def _hard_rows(dtype, rng) -> np.ndarray:
    """Rows that reach every branch: ties, masked tokens, a maximum of exactly 0, a spread
    beyond the dtype, a tail far below the maximum, a one-token row."""
    width = 5000
    big = np.finfo(dtype).max
    rows = rng.normal(0, 3, (7, width)).astype(dtype)
    rows[1, [10, 400, 4999]] = rows[1].max() + 1  # three tied maxima
    rows[2, ::3] = -np.inf
    rows[3] -= rows[3].max()  # the maximum is exactly 0
    rows[4, 0], rows[4, 1] = big, -big  # x - max overflows to -inf
    rows[5] = -200.0
    rows[5, 17] = 0.0  # every other probability underflows in float32
    rows[6] = -np.inf
    rows[6, 4321] = 1.5
    return rows


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("params", [
    [SamplingParams(temperature=0.0)],
    [SamplingParams(mode="greedy", temperature=0.7, seed=3)] * 7,
    [SamplingParams(temperature=0.0, dynatemp_range=0.5, order="llama.cpp")] * 7,
])
def test_greedy_fast_path_equals_the_general_path(params, dtype, monkeypatch):
    rng = np.random.default_rng(11)
    hard = _hard_rows(dtype, rng)
    steps = [hard[i : i + len(params)] for i in range(0, 7, len(params))]
    steps = [s for s in steps if len(s) == len(params)]
    fast = _steps(params, steps, True, monkeypatch)
    general = _steps(params, steps, False, monkeypatch)
    assert _same(fast, general)
    # the three ties of row 1 give entropy_temp = log 3, the lowest tied id is the token
    if len(params) == 7:
        assert fast[0][0][1] == 10 and fast[0][1]["entropy_temp"][1] == math.log(3)


def test_rows_off_the_fast_path_still_take_the_general_one():
    greedy_top_k = SamplingParams(temperature=0.0, top_k=5)
    assert not sampling.greedy_only([greedy_top_k])
    assert not sampling.greedy_only([SamplingParams(mode="hardmax")])
    assert not sampling.greedy_only([SamplingParams(temperature=0.7)])
    assert sampling.greedy_only([SamplingParams(mode="greedy", temperature=0.7)])


def test_a_stage_that_is_off_leaves_the_candidates_as_they_were():
    """The fast path skips the stages that are off: each must return its input unchanged."""
    rows = RowParams.from_params([SamplingParams(temperature=0.0)] * 2)
    rows = rows.with_history((np.array([1, 2]), np.array([3])))
    candidates = Candidates.dense(np.random.default_rng(0).normal(size=(2, 300)))
    for spec in STAGES:
        if spec.name != "temperature":
            assert spec.function(candidates, rows) is candidates, spec.name


@pytest.mark.parametrize("params", [
    [SamplingParams(temperature=0.0)] * 7,
    [SamplingParams(temperature=0.7, seed=1)] * 7,
    [SamplingParams(temperature=t, seed=2) for t in (0.0, 0.7, 1.0, 2.5, 0.3, 1.0, 0.05)],
], ids=["greedy", "sampled", "mixed"])
def test_logits_read_in_place_give_the_numbers_of_a_copy(params):
    """The GGUF loop reads llama.cpp's logit buffer in place (read-only, at its alignment)
    instead of a copy: the engine must neither write into its input nor depend on where
    it lies in memory. Each offset shifts the rows by 4 bytes within 64."""
    rows = hard_rows("float32")
    owned = Sampler(params, row_keys=[(i,) for i in range(7)]).step(rows)
    for offset in range(16):
        buffer = np.empty(rows.size + 16, dtype=np.float32)
        view = buffer[offset : offset + rows.size].reshape(rows.shape)
        view[...] = rows
        view.flags.writeable = False
        tokens, stats = Sampler(params, row_keys=[(i,) for i in range(7)]).step(view)
        assert tokens.tolist() == owned[0].tolist()
        assert _same([stats.row(i) for i in range(7)], [owned[1].row(i) for i in range(7)])
        assert np.array_equal(view, rows)
