"""The progress stream of `create_app` over a LocalBackend whose workers start late: a QUEUED job's
stream stays open on heartbeats, then closes once the job ends; a client leaving early costs
the server nothing."""

from __future__ import annotations

import json
import socket
import threading
import time

import httpx
import pytest
import uvicorn

from sutro_sql.backends.local import LocalBackend
from sutro_sql.server import create_app

KEY = "sk_stream_" + "s" * 10
ROWS = [{"subject": "Invoice", "body": "billing"}, {"subject": "Crash", "body": "bug"}]


@pytest.fixture
def served(home, keyword_engine):
    """(http client, backend): a backend with workers stopped and 0.3 s heartbeats, on a real socket."""
    backend = LocalBackend(home, engine=keyword_engine, start_workers=False)
    backend.heartbeat_interval = 0.3
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(create_app(backend, KEY), log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.02)
    url = f"http://127.0.0.1:{sock.getsockname()[1]}/v1"
    with httpx.Client(base_url=url, headers={"Authorization": f"Key {KEY}"}, timeout=10) as client:
        yield client, backend
    server.should_exit = True
    thread.join(timeout=10)
    backend.close()


def test_a_queued_job_streams_heartbeats_until_it_starts_then_closes_when_done(served):
    client, backend = served
    job_id = client.post("/batch-inference", json={"model": "ticket-triage", "inputs": ROWS}).json()["results"]
    lines: list[dict] = []
    started_workers_at = None
    with client.stream("GET", f"/stream-job-progress/{job_id}") as stream:
        for line in stream.iter_lines():
            lines.append(json.loads(line))
            if started_workers_at is None and sum(e["update_type"] == "heartbeat" for e in lines) >= 2:
                assert client.get(f"/job-status/{job_id}").json()["job_status"][job_id] == "QUEUED"
                started_workers_at = len(lines)
                backend.start_workers()
    assert started_workers_at is not None, "no heartbeats while the job was queued"
    assert lines[0] == {"update_type": "progress", "result": 0}
    assert [e["result"] for e in lines if e["update_type"] == "progress"][-1] == len(ROWS)
    assert client.get(f"/job-status/{job_id}").json()["job_status"][job_id] == "SUCCEEDED"


def test_a_client_leaving_a_stream_early_leaves_the_server_responsive(served):
    client, _ = served
    job_id = client.post("/batch-inference", json={"model": "ticket-triage", "inputs": ROWS}).json()["results"]
    for _ in range(5):
        with client.stream("GET", f"/stream-job-progress/{job_id}") as stream:
            next(stream.iter_lines())
    started = time.monotonic()
    assert client.get("/auth/check").json() == {"authenticated": True}
    assert time.monotonic() - started < 1.0
