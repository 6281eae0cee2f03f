"""RemoteBackend against `sutro-sql serve`: the v1 calls in-process (RemoteBackend over
`InProcessTransport` to `create_app(LocalBackend)`, no socket, so they are fast), and what needs
a real socket over one: a wrong key, the SQL layer, HTTPS, a slow and a killed server.

The served home answers with the deterministic KeywordEngine, so every answer is
predicted here by running the same engine in-process on the same spec.
"""

from __future__ import annotations

import json
import threading
import time

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sutro_sql.backends.local import LocalBackend
from sutro_sql.backends.remote import RemoteBackend
from sutro_sql.errors import AuthenticationError, ConflictError, NotFoundError, ValidationError
from sutro_sql.functions import load_spec_file
from sutro_sql.http import RetryPolicy
from sutro_sql.server import create_app
from sutro_sql.sql_layer import register
from tests.support.asgi_server import InProcessTransport
from tests.support.engines import KeywordEngine
from tests.support.serve_process import EXAMPLE_FUNCTIONS, ServedDeployment, make_home
from tests.support.tls import HAS_OPENSSL, self_signed_certificate

TRIAGE = load_spec_file(EXAMPLE_FUNCTIONS / "ticket-triage.yaml")[0]
EXTRACTOR = load_spec_file(EXAMPLE_FUNCTIONS / "ticket-extractor.yaml")[0]
TICKETS = [
    {"ticket_id": 101, "subject": "Invoice", "body": "billing question about my invoice"},
    {"ticket_id": 102, "subject": "Crash", "body": "the app shows a bug on start"},
    {"ticket_id": 103, "subject": "Oops", "body": "FAIL_ROW please"},
    {"ticket_id": 104, "subject": "Idea", "body": "a feature_request for dark mode"},
]


@pytest.fixture
def remote(home, tmp_path):
    """A RemoteBackend calling the v1 app over a LocalBackend in this process (overrides the
    socket one in tests/conftest.py for this module)."""
    key = "sk_inprocess_" + "k" * 12
    with (
        LocalBackend(home, engine=KeywordEngine(delay=0)) as local,
        RemoteBackend(
            "http://localhost", key, home=tmp_path / "client-home", transport=InProcessTransport(create_app(local, key))
        ) as backend,
    ):
        yield backend


def expected_labels(rows: list[dict]) -> list[str | None]:
    answers = KeywordEngine(delay=0).answer(TRIAGE, [TRIAGE.convert_input(row) for row in rows])
    return [getattr(answer, "output", None) for answer in answers]


def wait_for(backend: RemoteBackend, job_id: str) -> list[dict]:
    events = list(backend.stream_job_progress(job_id))
    assert backend.get_job_status(job_id) in ("SUCCEEDED", "FAILED", "CANCELLED")
    return events


def test_auth_check_and_quotas(remote):
    assert remote.check_auth() is True
    quotas = remote.get_quotas()
    assert len(quotas) == 2 and {"row_quota", "token_quota"} <= quotas[0].keys()


def test_a_wrong_key_is_refused_with_401(deployment, tmp_path):
    with RemoteBackend(deployment.url, "sk_wrong", home=tmp_path) as backend:
        assert backend.check_auth() is False
        with pytest.raises(AuthenticationError) as caught:
            backend.run_function("ticket-triage", {"subject": "a", "body": "b"})
    assert (caught.value.status_code, caught.value.code) == (401, "unauthorized")
    assert caught.value.request_id.startswith("rt_")


def test_run_function_answers_like_the_engine(remote):
    row = {"subject": "Refund", "body": "a billing problem"}
    answer = remote.run_function("ticket-triage", row)
    assert answer["output"] == answer["response"] == expected_labels([row])[0] == "billing"
    assert [p["confidence"] for p in answer["predictions"]] == sorted(
        (p["confidence"] for p in answer["predictions"]), reverse=True
    )
    assert answer["confidence"] == pytest.approx(0.8)
    assert answer["usage"]["input_tokens"] > 0
    assert remote.run_function("ticket-triage", row, confidence_scoring=False)["confidence"] is None


def test_run_function_takes_a_plain_string_for_a_single_input_function(remote):
    answer = remote.run_function("ticket-extractor", "order ORD-1 broke, angry")
    assert set(answer["output"]) == set(EXTRACTOR.output["properties"])


def test_unknown_function_is_404_function_not_found(remote):
    with pytest.raises(NotFoundError) as caught:
        remote.run_function("no-such-function", {"x": "y"})
    assert (caught.value.status_code, caught.value.code) == (404, "function_not_found")


