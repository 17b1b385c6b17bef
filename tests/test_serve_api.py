"""``sampler serve``'s JSON API through Starlette's test client, on a synthetic model.

The oracle for the numbers is the library itself called independently in the test on the
logits the server returns (``sampler.distribution``), and numpy for the decoding of the row.
"""

import base64
import json
import threading
import time

import numpy as np
import pytest

from sampler import SamplingParams, distribution
from sampler.sources.synthetic_spec import parse_synthetic

starlette = pytest.importorskip("starlette")
from starlette.testclient import TestClient  # noqa: E402

from sampler.serve.app import MAX_BODY_BYTES, make_app  # noqa: E402

JSON_TYPE = {"content-type": "application/json"}

MARKOV = "synthetic:markov?vocab=300&sharpness=2.0&seed=1"
BASE = "http://127.0.0.1:8765"


@pytest.fixture
def client():
    return TestClient(make_app(parse_synthetic(MARKOV), None), base_url=BASE)


def test_the_next_token_law_is_the_library_s_on_the_returned_logits(client):
    settings = {"temperature": 0.7, "top_k": 20, "min_p": 0.02}
    response = client.post("/api/next-token", json={"prompt": "kalo mesu", "settings": settings,
                                                    "forced": [3, 4], "seed": 5, "top": 10})
    assert response.status_code == 200, response.text
    answer = response.json()
    logits = np.frombuffer(base64.b64decode(answer["logits_float32_b64"]), dtype="<f4")
    assert logits.size == answer["vocab_size"] == 300
    source = parse_synthetic(MARKOV)
    ids = [*source.encode("kalo mesu", chat=False), 3, 4]
    law = distribution(logits, SamplingParams(**settings), history=[ids])
    for item in answer["top"]:
        assert item["final_p"] == pytest.approx(float(law[item["token"]]), abs=1e-6)
    assert [t["token"] for t in answer["top"]] == list(np.argsort(-law, kind="stable")[:10])
    assert answer["stats"]["kept_tokens"] == int((law > 0).sum())
    assert law[answer["draw"]["token"]] > 0
    assert [s["stage"] for s in answer["trace"]] == ["input", "temperature", "top_k", "min_p",
                                                     "final"]


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"prompt": "kalo", "settings": {"top_p": 1.5}}, "top_p=1.5 is out of range"),
        ({"prompt": "kalo", "settings": {"top_q": 1}}, "settings key 'top_q' is unknown"),
        ({"prompt": 3}, "prompt must be a string"),
        ({"prompt": "kalo", "forced": [9999]}, "forced token 9999 is outside the vocabulary"),
        ({"prompt": "kalo", "extra": 1}, "request key 'extra' is unknown"),
        ({"prompt": "kalo", "top": 0}, "top must be an integer in 1..200"),
        ({"prompt": "x" * 20_001}, "at most 20000"),
    ],
)
def test_bad_requests_are_400_json_naming_the_field(client, body, fragment):
    response = client.post("/api/next-token", json=body)
    assert response.status_code == 400
    assert fragment in response.json()["error"]


def test_malformed_json_and_oversized_bodies_are_refused(client):
    response = client.post("/api/next-token", content=b"{not json", headers=JSON_TYPE)
    assert response.status_code == 400 and "not valid JSON" in response.json()["error"]
    big = json.dumps({"prompt": "x" * (MAX_BODY_BYTES + 10)}).encode()
    response = client.post("/api/next-token", content=big, headers=JSON_TYPE)
    assert response.status_code == 413


def test_a_foreign_host_header_is_refused(client):
    # DNS rebinding: a page of evil.example resolving to 127.0.0.1 sends its own Host
    response = client.post("/api/next-token", json={"prompt": "kalo"},
                           headers={"host": "evil.example:8765"})
    assert response.status_code == 421
    assert client.get("/", headers={"host": "localhost:8765"}).status_code == 200


def test_the_page_has_a_strict_content_security_policy(client):
    import base64
    import hashlib
    import re

    response = client.get("/")
    header = response.headers["content-security-policy"]
    policy = dict(part.strip().split(" ", 1) for part in header.split(";"))
    assert policy["default-src"] == "'none'" and policy["frame-ancestors"] == "'none'"
    assert policy["connect-src"] == "'self'" and "unsafe" not in str(policy)

    def digest(text: str) -> str:
        return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"

    # exactly the page's inline code runs: its one script and one style, by their hashes
    scripts = re.findall(r"<script>(.*?)</script>", response.text, re.S)
    styles = re.findall(r"<style>(.*?)</style>", response.text, re.S)
    assert [policy["script-src"], policy["style-src"]] == [digest(scripts[0]), digest(styles[0])]
    assert len(scripts) == len(styles) == 1


