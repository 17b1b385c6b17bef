"""Random streams are keyed by (seed, prompt, sample): shared across temperatures, never across
prompts, and independent of the batch, its order and Python's hash randomisation."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sampler import SamplingParams
from sampler.experiments.config import RunConfig, load_config
from sampler.generation.generation_row import GenerationRow, prompt_key
from sampler.generation.loop import generate
from sampler.report.summary import summarize
from sampler.sources import load_source

ROOT = Path(__file__).resolve().parents[1]
# Four equal logits: every temperature gives the same uniform distribution, so two rows draw
# the same tokens exactly when they draw from the same random stream.
FLAT = "synthetic:fixed?logits=0,0,0,0"
MARKOV = "synthetic:markov?vocab=300&sharpness=2.0&seed=1"


def tokens(rows: list[GenerationRow], spec: str = FLAT, length: int = 24) -> list[list[int]]:
    done = generate(load_source(spec), rows, max_new_tokens=length, ignore_eos=True)
    return [c.token_ids for c in done]


def test_prompt_key_is_an_independent_sha256_of_the_text():
    digest = hashlib.sha256(b"kalo mesu").digest()
    expected = (int.from_bytes(digest[:4], "little"), int.from_bytes(digest[4:8], "little"))
    assert prompt_key("kalo mesu") == expected


def test_same_prompt_and_sample_share_a_stream_across_temperatures():
    rows = [GenerationRow("A B", SamplingParams(temperature=t, seed=3), 0) for t in (0.5, 1, 2)]
    first, *others = tokens(rows)
    assert all(other == first for other in others)


def test_different_prompts_or_samples_never_share_a_stream():
    params = SamplingParams(seed=3)
    rows = [GenerationRow("A B", params, 0), GenerationRow("C D", params, 0),
            GenerationRow("A B", params, 1)]
    a0, c0, a1 = tokens(rows)
    # 24 uniform draws over 4 tokens: equal sequences by chance have probability 4**-24
    assert a0 != c0 and a0 != a1 and c0 != a1


def test_a_row_draws_the_same_tokens_alone_and_in_any_batch():
    params = [SamplingParams(temperature=t, seed=9, top_k=50) for t in (0.7, 1.3)]
    rows = [GenerationRow(p, q, s) for p in ("kalo mesu", "puzo hena") for q in params
            for s in range(2)]
    together = tokens(rows, MARKOV)
    reversed_batch = tokens(rows[::-1], MARKOV)[::-1]
    alone = [tokens([row], MARKOV)[0] for row in rows]
    assert together == reversed_batch == alone


def test_streams_do_not_depend_on_python_hash_randomisation():
    code = (
        "from sampler import SamplingParams\n"
        "from sampler.generation.loop import GenerationRow, generate\n"
        "from sampler.sources import load_source\n"
        f"rows = [GenerationRow(p, SamplingParams(seed=5), 0) for p in ('kalo', 'mesu')]\n"
        f"out = generate(load_source({MARKOV!r}), rows, max_new_tokens=12)\n"
        "print([c.token_ids for c in out])\n"
    )
    outputs = {
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True,
            env=os.environ | {"PYTHONHASHSEED": seed},
        ).stdout
        for seed in ("1", "2", "random")
    }
    assert len(outputs) == 1


def test_legacy_sample_streams_ignore_the_prompt():
    params = SamplingParams(seed=3)
    rows = [GenerationRow("A B", params, 0, "sample"), GenerationRow("C D", params, 0, "sample")]
    first, second = tokens(rows)
    assert first == second  # the 0.1.0 defect, kept only to resume runs logged then


def test_synthetic_config_distinct_n_rises_with_temperature():
    config = RunConfig.from_dict(load_config(ROOT / "configs" / "synthetic.toml"))
    done = generate(load_source(config.model), config.rows(), max_new_tokens=config.max_new_tokens)
    records = [json.loads(json.dumps(c.to_dict())) for c in done]
    summary = summarize(records)
    # distinct-2 and -3 (the dist-3 fell 0.936 -> 0.734 while prompts shared streams).
    # distinct-1 is not asserted: unique words / all words over a 500-word vocabulary falls
    # when rows get longer, and at τ = 2 they are twice as long as at 1.5.
    for n in (2, 3):
        values = [row[f"distinct_{n}"] for row in summary]
        assert values == sorted(values), (n, values)
    assert [row["temperature"] for row in summary] == sorted(config.temperatures)


@pytest.mark.parametrize("stream", ["prompt", "sample"])
def test_sweep_rows_carry_the_configs_stream(stream):
    config = RunConfig(model=FLAT, prompts=("A", "B"), temperatures=(1.0,), samples=2,
                         stream=stream)
    assert {row.stream for row in config.rows()} == {stream}
