"""Load test of ``sampler serve``: concurrent clients against a real server on 127.0.0.1.

Starts uvicorn in a background thread on a free loopback port
(:func:`sampler.serve.server.serving`), serving a synthetic model (by default
``synthetic:zipf?vocab=49152``: SmolLM2's vocabulary width, so the engine does a real model's
work per step, without its forward pass) and a fresh run log; then runs ``--clients``
threads for ``--seconds``, each cycling through next-token, a streamed generation (3 rows, read
to its ``done`` event), saving its last generation as a run, listing the runs and opening one.

Counted apart:

- served: 2xx answers, and streams that ended with their ``done`` event;
- busy: 429 answers, the server's designed refusal when its generation slots (2) are all
  taken (a stream or a save holds one), or a model call waited 10 s for the model;
- errors: anything else (a 5xx, another 4xx, an ``error`` event, a stream without ``done``,
  an exception in the client). Must be 0.

Afterwards the run log passes ``PRAGMA integrity_check`` and holds exactly the runs saved.

    .venv/bin/python scripts/load_serve.py [--seconds 10] [--clients 8] [--model SPEC]

``tests/test_serve_load.py`` runs :func:`load_test` itself, for fewer seconds.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import sqlite3
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from sampler.serve.server import serving
from sampler.sources.synthetic_spec import parse_synthetic

DEFAULT_MODEL = "synthetic:zipf?vocab=49152"
KINDS = ("next-token", "generate", "save", "list-runs", "open-run")
ROWS = [{"temperature": 0}, {"temperature": 0.8, "seed": 1}, {"temperature": 0.8, "seed": 2}]


def read_events(response: httpx.Response) -> list[tuple[str, dict]]:
    """The ``(event, data)`` pairs of a server-sent event stream, read to its end."""
    events, name = [], None
    for line in response.iter_lines():
        if line.startswith("event: "):
            name = line[len("event: ") :]
        elif line.startswith("data: "):
            events.append((name, json.loads(line[len("data: ") :])))
    return events


@dataclass
class LoadReport:
    """What a load test measured."""

    seconds: float
    clients: int
    served: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    busy: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    errors: list[str] = field(default_factory=list)
    latencies: dict[str, list[float]] = field(default_factory=lambda: {k: [] for k in KINDS})
    saved: list[str] = field(default_factory=list)
    integrity: str = ""
    runs_in_log: int = 0

    def percentile(self, share: float, kind: str | None = None) -> float:
        """Latency (s) of served requests at ``share`` (0.5: the median), of one kind or all."""
        chosen = [self.latencies[kind]] if kind else self.latencies.values()
        values = sorted(itertools.chain.from_iterable(chosen))
        return values[min(len(values) - 1, int(share * len(values)))] if values else float("nan")

    def summary(self) -> dict[str, Any]:
        """The numbers as one JSON-ready dict."""
        return {
            "seconds": self.seconds,
            "clients": self.clients,
            "served": sum(self.served.values()),
            "busy": sum(self.busy.values()),
            "errors": len(self.errors),
            "p50_ms": round(1000 * self.percentile(0.5), 1),
            "p95_ms": round(1000 * self.percentile(0.95), 1),
            "by_kind": {
                kind: {
                    "served": self.served[kind],
                    "busy": self.busy[kind],
                    "p50_ms": round(1000 * self.percentile(0.5, kind), 1),
                    "p95_ms": round(1000 * self.percentile(0.95, kind), 1),
                }
                for kind in KINDS
            },
            "integrity_check": self.integrity,
            "runs_saved": len(self.saved),
            "runs_in_log": self.runs_in_log,
        }


def _problem(response: httpx.Response) -> str | None:
    """``None`` for a 2xx or a 429, else the start of the answer (what went wrong)."""
    if 200 <= response.status_code < 300 or response.status_code == 429:
        return None
    return response.text[:120]


class _Client:
    """One client thread's requests; ``last`` is its last finished generation."""

    def __init__(self, http: httpx.Client, report: LoadReport, lock: threading.Lock) -> None:
        self.http, self.report, self.lock = http, report, lock
        seeded = [{**row, "seed": 0} for row in ROWS[:2]]
        self.last: dict[str, Any] = {"prompt": "kalo mesu", "rows": seeded, "max_new_tokens": 8}
        self.run_id: str | None = None

    def request(self, kind: str) -> tuple[int, str | None]:
        """Send one request of ``kind``: its status and what went wrong (``None``: nothing)."""
        if kind == "next-token":
            body = {"prompt": "kalo mesu", "settings": {"top_p": 0.9}, "seed": 3, "top": 5}
            response = self.http.post("/api/next-token", json=body)
            return response.status_code, _problem(response)
        if kind == "generate":
            body = {"prompt": "kalo mesu", "rows": ROWS, "max_new_tokens": 16, "top": 5}
            with self.http.stream("POST", "/api/generate", json=body) as response:
                if response.status_code != 200:
                    response.read()
                    return response.status_code, _problem(response)
                events = read_events(response)
            if not events or events[-1][0] != "done":
                return 200, f"stream ended with {events[-1][0] if events else 'nothing'}"
            # saved as the page would: every row with the seed the start event reports
            seeds = [row["settings"]["seed"] for row in events[0][1]["rows"]]
            rows = [{**row, "seed": seed} for row, seed in zip(ROWS, seeds, strict=True)]
            tokens = [row["token_ids"] for row in events[-1][1]["rows"]]
            self.last = {**body, "rows": rows, "tokens": tokens}
            return 200, None
        if kind == "save":
            response = self.http.post("/api/runs", json={"generations": [self.last]})
            if response.status_code == 201:
                self.run_id = response.json()["id"]
                with self.lock:
                    self.report.saved.append(self.run_id)
            return response.status_code, _problem(response)
        if kind == "list-runs":
            response = self.http.get("/api/runs?limit=5")
        else:
            response = self.http.get(f"/api/runs/{self.run_id}" if self.run_id else "/api/runs")
        return response.status_code, _problem(response)

    def loop(self, start: int, stop_at: float) -> None:
        for kind in itertools.islice(itertools.cycle(KINDS), start, None):
            if time.monotonic() >= stop_at:
                return
            began = time.perf_counter()
            try:
                status, problem = self.request(kind)
            except Exception as error:  # a failed connection is an error, never a crash
                status, problem = 0, f"{type(error).__name__}: {error}"
            elapsed = time.perf_counter() - began
            with self.lock:
                if problem is None and 200 <= status < 300:
                    self.report.served[kind] += 1
                    self.report.latencies[kind].append(elapsed)
                elif problem is None and status == 429:
                    self.report.busy[kind] += 1
                else:
                    self.report.errors.append(f"{kind}: {status} {problem or ''}".strip())