def test_the_run_log_is_browsable_and_an_unknown_run_is_a_4xx(tmp_path):
    from click.testing import CliRunner

    from sampler.cli import cli
    from sampler.runlog.store import RunStore

    db = str(tmp_path / "runs.db")
    args = ["generate", "--model", MARKOV, "--prompt", "kalo", "-t", "0.8",
            "--max-new-tokens", "4", "--seed", "1", "--db", db]
    assert CliRunner().invoke(cli, args).exit_code == 0
    client = TestClient(make_app(parse_synthetic(MARKOV), db), base_url=BASE)
    runs = client.get("/api/runs").json()
    assert len(runs) == 1 and runs[0]["kind"] == "generate"
    view = client.get(f"/api/runs/{runs[0]['id']}").json()
    (completion,) = view["completions"]
    assert 1 <= len(completion["steps"]) == len(completion["token_ids"]) <= 4
    missing = client.get("/api/runs/20990101-000000-beef")
    assert 400 <= missing.status_code < 500 and "error" in missing.json()
    assert client.get("/api/runs?limit=abc").status_code == 400
    with RunStore(db) as store:  # the log is intact after the server read it
        assert store._conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_concurrent_clients_are_served_one_model_call_at_a_time(client):
    # 8 clients for about 2 s: every request answered, no error, each answer complete
    results, stop = [], time.monotonic() + 2.0

    def worker() -> None:
        while time.monotonic() < stop:
            response = client.post("/api/next-token", json={"prompt": "kalo mesu", "top": 5})
            results.append((response.status_code, len(response.json().get("top", []))))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results and all(result == (200, 5) for result in results)


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"prompt": "kalo", "chat": "yes"}, "chat must be true or false"),
        ({"prompt": "kalo", "seed": -1}, "seed must be an integer >= 0"),
        ({"prompt": "kalo", "forced": 3}, "forced must be a list"),
        ({"prompt": "kalo", "forced": [1.5]}, "forced token 1.5 is not a token id"),
        ({"prompt": "kalo", "settings": {"logit_bias": {"x": 1}}}, "logit_bias keys"),
        ({"prompt": "kalo", "settings": [1]}, "settings must be an object"),
        (["kalo"], "must be a JSON object"),
    ],
)
def test_more_bad_requests_are_400_json(client, body, fragment):
    response = client.post("/api/next-token", json=body)
    assert response.status_code == 400 and fragment in response.json()["error"]


def test_serve_refuses_to_bind_every_address_and_names_the_extra_it_needs():
    from click.testing import CliRunner

    from sampler.cli import cli
    from tests.test_bad_input import one_error_line

    result = CliRunner().invoke(cli, ["serve", "--model", MARKOV, "--host", "0.0.0.0"])
    one_error_line(result, "--host '0.0.0.0' binds every address", "--host 192.168.1.5")


@pytest.mark.parametrize(
    ("headers", "status", "fragment"),
    [
        ({"content-type": "text/plain"}, 400, "send the body as application/json"),
        ({"content-type": "application/x-www-form-urlencoded"}, 400, "application/json"),
        ({"content-type": "application/json", "origin": "https://evil.example"}, 403,
         "'https://evil.example' is refused"),
        ({"content-type": "application/json", "origin": "null"}, 403, "'null' is refused"),
        ({"content-type": "application/json", "sec-fetch-site": "cross-site"}, 403, "cross-site"),
    ],
)
def test_requests_another_site_could_send_are_refused(tmp_path, headers, status, fragment):
    # CSRF: a page of another site (or a file) may POST text/plain or a form without a CORS
    # preflight; the server refuses those, and any request whose Origin is not its own
    app = make_app(parse_synthetic(MARKOV), str(tmp_path / "runs.db"), "127.0.0.1", 8765)
    client = TestClient(app, base_url="http://127.0.0.1:8765")
    body = json.dumps({"generations": [{"prompt": "kalo", "rows": [{"seed": 1}]}]})
    response = client.post("/api/runs", content=body, headers=headers)
    assert response.status_code == status and fragment in response.json()["error"]
    assert client.get("/api/runs").json() == []  # nothing was written
    same_origin = {"content-type": "application/json", "origin": "http://127.0.0.1:8765"}
    assert client.post("/api/runs", content=body, headers=same_origin).status_code == 201


def test_non_finite_numbers_and_huge_integers_are_never_a_500(tmp_path):
    app = make_app(parse_synthetic(MARKOV), str(tmp_path / "runs.db"), "127.0.0.1", 8765)
    client = TestClient(app, base_url="http://127.0.0.1:8765")
    huge = client.post("/api/next-token", json={"prompt": "kalo", "settings": {"top_k": 10**23}})
    assert huge.status_code == 400 and "top_k=" in huge.json()["error"]
    # Python's JSON reader takes Infinity (the page's JSON.stringify never writes it)
    body = {"generations": [{"prompt": "kalo", "rows": [{"seed": 1, "temperature": 1e400}],
                             "max_new_tokens": 3}]}
    saved = client.post("/api/runs", content=json.dumps(body), headers=JSON_TYPE)
    assert saved.status_code == 201
    opened = client.get(f"/api/runs/{saved.json()['id']}")
    assert opened.status_code == 200  # τ = inf is stored; JSON shows it as null
    assert opened.json()["run"]["config"]["generations"][0]["rows"][0]["temperature"] is None
    assert client.get("/api/runs/no-such-run").status_code == 404
    hot = {"prompt": "kalo", "rows": [{"seed": 1, "temperature": 1e400}], "max_new_tokens": 2}
    streamed = client.post("/api/generate", content=json.dumps(hot), headers=JSON_TYPE)
    assert streamed.status_code == 200 and "event: done" in streamed.text
    assert '"temperature":null' in streamed.text  # the start event's settings, JSON-safe
