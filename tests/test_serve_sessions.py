"""``POST /api/runs``: a session saved as a ``serve`` run, read back like any run, bad input.

The oracle for what is logged is the library's ``generate`` on the same rows and seeds: the
log must hold the engine's statistics, whatever a client sends.
"""

import json

import pytest
from test_serve_stream import BASE, MARKOV, PROMPT, stream

from sampler import SamplingParams
from sampler.generation.generation_row import GenerationRow
from sampler.generation.loop import generate
from sampler.runlog.store import RunStore
from sampler.sources.synthetic_spec import parse_synthetic

pytest.importorskip("starlette")
from starlette.testclient import TestClient

from sampler.serve.app import MAX_BODY_BYTES, make_app

JSON_TYPE = {"content-type": "application/json"}

ROWS = [{"temperature": 0, "seed": 0}, {"temperature": 0.9, "top_k": 30, "seed": 4},
        {"temperature": 0.9, "top_k": 30, "seed": 4, "sample": 1}]


@pytest.fixture
def db(tmp_path):
    return str(tmp_path / "runs.db")


@pytest.fixture
def client(db):
    return TestClient(make_app(parse_synthetic(MARKOV), db), base_url=BASE)


def _rows() -> list[GenerationRow]:
    return [
        GenerationRow(PROMPT, SamplingParams(**{k: v for k, v in row.items() if k != "sample"}),
                      row.get("sample", 0))
        for row in ROWS
    ]


def _session(client, forced=()):
    """A generation streamed as the page holds it: its request, with the tokens it got."""
    request = {"prompt": PROMPT, "rows": ROWS, "forced": list(forced), "max_new_tokens": 10}
    done = stream(client, request)[-1][1]
    return request | {"tokens": [row["token_ids"] for row in done["rows"]]}, done


def test_a_saved_session_is_a_run_of_the_engine_s_own_rows(client, db):
    first, done = _session(client)
    branch, _ = _session(client, forced=[5, 6, 7])
    response = client.post("/api/runs", json={"generations": [first, branch]})
    assert response.status_code == 201, response.text
    saved = response.json()
    assert saved["rows"] == 6 and saved["generations"] == 2
    (listed,) = client.get("/api/runs").json()
    assert listed == listed | {"id": saved["id"], "kind": "serve", "status": "complete",
                               "total_rows": 6, "rows_done": 6}
    view = client.get(f"/api/runs/{saved['id']}").json()
    assert view["run"]["config"]["generations"][1]["forced"] == branch["forced"]
    library = generate(parse_synthetic(MARKOV), _rows(), max_new_tokens=10, chat=False)
    for stored, completion in zip(view["completions"][:3], library, strict=True):
        assert stored["token_ids"] == completion.token_ids
        assert stored["text"] == completion.text
        assert [s["token"] for s in stored["steps"]] == [s["token"] for s in completion.steps]
        for logged, engine in zip(stored["steps"], completion.steps, strict=True):
            assert logged == pytest.approx(engine | {"step": logged["step"]}, rel=1e-12)
    extras = [c["extra"] for c in view["completions"]]
    assert [(e["generation"], e["row"]) for e in extras] == [(0, 0), (0, 1), (0, 2), (1, 0),
                                                             (1, 1), (1, 2)]
    assert extras[1]["divergence_step"] == done["rows"][1]["divergence_step"]
    assert view["completions"][3]["prompt_tokens"] == view["completions"][0]["prompt_tokens"] + 3
    with RunStore(db) as store:
        assert store._conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_a_saved_run_s_config_re_runs_to_the_same_tokens(client):
    session, _ = _session(client)
    run_id = client.post("/api/runs", json={"generations": [session]}).json()["id"]
    view = client.get(f"/api/runs/{run_id}").json()
    (again,) = view["run"]["config"]["generations"]
    done = stream(client, again)[-1][1]
    assert [row["token_ids"] for row in done["rows"]] == session["tokens"]


