"""The same Client over a RemoteBackend: `sutro-sql serve`'s v1 API on a real socket (127.0.0.1),
with a LocalBackend answered by the KeywordEngine behind it."""

from __future__ import annotations

import pandas as pd
import polars as pl
import pytest

from sutro_sql.backends.remote import RemoteBackend
from sutro_sql.client import Client
from sutro_sql.errors import JobFailedError
from sutro_sql.server import create_app
from tests.support.asgi_server import serve_app

API_KEY = "client-test-key"
LABELS = ["bug", "billing", "feature_request", "account_access"]
TICKETS = [{"ticket_id": f"t{i}", "subject": f"{label} here", "body": f"row {i}"} for i, label in enumerate(LABELS)]


@pytest.fixture
def api_url(local_backend):
    with serve_app(create_app(local_backend, API_KEY)) as origin:
        yield origin


@pytest.fixture
def remote_client(api_url, monkeypatch):
    monkeypatch.setenv("SUTRO_API_URL", api_url)
    monkeypatch.setenv("SUTRO_API_KEY", API_KEY)
    with Client(progress=False) as client:
        assert isinstance(client.backend, RemoteBackend)
        yield client


def test_run_function_over_http(remote_client):
    result = remote_client.run_function("ticket-triage", {"subject": "billing question", "body": "x"})
    assert result.output == "billing"
    assert result.confidence == pytest.approx(0.8)


def test_batch_from_pandas_comes_back_in_order_with_the_id_column(remote_client):
    original = pd.DataFrame(TICKETS)
    job_id = remote_client.batch_run_function("ticket-triage", original, id_column="ticket_id")
    results = remote_client.await_job_completion(job_id, timeout=30)
    assert isinstance(results, pl.DataFrame)
    assert results.columns == ["ticket_id", "confidence_score", "response", "predictions", "rationale"]
    assert results["ticket_id"].to_list() == list(original["ticket_id"])
    assert results["response"].to_list() == LABELS


def test_cumulative_logprobs_come_back_over_http_when_asked(remote_client):
    job_id = remote_client.batch_run_function("ticket-triage", TICKETS[:2])
    remote_client.wait_for_job(job_id, timeout=30)
    asked = remote_client.get_job_results(job_id, include_cumulative_logprobs=True, unpack_json=False)
    assert asked.columns == ["inference_result", "cumulative_logprobs", "confidence_score"]
    assert asked["cumulative_logprobs"].to_list() == [None, None]  # local engines report confidence instead
    assert "cumulative_logprobs" not in remote_client.get_job_results(job_id, unpack_json=False).columns


def test_stay_attached_draws_progress_from_the_http_stream(remote_client, capsys, monkeypatch):
    monkeypatch.setenv("SUTRO_SQL_PROGRESS", "1")
    remote_client.progress = None
    job_id = remote_client.batch_run_function("ticket-triage", TICKETS, stay_attached=True)
    assert remote_client.get_job_status(job_id) == "SUCCEEDED"
    assert f"{len(TICKETS)}/{len(TICKETS)} rows (100%)" in capsys.readouterr().err


def test_a_cancelled_remote_job_raises(remote_client, local_backend, keyword_engine):
    local_backend.settings.chunk_size = 1
    keyword_engine.delay = 0.01  # 200 rows: two seconds, unless cancelled
    job_id = remote_client.batch_run_function("ticket-triage", TICKETS * 50)
    remote_client.cancel_job(job_id)
    with pytest.raises(JobFailedError, match="CANCELLED"):
        remote_client.wait_for_job(job_id, timeout=30)
