"""RemoteBackend against a real loopback HTTP server that misbehaves on cue (tests/support/fault_server.py).

Each bad day ends in the right outcome: a correct answer after retrying what is safe to
retry, or a clear typed error, and never a hang. The key never shows up anywhere.
"""

from __future__ import annotations

import json
import logging
import time

import pandas as pd
import polars as pl
import pytest

from sutro_sql.backends.remote import RemoteBackend
from sutro_sql.errors import BackendUnavailableError, NotFoundError, RateLimitError, ServerError, ValidationError
from sutro_sql.http import RetryPolicy
from tests.support.fault_server import FaultServer, Reply, free_port

KEY = "sk_live_fault_" + "k3y" * 6
STATUS_OK = Reply(200, {"job_status": {"job-1": "RUNNING"}})
RUN_OK = Reply(200, {"request_id": "rt_1", "output": "bug", "confidence": 0.9, "usage": {}})


def error(status: int, code: str, headers: dict[str, str] | None = None) -> Reply:
    return Reply(
        status,
        {"detail": f"HTTP {status} on purpose", "code": code, "request_id": f"rt_{status}"},
        headers=headers or {},
    )


@pytest.fixture
def server():
    with FaultServer() as fault_server:
        yield fault_server


def backend_for(url: str, tmp_path, *, retries: int = 3, timeout: float = 5.0) -> RemoteBackend:
    policy = RetryPolicy(max_retries=retries, backoff_base=0.02, backoff_max=0.1)
    return RemoteBackend(url, KEY, home=tmp_path, timeout=timeout, retry=policy, reconnect_seconds=2.0)


def test_sends_the_key_header_to_v1_paths(server, tmp_path):
    server.queue(STATUS_OK)
    with backend_for(server.url, tmp_path) as backend:
        assert backend.get_job_status("job-1") == "RUNNING"
    assert server.seen[0].path == "/v1/job-status/job-1"
    assert server.seen[0].headers["Authorization"] == f"Key {KEY}"


def test_retry_after_is_honoured_and_measured(server, tmp_path):
    server.queue(error(429, "rate_limited", {"Retry-After": "0.8"}), STATUS_OK)
    with backend_for(server.url, tmp_path) as backend:
        started = time.monotonic()
        assert backend.get_job_status("job-1") == "RUNNING"
        elapsed = time.monotonic() - started
    gap = server.seen[1].at - server.seen[0].at
    assert 0.8 <= gap < 1.8
    assert elapsed >= 0.8


def test_429_on_a_function_run_is_retried_because_nothing_ran(server, tmp_path):
    server.queue(error(429, "rate_limited", {"Retry-After": "0.1"}), RUN_OK)
    with backend_for(server.url, tmp_path) as backend:
        assert backend.run_function("triage", {"body": "x"})["output"] == "bug"
    assert [seen.method for seen in server.seen] == ["POST", "POST"]


def test_rate_limit_that_never_lifts_raises_with_retry_after(server, tmp_path):
    server.default = error(429, "rate_limited", {"Retry-After": "0.05"})
    with backend_for(server.url, tmp_path, retries=2) as backend, pytest.raises(RateLimitError) as caught:
        backend.run_function("triage", {"body": "x"})
    assert caught.value.retry_after == 0.05
    assert (caught.value.code, caught.value.request_id, caught.value.status_code) == ("rate_limited", "rt_429", 429)
    assert len(server.seen) == 3


@pytest.mark.parametrize("status", [500, 502, 503])
def test_5xx_on_a_read_is_retried_until_it_succeeds(server, tmp_path, status):
    server.queue(error(status, "internal_error"), error(status, "internal_error"), STATUS_OK)
    with backend_for(server.url, tmp_path) as backend:
        assert backend.get_job_status("job-1") == "RUNNING"
    assert len(server.seen) == 3


def test_5xx_that_persists_ends_in_a_server_error(server, tmp_path):
    server.default = error(503, "provider_not_configured")
    with backend_for(server.url, tmp_path, retries=2) as backend, pytest.raises(ServerError) as caught:
        backend.list_jobs()
    assert caught.value.code == "provider_not_configured"
    assert len(server.seen) == 3


