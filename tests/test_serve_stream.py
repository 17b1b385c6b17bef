"""``POST /api/generate``: the streamed rows against the library, branching, limits, bad input.

Oracles: the library's own ``generate`` / ``batch_steps`` and ``sampler generate`` on the
command line for the tokens; ``distribution`` on logits fetched from the source independently
(the synthetic source's logits are a pure function of the context) for the alternatives.
The tests against a real server (a client that disconnects, a long stream beside other
requests) are in ``test_serve_load.py``.
"""

import json

import numpy as np
import pytest

from sampler import SamplingParams, distribution
from sampler.errors import InvalidInputError
from sampler.generation.compare import first_divergence
from sampler.generation.generation_row import Completion, GenerationRow
from sampler.generation.loop import batch_steps, generate
from sampler.softmax import softmax
from sampler.sources.synthetic_spec import parse_synthetic

starlette = pytest.importorskip("starlette")
from starlette.testclient import TestClient  # noqa: E402

from sampler.serve.app import MAX_BODY_BYTES, make_app  # noqa: E402

JSON_TYPE = {"content-type": "application/json"}

MARKOV = "synthetic:markov?vocab=300&sharpness=2.0&seed=1"
BASE = "http://127.0.0.1:8765"
PROMPT = "kalo mesu"


def events_of(text: str) -> list[tuple[str, dict]]:
    blocks = [block.split("\n") for block in text.strip().split("\n\n")]
    return [(name[len("event: ") :], json.loads(data[len("data: ") :])) for name, data in blocks]


def stream(client, body) -> list[tuple[str, dict]]:
    response = client.post("/api/generate", json=body)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    return events_of(response.text)


@pytest.fixture
def source():
    return parse_synthetic(MARKOV)


@pytest.fixture
def client(source):
    return TestClient(make_app(source, None), base_url=BASE)


def library_rows(start: dict) -> list[GenerationRow]:
    """The rows a start event reports, as the library's rows (each with its seed)."""
    return [
        GenerationRow(PROMPT, SamplingParams(**_settings(row["settings"])), row["sample"])
        for row in start["rows"]
    ]


def _settings(settings: dict) -> dict:
    return settings | {"logit_bias": {int(k): v for k, v in settings["logit_bias"].items()}}


def test_rows_stream_the_library_s_tokens_statistics_text_and_alternatives(client, source):
    rows = [
        {"temperature": 0},
        {"temperature": 0.9, "seed": 7},
        {"temperature": 0.9, "seed": 7, "sample": 1},
        {"temperature": 0.7, "top_p": 0.9, "repetition_penalty": 1.3, "penalty_last_n": 8,
         "seed": 2},
    ]
    events = stream(client, {"prompt": PROMPT, "rows": rows, "max_new_tokens": 12, "top": 6})
    (_, start), *steps, (last, done) = events
    assert last == "done" and {name for name, _ in steps} == {"step"}
    assert start["greedy_row"] == 0 and start["rows"][1]["settings"]["seed"] == 7
    library = generate(source, library_rows(start), max_new_tokens=12, chat=False)
    ids = source.encode(PROMPT, chat=False)
    texts = [""] * len(rows)
    for _, event in steps:
        for item in event["rows"]:
            row, step, completion = item["row"], event["step"], library[item["row"]]
            expected = completion.steps[step]
            assert item["token"] == expected["token"]
            assert item["label"] == source.token_label(item["token"])
            assert item["stats"] == pytest.approx({k: v for k, v in expected.items()
                                                   if k != "token"}, rel=1e-12)
            texts[row] += item["text"]
            context = ids + completion.token_ids[:step]  # the oracle: logits fetched anew
            logits, _ = source.start([context])
            law = distribution(logits[0], library[row].row.params, history=[context])
            top = [t["token"] for t in item["top"]]
            assert top == list(np.argsort(-law, kind="stable")[:6])
            base = softmax(logits[0].astype(np.float64))
            for t in item["top"]:
                assert t["final_p"] == pytest.approx(float(law[t["token"]]), abs=1e-6)
                assert t["base_p"] == pytest.approx(float(base[t["token"]]), abs=1e-9)
    paths = [[s["token"] for s in c.steps] for c in library]
    for row, completion in zip(done["rows"], library, strict=True):
        assert row["token_ids"] == completion.token_ids
        assert row["text"] == completion.text == texts[row["row"]]
        assert row["finish_reason"] == completion.finish_reason
        if row["row"] != 0:
            assert row["divergence_step"] == first_divergence(paths[0], paths[row["row"]])


