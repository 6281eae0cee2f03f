"""The job life cycle (v1 §4, §5.3-5.5, §5.8, §5.9) on every backend."""

from __future__ import annotations

from datetime import datetime

import pytest

from sutro_sql.backends.base import JOB_STATUSES, TERMINAL_STATUSES
from sutro_sql.errors import ConflictError, NotFoundError
from tests.backends.gated_engine import HOLD
from tests.support.local_jobs import ticket_rows, wait_for_job

#: v1 §4.2 fields every job object carries, plus sutro-sql's row counters.
JOB_FIELDS = (
    "job_id", "status", "model", "system_prompt", "job_priority", "datetime_created", "datetime_started",
    "datetime_completed", "json_schema", "sampling_params", "name", "description", "dataset_id", "input_tokens",
    "output_tokens", "job_cost", "num_rows", "failure_reason", "cost_estimate", "run_type", "rows_done", "rows_failed",
)  # fmt: skip


def held_rows(count: int) -> list[dict]:
    """Rows whose first chunk waits at the gate while it is closed."""
    return [{"subject": HOLD, "body": "bug"}, *ticket_rows(count - 1)]


def test_a_finished_job_object_carries_every_v1_field(backend):
    rows = [*ticket_rows(3), {"subject": "x", "body": "FAIL_ROW"}]
    job_id = backend.submit_batch("ticket-triage", rows, job_priority=1, job_name="suite", description="four rows")
    job = wait_for_job(backend, job_id)
    assert set(JOB_FIELDS) <= job.keys()
    assert (job["job_id"], job["status"], job["model"], job["job_priority"]) == (
        job_id,
        "SUCCEEDED",
        "ticket-triage",
        1,
    )
    assert (job["name"], job["description"], job["run_type"]) == ("suite", "four rows", "FULL")
    assert (job["num_rows"], job["rows_done"], job["rows_failed"], job["failure_reason"]) == (4, 4, 1, None)
    assert job["input_tokens"] > 0 and job["output_tokens"] > 0 and job["job_cost"] >= 0
    created, completed = (datetime.fromisoformat(job[f]) for f in ("datetime_created", "datetime_completed"))
    assert created.tzinfo is not None and created <= completed
    assert backend.get_job_status(job_id) == "SUCCEEDED"


def test_a_job_is_visible_at_once_with_a_v1_status(backend, gate):
    gate.close()
    job_id = backend.submit_batch("ticket-triage", held_rows(2))
    assert backend.get_job_status(job_id) in ("QUEUED", "STARTING", "RUNNING")
    assert backend.get_job(job_id)["status"] in JOB_STATUSES
    assert backend.get_job(job_id)["datetime_created"] is not None


def test_an_unknown_job_is_not_found_everywhere(backend):
    calls = [backend.get_job_status, backend.get_job, backend.cancel_job, backend.get_job_results]
    for call in calls:
        with pytest.raises(NotFoundError) as caught:
            call("job-does-not-exist")
        assert caught.value.code == "job_not_found"
    with pytest.raises(NotFoundError):
        list(backend.stream_job_progress("job-does-not-exist"))


def test_the_progress_stream_counts_up_to_every_row_and_ends_when_the_job_does(backend):
    rows = ticket_rows(150)
    job_id = backend.submit_batch("ticket-triage", rows)
    events = list(backend.stream_job_progress(job_id))
    assert backend.get_job_status(job_id) in TERMINAL_STATUSES
    assert {event["update_type"] for event in events} <= {"progress", "tokens", "heartbeat"}
    progress = [event["result"] for event in events if event["update_type"] == "progress"]
    assert progress == sorted(progress) and progress[-1] == len(rows)
    tokens = [event["result"] for event in events if event["update_type"] == "tokens"]
    assert tokens[-1]["input_tokens"] == backend.get_job(job_id)["input_tokens"]


def test_cancelling_a_running_job_goes_through_cancelling_to_cancelled(backend, gate):
    gate.close()
    job_id = backend.submit_batch("ticket-triage", held_rows(200))
    wait_for_job(backend, job_id, statuses={"RUNNING"})
    backend.cancel_job(job_id)
    assert backend.get_job_status(job_id) == "CANCELLING"  # the worker is held inside its first chunk
    gate.open()
    job = wait_for_job(backend, job_id)
    assert job["status"] == "CANCELLED" and job["rows_done"] < 200
    with pytest.raises(ConflictError):
        backend.get_job_results(job_id)


def test_cancelling_a_finished_job_changes_nothing(backend):
    job_id = backend.submit_batch("ticket-triage", ticket_rows(2))
    before = wait_for_job(backend, job_id)
    backend.cancel_job(job_id)
    assert backend.get_job(job_id)["status"] == before["status"] == "SUCCEEDED"


def test_list_jobs_is_newest_first(backend):
    older = backend.submit_batch("ticket-triage", ticket_rows(1))
    newer = backend.submit_batch("ticket-triage", ticket_rows(1))
    jobs = backend.list_jobs()
    ids = [job["job_id"] for job in jobs]
    assert ids.index(newer) < ids.index(older)
    assert all(set(JOB_FIELDS) <= job.keys() for job in jobs)