def test_missing_input_is_422_naming_the_field(remote):
    with pytest.raises(ValidationError) as caught:
        remote.run_function("ticket-triage", {"subject": "only a subject"})
    assert (caught.value.status_code, caught.value.code) == (422, "invalid_input")
    assert "body" in caught.value.detail


def test_unknown_job_is_404_job_not_found(remote):
    for call in (remote.get_job_status, remote.get_job, remote.cancel_job):
        with pytest.raises(NotFoundError) as caught:
            call("job-does-not-exist")
        assert caught.value.code == "job_not_found"


def test_batch_round_trip_keeps_row_order_ids_and_failures(remote):
    job_id = remote.submit_batch("ticket-triage", TICKETS, id_column="ticket_id", job_name="round-trip")
    events = wait_for(remote, job_id)
    progress = [e["result"] for e in events if e["update_type"] == "progress"]
    assert progress == sorted(progress) and progress[-1] == len(TICKETS)
    job = remote.get_job(job_id)
    assert (job["status"], job["num_rows"], job["name"]) == ("SUCCEEDED", 4, "round-trip")
    table = remote.get_job_results(job_id, include_inputs=True)
    assert table.column_names == ["inputs", "ticket_id", "outputs", "confidence_score", "error"]
    assert table.column("ticket_id").to_pylist() == [101, 102, 103, 104]
    labels = [json.loads(o)["response"] if o else None for o in table.column("outputs").to_pylist()]
    assert labels == expected_labels(TICKETS)
    errors = table.column("error").to_pylist()
    assert errors[2] and "FAIL_ROW" in errors[2] and errors[:2] == [None, None]
    assert json.loads(table.column("inputs")[0].as_py())["body"] == TICKETS[0]["body"]


def test_batch_from_a_parquet_file_and_an_arrow_table(remote, tmp_path):
    rows = [{"subject": f"s{i}", "body": f"bug number {i}"} for i in range(300)]
    path = tmp_path / "rows.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path)
    jobs = [
        remote.submit_batch("ticket-triage", str(path)),
        remote.submit_batch("ticket-triage", pa.Table.from_pylist(rows)),
    ]
    for job_id in jobs:
        wait_for(remote, job_id)
        outputs = remote.get_job_results(job_id).column("outputs").to_pylist()
        assert [json.loads(o)["response"] for o in outputs] == ["bug"] * 300


def test_dry_run_is_an_estimate_job_with_a_cost(remote):
    job_id = remote.submit_batch("ticket-triage", TICKETS, dry_run=True)
    wait_for(remote, job_id)
    job = remote.get_job(job_id)
    assert job["status"] == "SUCCEEDED" and job["cost_estimate"] > 0 and job["job_cost"] is None


def test_a_content_key_reattaches_and_list_jobs_is_newest_first(remote):
    first = remote.submit_batch("ticket-triage", TICKETS[:1], content_key="key-1", description="keyed")
    again = remote.submit_batch("ticket-triage", TICKETS[:1], content_key="key-1", description="keyed")
    assert again == first
    other = remote.submit_batch("ticket-triage", TICKETS[:2])
    ids = [job["job_id"] for job in remote.list_jobs()]
    assert ids.index(other) < ids.index(first)
    assert remote.get_job(first)["description"] == "keyed [sutro-sql:key-1]"


TICKETS_TABLE = (
    "CREATE TABLE tickets AS SELECT * FROM (VALUES (1, 'Invoice', 'billing question'), (2, 'Crash', 'a bug'),"
    " (3, 'Crash', 'a bug')) t(id, subject, body)"
)
BATCH_QUERY = (
    "SELECT id, response, confidence_score FROM sutro_batch('ticket-triage', 'SELECT * FROM tickets',"
    " id_column := 'id') ORDER BY id"
)


def test_sql_functions_run_through_the_remote_backend(deployment, tmp_path):
    con = duckdb.connect()
    con.execute(TICKETS_TABLE)
    with RemoteBackend(deployment.url, deployment.api_key, home=tmp_path) as remote:
        session = register(con, backend=remote, progress=False, cache=False)
        scalar = con.execute(
            "SELECT id, sutro_run('ticket-triage', {'subject': subject, 'body': body}).response FROM tickets ORDER BY id"
        ).fetchall()
        assert scalar == [(1, "billing"), (2, "bug"), (3, "bug")]
        assert session.stats.calls == 2  # the duplicate row was asked once
        assert con.execute(BATCH_QUERY).fetchall() == [(1, "billing", 0.8), (2, "bug", 0.8), (3, "bug", 0.8)]