def test_the_command_line_lists_exports_and_reports_a_serve_run(client, db):
    from click.testing import CliRunner

    from sampler.cli import cli

    session, _ = _session(client)
    run_id = client.post("/api/runs", json={"generations": [session]}).json()["id"]
    runner = CliRunner()
    listing = runner.invoke(cli, ["runs", "--db", db])
    assert listing.exit_code == 0 and run_id in listing.output and "serve" in listing.output
    exported = runner.invoke(cli, ["export", run_id, "--db", db])
    assert exported.exit_code == 0
    lines = [json.loads(line) for line in exported.stdout.splitlines()]
    assert [line["token_ids"] for line in lines] == session["tokens"]
    report = runner.invoke(cli, ["report", run_id, "--db", db])
    assert report.exit_code == 0 and f"run {run_id} · serve" in report.output


def test_tokens_the_engine_did_not_generate_are_refused_and_nothing_is_saved(client, db):
    session, _ = _session(client)
    tampered = [list(row) for row in session["tokens"]]
    row = max(range(len(tampered)), key=lambda r: len(tampered[r]))
    tampered[row][2] = (tampered[row][2] + 1) % 299  # 299 is the end token
    response = client.post("/api/runs", json={"generations": [session | {"tokens": tampered}]})
    assert response.status_code == 400
    message = f"generations[0].tokens[{row}] differs from the re-run at step 2"
    assert message in response.json()["error"]
    assert client.get("/api/runs").json() == []


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"generations": []}, "generations must be a list of 1..8 /api/generate requests"),
        ({"generations": [{"prompt": PROMPT, "rows": [{"seed": 1}]}] * 9},
         "generations must be a list of 1..8"),
        ({"sessions": []}, "request key 'sessions' is unknown: use generations"),
        ({"generations": [3]}, "generations[0] must be an /api/generate request object"),
        ({"generations": [{"prompt": PROMPT, "rows": [{"temperature": 0}]}]},
         "generations[0].rows[0] has no seed: a saved row is re-run from its seed"),
        ({"generations": [{"prompt": PROMPT, "rows": [{"seed": 1}] * 9}]},
         "generations[0]: rows has 9 settings objects: at most 8"),
        ({"generations": [{"prompt": PROMPT, "rows": [{"seed": 1}], "max_new_tokens": 300}]},
         "generations[0]: max_new_tokens must be an integer in 1..256"),
        ({"generations": [{"prompt": PROMPT, "rows": [{"seed": 1}], "tokens": [[1], [2]]}]},
         "generations[0].tokens must be a list of 1 token id lists"),
        ({"generations": [{"prompt": PROMPT, "rows": [{"seed": 1}], "colour": 1}]},
         "generations[0]: request key 'colour' is unknown"),
        ([1], "the request body must be a JSON object"),
    ],
)
def test_bad_sessions_are_400_json_naming_the_field(client, body, fragment):
    response = client.post("/api/runs", json=body)
    assert response.status_code == 400 and fragment in response.json()["error"]
    assert client.get("/api/runs").json() == []


def test_saving_needs_a_run_log_and_a_bounded_body(client):
    body = {"generations": [{"prompt": PROMPT, "rows": [{"seed": 1}]}]}
    no_log = TestClient(make_app(parse_synthetic(MARKOV), None), base_url=BASE)
    response = no_log.post("/api/runs", json=body)
    assert response.status_code == 404 and "--db PATH" in response.json()["error"]
    big = json.dumps({"generations": [{"prompt": "x" * MAX_BODY_BYTES, "rows": []}]})
    response = client.post("/api/runs", content=big.encode(), headers=JSON_TYPE)
    assert response.status_code == 413 and "request body is over" in response.json()["error"]


def test_resuming_a_serve_run_says_there_is_nothing_to_resume(client, db):
    from click.testing import CliRunner
    from test_bad_input import one_error_line

    from sampler.cli import cli

    session, _ = _session(client)
    run_id = client.post("/api/runs", json={"generations": [session]}).json()["id"]
    result = CliRunner().invoke(cli, ["sweep", "--resume", run_id, "--db", db])
    one_error_line(result, "run kind 'serve' is a session saved whole", "nothing to resume")