def test_a_seed_draws_what_sampler_generate_draws_with_that_seed(client):
    from click.testing import CliRunner

    from sampler.cli import cli

    args = ["generate", "--model", MARKOV, "--prompt", PROMPT, "-t", "0.9", "--top-k", "40",
            "--samples", "2", "--seed", "11", "--max-new-tokens", "12", "--json", "--no-log"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    cli_rows = json.loads(result.output)
    rows = [{"temperature": 0.9, "top_k": 40, "seed": 11, "sample": s} for s in (0, 1)]
    *_, (_, done) = stream(client, {"prompt": PROMPT, "rows": rows, "max_new_tokens": 12})
    assert [r["token_ids"] for r in done["rows"]] == [r["token_ids"] for r in cli_rows]
    assert cli_rows[0]["token_ids"] != cli_rows[1]["token_ids"]


def test_a_branch_continues_after_the_forced_alternative_as_the_library_does(client, source):
    rows = [{"temperature": 0}, {"temperature": 1.0, "seed": 5}]
    events = stream(client, {"prompt": PROMPT, "rows": rows, "max_new_tokens": 10, "top": 5})
    start, done = events[0][1], events[-1][1]
    seeded = [{**row, "seed": r["settings"]["seed"]} for row, r in zip(rows, start["rows"],
                                                                        strict=True)]
    at = 3  # the page's branch: row 1's prefix up to step 3, then another of its alternatives
    original = done["rows"][1]["token_ids"]
    alternatives = [t["token"] for t in events[1 + at][1]["rows"][1]["top"]]
    chosen = next(t for t in alternatives if t != original[at])
    forced = [*original[:at], chosen]
    branch = stream(client, {"prompt": PROMPT, "rows": seeded, "forced": forced,
                             "max_new_tokens": 10, "top": 5})
    (_, branch_start), (_, first), *_, (_, branch_done) = branch
    ids = source.encode(PROMPT, chat=False)
    assert branch_start["prompt_tokens"] == len(ids) + len(forced)
    # the branch's first law is the one after the chosen alternative
    logits, _ = source.start([ids + forced])
    law = distribution(logits[0], SamplingParams(**seeded[1]), history=[ids + forced])
    assert first["rows"][1]["top"][0]["token"] == int(np.argmax(law))
    assert first["rows"][0]["token"] == int(np.argmax(logits[0]))  # greedy's continuation
    # and the whole branch is the library's continuation of prompt + forced, same seeds
    completions = [Completion(row, ids + forced) for row in library_rows(start)]
    for _ in batch_steps(source, completions, 10):
        pass
    assert [r["token_ids"] for r in branch_done["rows"]] == [c.token_ids for c in completions]


def test_a_greedy_branch_on_its_own_token_is_the_original_s_tail(client):
    events = stream(client, {"prompt": PROMPT, "rows": [{"temperature": 0}],
                             "max_new_tokens": 10})
    original = events[-1][1]["rows"][0]["token_ids"]
    body = {"prompt": PROMPT, "rows": [{"temperature": 0}], "forced": original[:4],
            "max_new_tokens": 6}
    assert stream(client, body)[-1][1]["rows"][0]["token_ids"] == original[4:10]


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"prompt": PROMPT}, "rows must be a list of 1..8 settings objects"),
        ({"prompt": PROMPT, "rows": []}, "rows must be a list of 1..8"),
        ({"prompt": PROMPT, "rows": [{}] * 9}, "rows has 9 settings objects: at most 8"),
        ({"prompt": PROMPT, "rows": [{}, 3]}, "rows[1] must be an object of SamplingParams"),
        ({"prompt": PROMPT, "rows": [{"top_q": 1}]}, "rows[0]: settings key 'top_q' is unknown"),
        ({"prompt": PROMPT, "rows": [{"top_p": 1.5}]}, "rows[0]: top_p=1.5 is out of range"),
        ({"prompt": PROMPT, "rows": [{"sample": -1}]}, "rows[0].sample must be an integer"),
        ({"prompt": PROMPT, "rows": [{}], "max_new_tokens": 257},
         "max_new_tokens must be an integer in 1..256, got 257"),
        ({"prompt": PROMPT, "rows": [{}], "max_new_tokens": 0}, "max_new_tokens must be"),
        ({"prompt": PROMPT, "rows": [{}], "top": 21}, "top must be an integer in 0..20"),
        ({"prompt": PROMPT, "rows": [{}], "seed": 1}, "request key 'seed' is unknown"),
        ({"prompt": 3, "rows": [{}]}, "prompt must be a string"),
        ({"prompt": PROMPT, "rows": [{}], "forced": [9999]}, "forced token 9999 is outside"),
        ({"prompt": PROMPT, "rows": [{}], "chat": "yes"}, "chat must be true or false"),
        ({"prompt": "a " * 8000, "rows": [{}], "max_new_tokens": 256},
         "with max_new_tokens=256 it exceeds the model's context of 8192 tokens"),
        ([PROMPT], "the request body must be a JSON object"),
    ],
)
def test_bad_generation_requests_are_400_json_naming_the_field(source, body, fragment):
    app = make_app(source, None)
    response = TestClient(app, base_url=BASE).post("/api/generate", json=body)
    assert response.status_code == 400 and fragment in response.json()["error"]
    assert app.state.slots.running == 0  # a refused request holds no slot