def test_a_sql_batch_rerun_in_a_fresh_process_reattaches_to_its_job(deployment, tmp_path):
    """Same query from new backends and connections (as after a crash): one job, found by its content key."""
    answers, job_counts = [], []
    for attempt in ("first", "again"):
        con = duckdb.connect()
        con.execute(TICKETS_TABLE.replace("'a bug'", "'a bug, rerun'"))
        with RemoteBackend(deployment.url, deployment.api_key, home=tmp_path / attempt) as remote:
            register(con, backend=remote, progress=False, cache=False)
            answers.append(con.execute(BATCH_QUERY).fetchall())
            job_counts.append(len(remote.list_jobs()))
    assert answers[0] == answers[1] == [(1, "billing", 0.8), (2, "bug", 0.8), (3, "bug", 0.8)]
    assert job_counts[1] == job_counts[0]  # the second run submitted nothing


@pytest.mark.skipif(not HAS_OPENSSL, reason="needs the openssl command to make a certificate")
def test_https_serving_with_a_certificate(tmp_path, monkeypatch):
    cert, key = self_signed_certificate(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # trust this certificate, as a user would their CA's
    with ServedDeployment(make_home(tmp_path / "home"), tls=(cert, key)) as served:
        assert served.url.startswith("https://")
        with RemoteBackend(served.url, served.api_key, home=tmp_path) as remote:
            assert remote.check_auth() is True
            assert remote.run_function("ticket-triage", {"subject": "x", "body": "billing"})["output"] == "billing"


@pytest.fixture
def slow_deployment(tmp_path, request):
    """A server whose engine takes `request.param` seconds per row, logging every row it answers."""
    log = tmp_path / "answered.log"
    env = {"SUTRO_TEST_ENGINE_DELAY": str(request.param), "SUTRO_TEST_ENGINE_LOG": str(log), "SUTRO_SQL_WORKERS": "1"}
    served = ServedDeployment(make_home(tmp_path / "home"), env=env).start()
    served.answered_log = log
    yield served
    served.stop()


@pytest.mark.parametrize("slow_deployment", [0.05], indirect=True)
def test_results_of_a_running_job_are_409_and_cancel_ends_it(slow_deployment, tmp_path):
    with RemoteBackend(slow_deployment.url, slow_deployment.api_key, home=tmp_path) as backend:
        job_id = backend.submit_batch("ticket-triage", TICKETS * 50)
        with pytest.raises(ConflictError) as caught:
            backend.get_job_results(job_id)
        assert (caught.value.status_code, caught.value.code) == (409, "job_not_succeeded")
        backend.cancel_job(job_id)
        wait_for(backend, job_id)
        assert backend.get_job_status(job_id) == "CANCELLED"


@pytest.mark.slow
@pytest.mark.parametrize("slow_deployment", [0.03], indirect=True)
def test_a_batch_survives_its_server_being_killed_and_restarted(slow_deployment, tmp_path):
    """SIGKILL mid-job, restart on the same port: the stream reconnects, the job finishes, no row lost.
    (The restarted server takes the job over at once: the dead worker's process is gone, so its
    lease counts as lapsed without waiting for it to expire.)"""
    rows = [
        {"subject": f"ticket {i}", "body": ["billing", "bug", "feature_request"][i % 3] + f" #{i}"} for i in range(120)
    ]
    policy = RetryPolicy(max_retries=6, backoff_base=0.2, backoff_max=2.0)
    with RemoteBackend(slow_deployment.url, slow_deployment.api_key, home=tmp_path, retry=policy) as backend:
        job_id = backend.submit_batch("ticket-triage", rows, id_column="subject")
        events: list[dict] = []
        streamer = threading.Thread(target=lambda: events.extend(backend.stream_job_progress(job_id)), daemon=True)
        streamer.start()
        deadline = time.monotonic() + 30
        while backend.get_job(job_id)["rows_done"] < 10 and time.monotonic() < deadline:
            time.sleep(0.1)
        done_before_kill = backend.get_job(job_id)["rows_done"]
        assert 10 <= done_before_kill < len(rows)
        slow_deployment.kill()
        time.sleep(0.5)
        slow_deployment.start()
        streamer.join(timeout=20)
        assert not streamer.is_alive(), "the progress stream did not end after the restart"
        assert backend.get_job_status(job_id) == "SUCCEEDED"
        table = backend.get_job_results(job_id)
    assert table.column("subject").to_pylist() == [row["subject"] for row in rows]
    labels = [json.loads(o)["response"] for o in table.column("outputs").to_pylist()]
    assert labels == expected_labels(rows)
    answered = slow_deployment.answered_log.read_text().splitlines()
    assert {f"{r['subject']} {r['body']}" for r in rows} <= set(answered)
    assert [e["result"] for e in events if e["update_type"] == "progress"][-1] == len(rows)
