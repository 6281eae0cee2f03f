"""The progress stream of `create_app` over a LocalBackend whose workers start late: a QUEUED job's
stream stays open on heartbeats, then closes once the job ends; a client leaving early costs
the server nothing."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from sutro_sql.backends.local import LocalBackend
from sutro_sql.server import create_app
from tests.support.asgi_server import serve_app

KEY = "sk_stream_" + "s" * 10
ROWS = [{"subject": "Invoice", "body": "billing"}, {"subject": "Crash", "body": "bug"}]


@pytest.fixture
def served(home, keyword_engine):
    """(http client, backend): a backend with workers stopped and 0.3 s heartbeats, on a real socket."""
    backend = LocalBackend(home, engine=keyword_engine, start_workers=False)
    backend.heartbeat_interval = 0.3
    with (
        serve_app(create_app(backend, KEY)) as origin,
        httpx.Client(base_url=f"{origin}/v1", headers={"Authorization": f"Key {KEY}"}, timeout=10) as client,
    ):
        yield client, backend
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
