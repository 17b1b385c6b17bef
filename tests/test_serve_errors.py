"""What an adversarial pass sent ``sampler serve`` (issue 18): each is a 4xx JSON error with the
library's message, and the server answers the next request as before.

Each body is sent as raw text, as the attacker wrote it (an integer literal of 401 digits, a
``\\ud800`` escape, 5,000 nested brackets), not through a JSON encoder that would refuse or
change it. The oracle of "healthy after" is a plain next-token request and the page.
"""

import json

import pytest

from sampler.sources.synthetic_spec import parse_synthetic

pytest.importorskip("starlette")
from starlette.testclient import TestClient

from sampler.serve.app import make_app

MARKOV = "synthetic:markov?vocab=300&sharpness=2.0&seed=1"
BASE = "http://127.0.0.1:8765"
JSON_TYPE = {"content-type": "application/json"}
HUGE = "1" + "0" * 400  # an integer beyond float range (1e400 as a float literal is inf)
HUGE_SHOWN = HUGE[:30] + "…(401 digits)"  # messages show a long integer by its start and length
DRY = '"dry_multiplier": 0.8, "order": "llama.cpp"'
BREAKERS_4500 = json.dumps([f"b{i}" for i in range(4500)])  # 45 kB: under the body limit


@pytest.fixture
def client(tmp_path):
    return TestClient(make_app(parse_synthetic(MARKOV), str(tmp_path / "runs.db")), base_url=BASE)


def assert_healthy(client) -> None:
    answer = client.post("/api/next-token", json={"prompt": "kalo mesu", "top": 3})
    assert answer.status_code == 200 and len(answer.json()["top"]) == 3
    assert client.get("/").status_code == 200


def session(prompt: str = "kalo", row: str = '"seed": 1') -> str:
    generation = f'{{"prompt": "{prompt}", "rows": [{{{row}}}], "max_new_tokens": 3}}'
    return f'{{"generations": [{generation}]}}'


@pytest.mark.parametrize(
    ("path", "body", "fragment"),
    [
        ("/api/next-token", '{"prompt": "kalo", "settings": ' + "[" * 5000 + "]" * 5000 + "}",
         "nested more than 32 levels deep"),
        # below json's own recursion limit, but deep enough for repr() in a message to fail
        ("/api/next-token", '{"prompt": ' + "[" * 900 + "]" * 900 + "}",
         "nested more than 32 levels deep"),
        ("/api/next-token", '{"prompt": "kalo \\ud800"}',
         "prompt has a lone surrogate '\\ud800' at character 5: give valid Unicode text"),
        ("/api/generate", '{"prompt": "kalo \\ud800", "rows": [{}]}', "prompt has a lone surr"),
        ("/api/runs", session(prompt="kalo \\ud800"),
         "generations[0]: prompt has a lone surrogate '\\ud800'"),
        ("/api/next-token",
         f'{{"prompt": "kalo", "settings": {{{DRY}, "dry_sequence_breakers": ["kalo \\ud800"]}}}}',
         "dry_sequence_breakers item 'kalo \\ud800' has a lone surrogate '\\ud800'"),
        ("/api/runs", session(row=f'"seed": 1, {DRY}, "dry_sequence_breakers": ["\\udc80"]'),
         "generations[0]: rows[0]: dry_sequence_breakers item '\\udc80' has a lone surrogate"),
        ("/api/next-token",
         f'{{"prompt": "kalo", "settings": {{{DRY}, "dry_sequence_breakers": {BREAKERS_4500}}}}}',
         "dry_sequence_breakers has 4500 strings: allowed a list of at most 64 non-empty"),
        ("/api/next-token", f'{{"prompt": "kalo", "settings": {{"temperature": {HUGE}}}}}',
         f"temperature={HUGE_SHOWN} is beyond float64's range (about 1.8e308): temperature >= 0"),
        ("/api/next-token", f'{{"prompt": "kalo", "settings": {{"top_p": {HUGE}}}}}',
         f"top_p={HUGE_SHOWN} is beyond float64's range (about 1.8e308): allowed 0 < top_p <= 1"),
        ("/api/generate", f'{{"prompt": "kalo", "rows": [{{"xtc_threshold": -{HUGE}}}]}}',
         "rows[0]: xtc_threshold=-10000000000000000000000000000…(401 digits)"),
        ("/api/runs", session(row=f'"seed": 1, "temperature": {HUGE}'),
         "generations[0]: rows[0]: temperature=10000"),
        ("/api/next-token",
         '{"prompt": "kalo", "settings": {"logit_bias": {"18446744073709551616": 1}}}',
         "logit_bias token 18446744073709551616 must be an integer id >= 0"),
        ("/api/next-token", f'{{"prompt": "kalo", "settings": {{"logit_bias": {{"3": {HUGE}}}}}}}',
         "logit_bias[3]=1000000"),
        ("/api/next-token", '{"prompt": "kalo", "settings": {"order": 5}}',
         "order=5 must be a preset (hf, llama.cpp, vllm, webui) or a list of stage names"),
        ("/api/next-token", '{"prompt": "kalo", "settings": {"order": null}}',
         "order=None must be a preset"),
    ],
)
def test_bodies_that_were_a_500_are_a_400_with_the_library_s_message(client, path, body, fragment):
    response = client.post(path, content=body.encode(), headers=JSON_TYPE)
    assert response.status_code == 400, response.text
    assert fragment in response.json()["error"]
    assert client.get("/api/runs").json() == []  # a refused save stored nothing
    assert_healthy(client)


@pytest.mark.parametrize(
    ("query", "fragment"),
    [
        ("/api/runs?limit=²", "limit must be an integer of at most 19 digits 0-9, got '²'"),
        ("/api/runs?limit=" + "9" * 5000, "limit must be an integer of at most 19 digits"),
        ("/api/runs?limit=0", "limit must be an integer in 1..200, got 0"),
        ("/api/runs/latest?offset=-1", "offset must be an integer of at most 19 digits"),
        ("/api/runs/latest?limit=0", "limit must be an integer in 1..20000, got 0"),
        ("/api/runs/latest?limit=20001", "limit must be an integer in 1..20000, got 20001"),
    ],
)
def test_query_integers_are_checked(client, query, fragment):
    response = client.get(query)
    assert response.status_code == 400, response.text
    assert fragment in response.json()["error"]
    assert_healthy(client)