def test_5xx_on_a_function_run_is_not_retried(server, tmp_path):
    server.queue(error(503, "provider_not_configured"), RUN_OK)
    with backend_for(server.url, tmp_path) as backend, pytest.raises(ServerError) as caught:
        backend.run_function("triage", {"body": "x"})
    assert (caught.value.detail, caught.value.code, caught.value.request_id) == (
        "Function 'triage': HTTP 503 on purpose",
        "provider_not_configured",
        "rt_503",
    )
    assert len(server.seen) == 1


def test_5xx_on_a_batch_submission_is_not_retried(server, tmp_path):
    server.queue(error(500, "internal_error"), Reply(200, {"results": "job-2"}))
    with backend_for(server.url, tmp_path) as backend, pytest.raises(ServerError):
        backend.submit_batch("triage", [{"body": "x"}])
    assert len(server.seen) == 1


def test_dropped_connection_on_a_read_is_retried(server, tmp_path):
    server.queue(Reply(200, {"job_status": {"job-1": "RUNNING"}}, drop=True), STATUS_OK)
    with backend_for(server.url, tmp_path) as backend:
        assert backend.get_job_status("job-1") == "RUNNING"
    assert len(server.seen) == 2


def test_dropped_connection_on_a_function_run_is_not_retried(server, tmp_path):
    server.queue(Reply(200, RUN_OK.json, drop=True), RUN_OK)
    with backend_for(server.url, tmp_path) as backend, pytest.raises(BackendUnavailableError, match="connection lost"):
        backend.run_function("triage", {"body": "x"})
    assert len(server.seen) == 1


def test_slow_response_past_the_timeout_fails_instead_of_hanging(server, tmp_path):
    server.default = Reply(200, STATUS_OK.json, delay=3.0)
    with backend_for(server.url, tmp_path, retries=1, timeout=0.3) as backend:
        started = time.monotonic()
        with pytest.raises(BackendUnavailableError, match="timed out"):
            backend.get_job_status("job-1")
        assert time.monotonic() - started < 2.0
    assert len(server.seen) == 2


def test_malformed_json_body_is_a_clear_server_error(server, tmp_path):
    server.queue(Reply(200, body=b'{"job_status": {"job-1": "RUN'))
    with backend_for(server.url, tmp_path) as backend, pytest.raises(ServerError, match="malformed JSON"):
        backend.get_job_status("job-1")


def test_html_error_page_keeps_its_text(server, tmp_path):
    server.queue(Reply(502, body=b"<html>Bad gateway from the proxy</html>", headers={"Content-Type": "text/html"}))
    with backend_for(server.url, tmp_path) as backend, pytest.raises(ServerError, match="Bad gateway from the proxy"):
        backend.run_function("triage", {"body": "x"})


def test_refused_connection_ends_in_backend_unavailable_quickly(tmp_path):
    with backend_for(f"http://127.0.0.1:{free_port()}", tmp_path, retries=2) as backend:
        started = time.monotonic()
        with pytest.raises(BackendUnavailableError, match="cannot connect"):
            backend.submit_batch("triage", [{"body": "x"}])
        assert time.monotonic() - started < 2.0


def test_results_are_retried_on_502_and_become_an_arrow_table(server, tmp_path):
    columns = {
        "ticket_id": [7, 8, 9],
        "outputs": ['{"label": "bug"}', None, '{"label": "billing"}'],
        "confidence_score": [0.9, None, 0.7],
    }
    server.queue(error(502, "provider_error"), Reply(200, {"results": columns}))
    with backend_for(server.url, tmp_path) as backend:
        table = backend.get_job_results("job-1")
    assert table.column_names == ["ticket_id", "outputs", "confidence_score", "error"]
    assert table.column("ticket_id").to_pylist() == [7, 8, 9]
    assert table.column("outputs").to_pylist() == columns["outputs"]
    assert table.column("error").to_pylist()[0] is None
    assert "no answer" in table.column("error").to_pylist()[1]
    assert json.loads(server.seen[1].body)["job_id"] == "job-1"