def test_malformed_and_oversized_generation_bodies_are_refused(client):
    response = client.post("/api/generate", content=b'{"prompt": ', headers=JSON_TYPE)
    assert response.status_code == 400 and "not valid JSON" in response.json()["error"]
    big = json.dumps({"prompt": "x" * MAX_BODY_BYTES, "rows": [{}]}).encode()
    response = client.post("/api/generate", content=big, headers=JSON_TYPE)
    assert response.status_code == 413
    assert f"request body is over {MAX_BODY_BYTES}" in response.json()["error"]


def test_generations_beyond_the_slots_get_429_json(source):
    app = make_app(source, "unused.db", generations=1)
    client = TestClient(app, base_url=BASE)
    assert app.state.slots.take()  # another generation is running
    body = {"prompt": PROMPT, "rows": [{}], "max_new_tokens": 2}
    for path, payload in (("/api/generate", body), ("/api/runs", {"generations": [body]})):
        response = client.post(path, json=payload)
        assert response.status_code == 429
        assert "all 1 generation slots are taken" in response.json()["error"]
    app.state.slots.free()
    assert stream(client, body)[-1][0] == "done" and app.state.slots.running == 0


class _Failing:
    """The synthetic source, whose sessions fail at their third step."""

    def __init__(self, source, error: Exception) -> None:
        self._source, self._error = source, error

    def __getattr__(self, name):
        return getattr(self._source, name)

    def start(self, prompts):
        logits, session = self._source.start(prompts)
        calls = iter(range(10**6))
        outer = self

        class Session:
            def advance(self, tokens):
                if next(calls) == 2:
                    raise outer._error
                return session.advance(tokens)

        return logits, Session()


@pytest.mark.parametrize(
    ("error", "message"),
    [
        (InvalidInputError("llama.cpp failed to decode a batch (llama_decode=1)"),
         "llama.cpp failed to decode a batch (llama_decode=1)"),
        (RuntimeError("a bug"), "the generation failed (see the server log)"),
    ],
)
def test_an_error_after_the_stream_began_is_an_error_event(source, error, message):
    app = make_app(_Failing(source, error), None)
    events = stream(TestClient(app, base_url=BASE),
                    {"prompt": PROMPT, "rows": [{"temperature": 0}], "max_new_tokens": 8})
    assert [name for name, _ in events] == ["start", "step", "step", "step", "error"]
    assert events[-1][1] == {"error": message}  # one line, no traceback
    assert app.state.slots.running == 0
