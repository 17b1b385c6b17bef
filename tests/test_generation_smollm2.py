"""The default model, SmolLM2-135M-Instruct: greedy equals `model.generate`, batched too.

Needs the cached model, which README's first command (and so .ci/run) fetches. Locally the
tests skip when it is absent; under CI=true its absence is a failure, so CI cannot pass
without running them.
"""

import os

import pytest

pytest.importorskip("torch")

from conftest import hf_greedy
from test_generation_hf import assert_batch_changes_statistics_only_through_logits

from sampler import SamplingParams
from sampler.generation.generation_row import GenerationRow
from sampler.generation.loop import generate
from sampler.sources.model_cache import cache_root, model_folder

PROMPTS = [
    "What is the capital of France?",
    "Write one sentence about the sea.",
    "List three colours.",
]


@pytest.fixture(scope="module")
def smollm2():
    if not (model_folder("smollm2-135m", cache_root()) / "manifest.json").is_file():
        if os.environ.get("CI"):
            pytest.fail(
                "SmolLM2 is not cached: README's first command must fetch it before the tests run"
            )
        pytest.skip("SmolLM2 is not cached: run README's first command to fetch it")
    from sampler.sources import load_source

    return load_source("smollm2-135m", quiet=True)


@pytest.mark.parametrize("prompts", [PROMPTS[:1], PROMPTS])
def test_greedy_matches_generate_token_for_token(smollm2, prompts):
    rows = [GenerationRow(p, SamplingParams(temperature=0)) for p in prompts]
    ours = generate(smollm2, rows, max_new_tokens=24)
    assert len(prompts) == 1 or len({len(c.prompt_ids) for c in ours}) > 1  # left padding
    assert [c.token_ids for c in ours] == hf_greedy(smollm2, [c.prompt_ids for c in ours], 24)
    assert "Paris" in ours[0].text


def test_temperatures_share_one_batch_and_keep_their_distributions(smollm2):
    rows = [
        GenerationRow(PROMPTS[1], SamplingParams(temperature=tau, seed=5))
        for tau in (0.3, 1.0, 1.6)
    ]
    together = generate(smollm2, rows, max_new_tokens=6)
    alone = [generate(smollm2, [row], max_new_tokens=6)[0] for row in rows]
    # a batch of 3 rows runs other float32 kernels than one row: bounded by the logits' gap
    assert_batch_changes_statistics_only_through_logits(
        smollm2, together, alone, ("entropy_base", "entropy_final", "surprisal")
    )
    first = [c.steps[0]["entropy_temp"] for c in together]
    assert first[0] < first[1] < first[2]