def test_results_with_unequal_columns_are_refused(server, tmp_path):
    server.queue(Reply(200, {"results": {"outputs": ["a", "b"], "confidence_score": [0.5]}}))
    with backend_for(server.url, tmp_path) as backend, pytest.raises(ServerError, match="unequal lengths"):
        backend.get_job_results("job-1")


def test_batch_rows_stream_from_a_csv_as_text_with_the_content_key(server, tmp_path):
    source = tmp_path / "tickets.csv"
    source.write_text("ticket_id,body\n00123,refund please\n00124,app crashes\n")
    tag = "[sutro-sql:abc123]"
    server.queue(
        Reply(200, {"jobs": [{"job_id": "job-old", "status": "FAILED", "description": tag}]}),
        Reply(200, {"results": "job-new"}),
    )
    with backend_for(server.url, tmp_path) as backend:
        job_id = backend.submit_batch(
            "triage", str(source), id_column="ticket_id", content_key="abc123", description="nightly"
        )
    assert job_id == "job-new"
    body = json.loads(server.seen[1].body)
    assert body["inputs"] == [
        {"ticket_id": "00123", "body": "refund please"},
        {"ticket_id": "00124", "body": "app crashes"},
    ]
    assert (body["model"], body["id_column_name"], body["cost_estimate"]) == ("triage", "ticket_id", False)
    assert body["description"] == f"nightly {tag}"


def test_a_live_job_with_the_content_key_is_reattached_not_resubmitted(server, tmp_path):
    server.queue(Reply(200, {"jobs": [{"job_id": "job-live", "status": "RUNNING", "description": "[sutro-sql:k1]"}]}))
    with backend_for(server.url, tmp_path) as backend:
        assert backend.submit_batch("triage", [{"body": "x"}], content_key="k1") == "job-live"
    assert [seen.path for seen in server.seen] == ["/v1/list-jobs"]


def test_a_cost_estimate_with_the_same_key_is_not_taken_for_the_real_run(server, tmp_path):
    estimate = {"job_id": "job-estimate", "status": "SUCCEEDED", "description": "[sutro-sql:estimate:k1]"}
    server.queue(Reply(200, {"jobs": [estimate]}), Reply(200, {"results": "job-real"}))
    with backend_for(server.url, tmp_path) as backend:
        assert backend.submit_batch("triage", [{"body": "x"}], content_key="k1") == "job-real"
    assert json.loads(server.seen[1].body)["description"] == "[sutro-sql:k1]"


@pytest.mark.parametrize("make_frame", [pl.DataFrame, pd.DataFrame], ids=["polars", "pandas"])
def test_dataframes_are_sent_as_rows(server, tmp_path, make_frame):
    rows = [{"subject": "a", "body": "billing"}, {"subject": "b", "body": "bug"}]
    server.queue(Reply(200, {"results": "job-df"}))
    with backend_for(server.url, tmp_path) as backend:
        assert backend.submit_batch("triage", make_frame(rows)) == "job-df"
    assert json.loads(server.seen[0].body)["inputs"] == rows


def test_job_names_over_45_characters_are_refused_before_sending(server, tmp_path):
    with backend_for(server.url, tmp_path) as backend, pytest.raises(ValidationError, match="name"):
        backend.submit_batch("triage", [{"body": "x"}], job_name="n" * 46)
    assert server.seen == []


def test_progress_stream_reopens_after_a_drop_and_ends_at_a_terminal_status(server, tmp_path):
    lines = b'{"update_type":"progress","result":1}\n{"update_type":"heartbeat"}\nnot json\n'
    server.queue(
        Reply(200, body=lines + b'{"update_type":"progress","result":2}\n' * 50, drop=True),
        STATUS_OK,
        Reply(200, body=lines + b'{"update_type":"progress","result":3}\n'),
        Reply(200, {"job_status": {"job-1": "SUCCEEDED"}}),
    )
    with backend_for(server.url, tmp_path) as backend:
        events = list(backend.stream_job_progress("job-1"))
    assert events[-1] == {"update_type": "progress", "result": 3}
    assert {"update_type": "heartbeat"} in events
    assert [seen.path for seen in server.seen] == [
        "/v1/stream-job-progress/job-1",
        "/v1/job-status/job-1",
        "/v1/stream-job-progress/job-1",
        "/v1/job-status/job-1",
    ]