def run_load(base_url: str, seconds: float, clients: int = 8) -> LoadReport:
    """``clients`` threads sending a mix of requests to ``base_url`` for ``seconds``."""
    report, lock = LoadReport(seconds, clients), threading.Lock()
    stop_at = time.monotonic() + seconds

    def client(index: int) -> None:
        with httpx.Client(base_url=base_url, timeout=60) as http:
            _Client(http, report, lock).loop(index, stop_at)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return report


def load_test(
    seconds: float, clients: int = 8, model: str = DEFAULT_MODEL, folder: str | None = None
) -> LoadReport:
    """Serve ``model`` and a fresh run log, run :func:`run_load`, then check the log."""
    with tempfile.TemporaryDirectory() as scratch:
        db = str(Path(folder or scratch) / "load.db")
        with serving(parse_synthetic(model), db) as (base_url, _app):
            report = run_load(base_url, seconds, clients)
        with contextlib.closing(sqlite3.connect(db)) as conn:
            report.integrity = conn.execute("PRAGMA integrity_check").fetchone()[0]
            report.runs_in_log = conn.execute(
                "SELECT count(*) FROM runs WHERE kind = 'serve' AND status = 'complete'"
            ).fetchone()[0]
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--model", default=DEFAULT_MODEL, help="A synthetic spec.")
    args = parser.parse_args()
    report = load_test(args.seconds, args.clients, args.model)
    numbers = report.summary()
    print(f"{args.model}: {args.clients} clients for {args.seconds:g} s on 127.0.0.1")
    rows = [("request", "served", "busy", "p50 ms", "p95 ms")]
    rows += [
        (k, r["served"], r["busy"], r["p50_ms"], r["p95_ms"]) for k, r in numbers["by_kind"].items()
    ]
    rows += [("all", numbers["served"], numbers["busy"], numbers["p50_ms"], numbers["p95_ms"])]
    for row in rows:
        print(f"{row[0]:<11}" + "".join(f"{value:>9}" for value in row[1:]))
    print(
        f"errors: {numbers['errors']} {report.errors[:5]}\n"
        f"run log: integrity_check {report.integrity}; {report.runs_in_log} serve runs for "
        f"{len(report.saved)} saves"
    )
    print(json.dumps(numbers))
    sys.exit(0 if not report.errors and report.integrity == "ok" else 1)


if __name__ == "__main__":
    main()
