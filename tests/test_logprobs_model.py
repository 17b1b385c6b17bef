"""Log-probabilities from ``POST /api/generate`` and from the default llama.cpp model.

The API's numbers are checked against ``sampler generate --json --logprobs`` for the same seed
(the same loop: they must be equal, not close). The llama.cpp model's against
``scipy.special.log_softmax`` of its logits fetched in the test through its own session, and
the chain temperature + top-k transcribed in the test (tolerances: tests/test_logprobs.py).
"""

import json

import numpy as np
import pytest
from conftest import import_llama_cpp_or_skip
from scipy.special import log_softmax
from test_logprobs import (
    MARKOV,
    PROMPT,
    check_entries,
    float32_bound,
    invoke,
    step_logits,
    strict,
    temperature_top_k,
)

from sampler import SamplingParams
from sampler.generation.generation_row import GenerationRow
from sampler.generation.logprobs import LogprobRequest
from sampler.generation.loop import generate
from sampler.sources.synthetic_spec import parse_synthetic


def api_stream(body):
    starlette = pytest.importorskip("starlette")
    assert starlette
    from starlette.testclient import TestClient

    from sampler.serve.app import make_app

    client = TestClient(make_app(parse_synthetic(MARKOV), None), base_url="http://127.0.0.1:8765")
    return client.post("/api/generate", json=body)


def events_of(text: str) -> list[tuple[str, dict]]:
    blocks = [block.split("\n") for block in text.strip().split("\n\n")]
    return [(name[len("event: ") :], strict(data[len("data: ") :])) for name, data in blocks]


@pytest.mark.parametrize("mode", ["raw", "processed"])
def test_the_api_gives_the_numbers_the_command_line_gives(mode):
    row = {"temperature": 0.7, "top_k": 3, "seed": 5}
    response = api_stream(
        {"prompt": PROMPT, "rows": [row], "max_new_tokens": 5, "logprobs": mode,
         "top_logprobs": 4}
    )
    assert response.status_code == 200, response.text
    events = events_of(response.text)
    done = events[-1][1]["rows"][0]
    steps = [data["rows"][0]["logprobs"] for name, data in events if name == "step"]
    cli = invoke(
        "generate", "--model", MARKOV, "--prompt", PROMPT, "-t", "0.7", "--top-k", "3",
        "--seed", "5", "--max-new-tokens", "5", "--json", "--no-log", "--logprobs", mode,
        "--top-logprobs", "4",
    )
    assert cli.exit_code == 0, cli.output
    printed = strict(cli.stdout)
    assert done["token_ids"] == printed["token_ids"]
    assert done["logprobs"] == printed["logprobs"] and steps == printed["logprobs"]["content"]
    assert printed["logprobs"]["mode"] == mode and len(steps[0]["top_logprobs"]) == 4


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        ({"logprobs": "foo"}, "logprobs 'foo' is unknown: use raw or processed"),
        ({"logprobs": "raw", "top_logprobs": -1}, "top_logprobs must be an integer in 0..20"),
        ({"logprobs": "raw", "top_logprobs": 21}, "got 21"),
        ({"top_logprobs": 3}, "top_logprobs goes with logprobs"),
    ],
)
def test_bad_api_values_are_400_naming_them(extra, fragment):
    response = api_stream({"prompt": PROMPT, "rows": [{"seed": 1}], **extra})
    assert response.status_code == 400 and fragment in json.loads(response.text)["error"]


def test_the_default_llamacpp_model_raw_and_processed(gguf):
    import_llama_cpp_or_skip()
    params = SamplingParams(temperature=0.8, top_k=5, seed=11)
    rows = [GenerationRow("Name a colour.", params)]
    for mode in ("raw", "processed"):
        (completion,) = generate(
            gguf, rows, max_new_tokens=5, logprobs=LogprobRequest(mode, 8)
        )
        logits = step_logits(gguf, completion)
        content = completion.logprobs["content"]
        check_entries(content, [log_softmax(row) for row in logits], "raw_logprob")
        processed = [temperature_top_k(row, 0.8, 5) for row in logits]
        bounds = [float32_bound(row / 0.8) for row in logits]
        check_entries(content, processed, "processed_logprob", bounds)
        for entry in content:
            assert np.isfinite(entry["processed_logprob"])
            assert sum(t["processed_logprob"] == -np.inf for t in entry["top_logprobs"]) == 3
            assert bytes(entry["bytes"]) == gguf.text.token_bytes(entry["id"])