def test_a_failing_progress_stream_of_a_finished_job_stops_at_the_first_status_check(server, tmp_path):
    """A stream that keeps failing is not retried for `reconnect_seconds` once the job is over."""
    server.queue(error(503, "internal_error"), Reply(200, {"job_status": {"job-1": "SUCCEEDED"}}))
    server.default = error(503, "internal_error")
    with backend_for(server.url, tmp_path) as backend:
        assert list(backend.stream_job_progress("job-1")) == []
    assert [seen.path for seen in server.seen] == ["/v1/stream-job-progress/job-1", "/v1/job-status/job-1"]


def test_progress_stream_waits_through_a_503_from_a_restarting_server(server, tmp_path):
    server.queue(
        error(503, "internal_error"),
        STATUS_OK,
        Reply(200, body=b'{"update_type":"progress","result":5}\n'),
        Reply(200, {"job_status": {"job-1": "FAILED"}}),
    )
    with backend_for(server.url, tmp_path) as backend:
        assert list(backend.stream_job_progress("job-1")) == [{"update_type": "progress", "result": 5}]


def test_progress_stream_of_an_unknown_job_raises_at_once(server, tmp_path):
    server.queue(error(404, "job_not_found"))
    with backend_for(server.url, tmp_path) as backend, pytest.raises(NotFoundError):
        list(backend.stream_job_progress("job-1"))
    assert len(server.seen) == 1


def test_progress_stream_gives_up_when_the_server_stays_down(tmp_path):
    with backend_for(f"http://127.0.0.1:{free_port()}", tmp_path, retries=0) as backend:
        started = time.monotonic()
        with pytest.raises(BackendUnavailableError):
            list(backend.stream_job_progress("job-1"))
        assert time.monotonic() - started < 5.0


def test_the_key_never_appears_in_errors_logs_or_repr(server, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    server.default = Reply(401, {"detail": f"key {KEY} is revoked", "code": "unauthorized", "request_id": "rt_a"})
    errors: list[Exception] = []
    with backend_for(server.url, tmp_path, retries=0) as backend:
        for call in (lambda: backend.run_function("triage", {"body": "x"}), lambda: backend.get_job("job-1")):
            with pytest.raises(Exception) as caught:
                call()
            errors.append(caught.value)
        assert backend.check_auth() is False
        texts = [repr(backend), caplog.text] + [f"{e!s} {e!r} {e.detail} {e.args}" for e in errors]
    assert errors and all(KEY not in text for text in texts)
    assert "***" in str(errors[0])


@pytest.mark.parametrize(
    ("call", "reply", "named"),
    [
        (lambda b: b.list_jobs(), {"jobs": [{"status": "RUNNING"}]}, "jobs.0.job_id"),
        (lambda b: b.get_job_status("job-1"), {"job_status": {"job-1": "running"}}, "job_status.job-1"),
        (lambda b: b.get_job("job-1"), {"job": {"job_id": "job-1", "status": "QUEUED", "num_rows": "x"}}, "num_rows"),
        (lambda b: b.get_quotas(), {"quotas": [{"row_quota": 1}]}, "quotas.0.token_quota"),
        (lambda b: b.submit_batch("triage", [{"body": "x"}]), {"metadata": {}}, "results"),
        (lambda b: b.run_function("triage", {"body": "x"}), {"output": "bug", "confidence": "high"}, "confidence"),
        (lambda b: list(b.stream_job_progress("job-1")), None, "result"),
    ],
    ids=["list-jobs", "job-status", "job", "quotas", "batch-inference", "run", "stream"],
)
def test_a_reply_that_breaks_the_contract_is_a_server_error_naming_the_field(server, tmp_path, call, reply, named):
    if reply is None:
        server.queue(Reply(200, body=b'{"update_type":"progress","result":null}\n'))
    else:
        server.queue(Reply(200, reply))
    with backend_for(server.url, tmp_path, retries=0) as backend, pytest.raises(ServerError) as caught:
        call(backend)
    assert f"{named}: " in caught.value.detail, caught.value.detail
