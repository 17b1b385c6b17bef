"""``sampler serve`` over a run log that is damaged, locked by another process or on a full
disk (503 / 507 with the run log's own message, the server serving on), and a large run read
a page at a time without stalling other clients.

The oracles: the run log's own error messages (``sampler.runlog``), the store's own full read
of a run (``RunStore.completions``) for the pages, and the order of events for the event loop
(the page is answered while a run's answer is being encoded, which blocks until then).
"""

import threading
import urllib.request

import pytest
from test_runlog_damage import DAMAGES, damage, hold_lock, logged_run
from test_runlog_full import SESSION, disk_limit  # noqa: F401 (a fixture)

from sampler.runlog import connection
from sampler.runlog.store import STEP_STATS, RunStore
from sampler.sources.synthetic_spec import parse_synthetic

pytest.importorskip("starlette")
from starlette.testclient import TestClient

from sampler.serve import api, runlog_access
from sampler.serve.app import make_app
from sampler.serve.server import serving

MARKOV = "synthetic:markov?vocab=300&sharpness=2.0&seed=1"
BASE = "http://127.0.0.1:8765"


def client_of(db) -> TestClient:
    return TestClient(make_app(parse_synthetic(MARKOV), str(db)), base_url=BASE)


def assert_healthy(client) -> None:
    answer = client.post("/api/next-token", json={"prompt": "kalo mesu", "top": 3})
    assert answer.status_code == 200 and len(answer.json()["top"]) == 3
    assert client.get("/").status_code == 200


# Per damage: does listing the runs still work (200), and does opening the run (503)?
LISTING_READS = {"dropped-table": False, "dropped-column": False}


@pytest.mark.parametrize("damaged", list(DAMAGES))
def test_a_damaged_run_log_is_503_with_its_own_message(tmp_path, damaged):
    db = tmp_path / "runs.db"
    run_id = logged_run(db)
    damage(db, *DAMAGES[damaged])
    client = client_of(db)
    opened = client.get(f"/api/runs/{run_id}")
    assert opened.status_code == 503, opened.text
    assert opened.json()["error"].startswith(f"run log {db} is damaged: ")
    listing = client.get("/api/runs")
    assert listing.status_code == (200 if LISTING_READS.get(damaged, True) else 503)
    assert_healthy(client)


@pytest.mark.parametrize("how", ["writer", "exclusive"])
def test_a_run_log_another_process_locks_is_503_at_once(tmp_path, how):
    db = tmp_path / "runs.db"
    run_id = logged_run(db)
    client = client_of(db)
    holder = hold_lock(db, how)
    locked = connection.LOCKED.format(db, runlog_access.LOCK_WAIT_S)  # the run log's words
    try:
        saved = client.post("/api/runs", json=SESSION)
        assert saved.status_code == 503 and saved.json()["error"].startswith(locked), saved.text
        for path in ("/api/runs", f"/api/runs/{run_id}"):  # readers pass a mere writer
            read = client.get(path)
            if how == "writer":
                assert read.status_code == 200, read.text
            else:
                assert read.status_code == 503 and read.json()["error"].startswith(locked)
        assert_healthy(client)
    finally:
        holder.stdin.close()
        assert holder.wait(timeout=60) == 0
    assert [run["id"] for run in client.get("/api/runs").json()] == [run_id]  # nothing saved
    assert client.post("/api/runs", json=SESSION).status_code == 201  # and now it saves


def test_a_full_disk_on_save_is_507_and_leaves_nothing(tmp_path, disk_limit):  # noqa: F811
    db = tmp_path / "runs.db"
    RunStore(db).close()
    disk_limit(2)  # pages: the session needs about 10 more
    client = client_of(db)
    response = client.post("/api/runs", json=SESSION)
    assert response.status_code == 507, response.text
    assert response.json()["error"].startswith(
        connection.FULL.format(db, "database or disk is full"))  # the run log's words
    assert client.get("/api/runs").json() == []
    assert_healthy(client)
    disk_limit(None)  # space freed
    assert client.post("/api/runs", json=SESSION).status_code == 201


