"""Helpers for tests that drive LocalBackend jobs (tests/test_local_*.py)."""

from __future__ import annotations

import time
from typing import Any

from sutro_sql.backends.base import TERMINAL_STATUSES


def wait_for_job(backend: Any, job_id: str, *, timeout: float = 20.0, statuses=TERMINAL_STATUSES) -> dict[str, Any]:
    """Poll until the job reaches one of `statuses`; return the job object."""
    deadline = time.monotonic() + timeout
    while True:
        job = backend.get_job(job_id)
        if job["status"] in statuses:
            return job
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job_id} still {job['status']} after {timeout}s: {job}")
        time.sleep(0.02)


def ticket_rows(count: int, *, start: int = 0) -> list[dict[str, Any]]:
    """Distinct ticket-triage rows with an `id` column."""
    topics = ["billing refund", "bug crash", "account_access login", "feature_request idea"]
    return [
        {"id": i, "subject": f"ticket {i}", "body": f"{topics[i % len(topics)]} number {i}"}
        for i in range(start, start + count)
    ]
