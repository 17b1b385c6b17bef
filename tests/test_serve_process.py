"""``sampler serve`` as a process: an address it cannot bind is one ``error:`` line and exit
code 2 (never a "serving" line first), and Ctrl-C stops it while a generation streams.

The stream is made long on purpose (8 rows of 256 tokens with DRY over a 3,500-token prompt,
the end token banned) and its client stops reading after the first step, so the server is
both generating and blocked on a full socket when SIGINT comes: uvicorn's default graceful
shutdown waited for that connection for as long as it stayed open. The waits below only turn
a hang into a failure; nothing is timed.
"""

import contextlib
import gc
import http.client
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import weakref
from pathlib import Path

import pytest
from click.testing import CliRunner
from test_bad_input import one_error_line

from sampler.cli import cli
from sampler.serve.server import serving
from sampler.sources.synthetic_spec import parse_synthetic

pytest.importorskip("uvicorn")

ROOT = Path(__file__).resolve().parents[1]
MARKOV = "synthetic:markov?vocab=300&sharpness=2.0&seed=1"


def test_a_port_in_use_is_one_error_line_and_exit_2():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(cli, ["serve", "--model", MARKOV, "--port", str(port)])
    one_error_line(result, f"cannot bind 127.0.0.1:{port} (Address already in use)",
                   "choose another --port")
    assert "serving" not in result.output


@pytest.mark.parametrize(
    ("host", "fragment"),
    [("192.0.2.1", "cannot bind 192.0.2.1:8765 (Cannot assign requested address)"),  # TEST-NET
     ("no-such-host.invalid", "--host 'no-such-host.invalid' is not an address of this machine")],
)
def test_an_address_this_machine_does_not_have_is_one_error_line(host, fragment):
    result = CliRunner().invoke(cli, ["serve", "--model", MARKOV, "--host", host])
    one_error_line(result, fragment)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_ctrl_c_stops_the_server_while_a_generation_streams():
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    server = subprocess.Popen(
        [sys.executable, "-m", "sampler", "serve", "--model", MARKOV, "--port", str(port)],
        cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True,
    )
    stderr: list[str] = []
    try:
        line = server.stderr.readline()
        assert line.startswith("serving"), line
        reader = threading.Thread(target=lambda: stderr.extend(server.stderr), daemon=True)
        reader.start()
        rng = random.Random(0)
        body = json.dumps({
            "prompt": " ".join(rng.choice(["kalo", "mesu", "puzo", "hena"]) for _ in range(3500)),
            "rows": [{"seed": seed, "dry_multiplier": 0.8, "order": "llama.cpp",
                      "logit_bias": {"299": -100}} for seed in range(8)],  # 299: the end token
            "max_new_tokens": 256, "top": 20,
        }).encode()
        client = socket.socket()
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # fills up at once
        client.connect(("127.0.0.1", port))
        client.sendall(
            f"POST /api/generate HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        received = b""
        while b"event: step" not in received:
            chunk = client.recv(4096)
            assert chunk, received
            received += chunk
        assert received.startswith(b"HTTP/1.1 200")
        server.send_signal(signal.SIGINT)  # the client reads no further and stays connected
        try:
            code = server.wait(timeout=30)
        finally:
            client.close()
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    reader.join(10)
    assert code == 130 and stderr[-1] == "aborted\n", (code, stderr)  # as any command's Ctrl-C
    assert "Traceback" not in "".join(stderr), "".join(stderr)


class _Gated:
    """The synthetic source, whose sessions wait at their third step until released."""

    def __init__(self, source) -> None:
        self._source, self.entered, self.release = source, threading.Event(), threading.Event()
        self.sessions: list = []

    def __getattr__(self, name):
        return getattr(self._source, name)

    def start(self, prompts):
        logits, session = self._source.start(prompts)
        calls, outer = iter(range(10**6)), self

        class Session:
            def advance(self, tokens):
                if next(calls) == 2:
                    outer.entered.set()
                    assert outer.release.wait(60)
                return session.advance(tokens)

        gated = Session()
        self.sessions.append(weakref.ref(gated))
        return logits, gated


def test_a_stream_cut_mid_step_at_shutdown_keeps_its_slot_until_the_step_ends():
    # uvicorn cuts a response still running 2 s after the shutdown began; its step, in a worker
    # thread, cannot be stopped, and the generation cannot be closed while it executes (that
    # raised "generator already executing" and freed the slot beside the running step)
    gated = _Gated(parse_synthetic("synthetic:zipf?vocab=300"))  # no end token
    body = {"prompt": "kalo mesu", "rows": [{"seed": 1}], "max_new_tokens": 8}

    def read(url: str) -> None:
        with contextlib.suppress(OSError, http.client.HTTPException):
            request = urllib.request.Request(f"{url}/api/generate", json.dumps(body).encode(),
                                             {"Content-Type": "application/json"})
            with urllib.request.urlopen(request, timeout=60) as response:
                response.read()

    with serving(gated, None) as (url, app):
        reader = threading.Thread(target=read, args=(url,), daemon=True)
        reader.start()
        assert gated.entered.wait(30)
    # the server has stopped; the step it was in still runs, and holds its slot
    assert app.state.slots.running == 1
    gated.release.set()
    wait_until(lambda: app.state.slots.running == 0)  # freed once the step returned
    gc.collect()
    assert [ref() for ref in gated.sessions] == [None]  # and the session dropped
    reader.join(30)


def wait_until(condition, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds  # a bound on a hang, not a measurement
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)
