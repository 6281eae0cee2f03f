"""The server's error mapping, end to end: `create_app` can serve any Backend, so here it relays
to a RemoteBackend whose upstream (a fault server) fails on cue. Each upstream error must reach
the client with its status, code, detail and (for 429) Retry-After, in the v1 error body
(whose request_id is this server's, echoed in X-Request-ID)."""

from __future__ import annotations

import httpx
import pytest

from sutro_sql.backends.remote import RemoteBackend
from sutro_sql.http import RetryPolicy
from sutro_sql.server import create_app
from tests.support.asgi_server import InProcessTransport
from tests.support.fault_server import FaultServer, Reply

KEY = "sk_relay_" + "x" * 12


@pytest.fixture
def upstream():
    with FaultServer() as server:
        yield server


@pytest.fixture
def relay(upstream, tmp_path):
    """`create_app(RemoteBackend(upstream))`, called in-process (the upstream is a real socket)."""
    backend = RemoteBackend(upstream.url, "upstream-key", home=tmp_path, retry=RetryPolicy(max_retries=0))
    transport = InProcessTransport(create_app(backend, KEY))
    with httpx.Client(
        base_url="http://localhost/v1", headers={"Authorization": f"Key {KEY}"}, transport=transport
    ) as client:
        yield client
    backend.close()


@pytest.mark.parametrize(
    ("status", "code", "headers"),
    [
        (429, "rate_limited", {"Retry-After": "7"}),
        (409, "no_runnable_prompt", {}),
        (502, "provider_error", {}),
        (503, "provider_not_configured", {}),
        (504, "timeout", {}),
    ],
)
def test_upstream_errors_keep_status_code_and_detail(upstream, relay, status, code, headers):
    upstream.queue(
        Reply(status, {"detail": f"upstream said {code}", "code": code, "request_id": "rt_up"}, headers=headers)
    )
    response = relay.post("/functions/triage/run", json={"input": {"body": "x"}})
    assert response.status_code == status
    body = response.json()
    assert body["code"] == code and "upstream said" in body["detail"]
    assert body["request_id"] == response.headers["x-request-id"]
    if status == 429:
        assert response.headers["retry-after"] == "7"


def test_an_unreachable_upstream_is_503_backend_unavailable(relay, upstream):
    upstream.queue(Reply(200, {"output": "x"}, drop=True))
    response = relay.post("/functions/triage/run", json={"input": {"body": "x"}})
    assert response.status_code == 503
    assert response.json()["code"] == "backend_unavailable"
    assert response.json()["request_id"] == response.headers["x-request-id"]


def test_a_crash_in_the_backend_is_a_json_500(relay, upstream):
    upstream.queue(Reply(200, {"job_status": "not an object"}))
    response = relay.get("/job-status/job-1")
    assert response.status_code == 500 and response.json()["code"] == "internal_error"