def big_run(db, rows: int, steps: int) -> str:
    """A run of ``rows`` completions of ``steps`` steps each, written through the store."""
    with RunStore(db) as store:
        run_id = store.create_run("sweep", "toy", "f00d", {"seed": 0}, {}, rows)
        for row in range(rows):
            tokens = [(row * 7 + step) % 300 for step in range(steps)]
            store.add_completion(run_id, row, {
                "prompt": "kalo", "sample": row, "temperature": 0.7, "mode": "sample",
                "params": {}, "text": "x", "token_ids": tokens, "finish_reason": "length",
                "prompt_tokens": 1,
                "steps": [dict.fromkeys(STEP_STATS, step / steps) | {"token": token}
                          for step, token in enumerate(tokens)],
            })
        store.finish_run(run_id)
    return run_id


def test_a_large_run_is_read_a_page_at_a_time(tmp_path):
    db = tmp_path / "runs.db"
    run_id = big_run(db, rows=3, steps=4_500)  # 13,500 steps: over one default page
    with RunStore(db) as store:
        expected = store.completions(run_id)
    client = client_of(db)
    first = client.get(f"/api/runs/{run_id}").json()
    assert first["page"] == {"offset": 0, "limit": api.RUN_PAGE_STEPS, "steps": 13_500,
                             "next_offset": api.RUN_PAGE_STEPS}
    assert sum(len(c["steps"]) for c in first["completions"]) == api.RUN_PAGE_STEPS
    steps: dict[int, list] = {}
    offset, pages = 0, 0
    while offset is not None:
        answer = client.get(f"/api/runs/{run_id}?offset={offset}&limit=2000").json()
        assert sum(len(c["steps"]) for c in answer["completions"]) <= 2000
        for completion in answer["completions"]:
            assert completion["first_step"] == len(steps.get(completion["row_index"], []))
            steps.setdefault(completion["row_index"], []).extend(completion["steps"])
        offset, pages = answer["page"]["next_offset"], pages + 1
    assert pages == 7
    assert [steps[c["row_index"]] for c in expected] == [c["steps"] for c in expected]
    page = client.get(f"/api/runs/{run_id}?offset=4000&limit=1000").json()
    assert [c["row_index"] for c in page["completions"]] == [0, 1]
    for got, want in zip(page["completions"], expected[:2], strict=True):
        assert {k: v for k, v in got.items() if k not in ("steps", "first_step")} == {
            k: v for k, v in want.items() if k != "steps"}
    past = client.get(f"/api/runs/{run_id}?offset=20000").json()
    assert past["completions"] == [] and past["page"]["next_offset"] is None


def test_the_page_is_answered_while_a_run_is_being_encoded(tmp_path, monkeypatch):
    # the run's answer blocks in its encoding until the page has been answered: were it encoded
    # on the event loop, the page could not be, and both would give up (the waits only bound a
    # deadlock; nothing here is timed)
    db = tmp_path / "runs.db"
    run_id = big_run(db, rows=1, steps=50)
    encoding, page_answered = threading.Event(), threading.Event()
    to_json = api.to_json

    def blocking_to_json(value):
        if isinstance(value, dict) and "completions" in value:
            encoding.set()
            assert page_answered.wait(20), "the page was not answered while the run was encoded"
        return to_json(value)

    monkeypatch.setattr(api, "to_json", blocking_to_json)
    with serving(parse_synthetic(MARKOV), str(db)) as (url, _app):
        result = {}

        def open_run() -> None:
            with urllib.request.urlopen(f"{url}/api/runs/{run_id}", timeout=60) as response:
                result["status"] = response.status

        reader = threading.Thread(target=open_run)
        reader.start()
        assert encoding.wait(20)
        with urllib.request.urlopen(f"{url}/", timeout=10) as response:
            assert response.status == 200
        page_answered.set()
        reader.join(60)
    assert result == {"status": 200}
