"""``sampler serve`` under load, on a real uvicorn server on 127.0.0.1 (a thread, a free port).

:func:`test_the_load_test_serves_every_kind_without_an_error` runs the same function as
``scripts/load_serve.py`` (8 clients; 4 s on an 8,192-token vocabulary here, 10 s on 49,152
in the script) and asserts what does not depend on the machine's speed: requests served, no
error, the run log intact. The other tests check what only a real connection shows: a client
that goes away mid-stream stops its generation, and a long generation does not keep the model
from other requests.
"""

import gc
import importlib.util
import sys
import time
import weakref
from pathlib import Path

import pytest
from test_serve_stream import PROMPT, events_of

from sampler.serve.server import serving
from sampler.sources.synthetic_spec import parse_synthetic

pytest.importorskip("uvicorn")
httpx = pytest.importorskip("httpx")
SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "load_serve.py"


def load_script():
    """scripts/load_serve.py as a module: the test and the script share its load_test."""
    if "load_serve" not in sys.modules:
        spec = importlib.util.spec_from_file_location("load_serve", SCRIPT)
        module = importlib.util.module_from_spec(spec)
        sys.modules["load_serve"] = module  # before it runs: its dataclass looks itself up
        spec.loader.exec_module(module)
    return sys.modules["load_serve"]


def test_the_load_test_serves_every_kind_without_an_error(tmp_path):
    # a narrower vocabulary than the script's (8,192 against 49,152), so that on a slow
    # machine too every kind of request gets its turn within the 4 s
    model = "synthetic:zipf?vocab=8192"
    report = load_script().load_test(seconds=4, clients=8, model=model, folder=str(tmp_path))
    numbers = report.summary()
    assert numbers["errors"] == 0, report.errors[:5]
    assert all(kind["served"] > 0 for kind in numbers["by_kind"].values()), numbers
    # 429 is the designed answer when both generation slots are taken, never an error
    assert numbers["busy"] == numbers["by_kind"]["generate"]["busy"] + numbers["by_kind"][
        "save"]["busy"]
    assert report.integrity == "ok"
    assert report.runs_in_log == len(report.saved) > 0  # every save is a complete run


class _Slow:
    """A source whose steps take 20 ms and are counted (``steps``)."""

    def __init__(self, source) -> None:
        self._source, self.steps, self.sessions = source, 0, []

    def __getattr__(self, name):
        return getattr(self._source, name)

    def start(self, prompts):
        logits, session = self._source.start(prompts)
        outer = self

        class Session:
            def advance(self, tokens):
                time.sleep(0.02)
                outer.steps += 1
                return session.advance(tokens)

        made = Session()
        self.sessions.append(weakref.ref(made))  # to see it dropped (its KV cache with it)
        return logits, made


def _wait_until(condition, seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_a_client_that_disconnects_stops_its_generation_and_frees_its_slot():
    slow = _Slow(parse_synthetic("synthetic:zipf?vocab=300"))  # no EOS: 256 steps, 5 s
    body = {"prompt": PROMPT, "rows": [{"seed": 1}, {"seed": 2}], "max_new_tokens": 256}
    with serving(slow, None) as (url, app), httpx.Client(base_url=url) as http:
        with http.stream("POST", "/api/generate", json=body, timeout=30) as response:
            for line in response.iter_lines():
                if line == "event: step":
                    break
            assert app.state.slots.running == 1
        # the response is closed after its first step: the server sees the client go
        _wait_until(lambda: app.state.slots.running == 0)
        done_after = slow.steps
        time.sleep(0.3)
        assert slow.steps == done_after < 255  # no step ran after the slot was freed
        gc.collect()
        assert [ref() for ref in slow.sessions] == [None]  # the session is not kept
        # and the freed slots serve new generations
        second = http.post("/api/generate", json=body | {"max_new_tokens": 2}, timeout=30)
        assert events_of(second.text)[-1][0] == "done"


def test_other_requests_are_answered_while_a_long_generation_streams():
    slow = _Slow(parse_synthetic("synthetic:zipf?vocab=300"))
    body = {"prompt": PROMPT, "rows": [{"seed": 1}], "max_new_tokens": 100}
    with (
        serving(slow, None) as (url, app),
        httpx.Client(base_url=url) as http,
        http.stream("POST", "/api/generate", json=body, timeout=30) as response,
    ):
        lines = response.iter_lines()
        assert next(lines) == "event: start"
        # the generation takes the model lock one step at a time, so this one gets a turn
        answer = http.post("/api/next-token", json={"prompt": PROMPT}, timeout=30)
        assert answer.status_code == 200 and app.state.slots.running == 1
        assert slow.steps < 99  # answered while the generation was still running
        assert [line for line in lines if line.startswith("event: ")][-1] == "event: done"


def test_the_model_lock_goes_to_its_waiters_in_arrival_order():
    import threading

    from sampler.serve.turns import FairLock

    lock, order = FairLock(), []
    assert lock.acquire(timeout=1)

    def waiter(index: int) -> None:
        assert lock.acquire(timeout=30)
        order.append(index)
        lock.release()

    threads = []
    for index in range(5):
        threads.append(threading.Thread(target=waiter, args=(index,)))
        threads[-1].start()
        _wait_until(lambda n=index + 1: len(lock._waiters) == n)  # queued in this order
    lock.release()
    for thread in threads:
        thread.join()
    assert order == [0, 1, 2, 3, 4]
    # a waiter that gives up leaves the queue; the lock stays usable
    assert lock.acquire(timeout=1)
    late = []
    thread = threading.Thread(target=lambda: late.append(lock.acquire(timeout=0.05)))
    thread.start()
    thread.join()
    assert late == [False] and not lock._waiters
    lock.release()
    assert lock.acquire(timeout=0)
