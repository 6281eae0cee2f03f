"""`sutro_jobs()`: the backend's jobs as a table (id, function, status, rows, created, progress, cost).

A TEMP table macro over ``read_parquet(_sutro_jobs(txid_current() + refresh))``: the
UDF lists the jobs when the statement binds and writes them to a Parquet file (the
argument only makes every statement ask afresh, and the macro body unevaluated
until it is called).
"""

from __future__ import annotations

import os
import uuid
from datetime import datetime
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from .session import SutroSession

JOBS_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("function", pa.string()),
        ("status", pa.string()),
        ("rows", pa.int64()),
        ("created", pa.timestamp("us", tz="UTC")),
        ("progress", pa.float64()),
        ("cost", pa.float64()),
    ]
)


def job_row(job: dict[str, Any]) -> dict[str, Any]:
    """One v1 job object -> one `sutro_jobs()` row; progress is the fraction of rows done (0..1)."""
    rows = job.get("num_rows")
    done = job.get("rows_done")
    if job.get("status") == "SUCCEEDED":
        progress = 1.0
    elif rows and done is not None:
        progress = min(done / rows, 1.0)
    else:
        progress = None
    cost = job.get("job_cost")
    return {
        "id": job.get("job_id"),
        "function": job.get("model"),
        "status": job.get("status"),
        "rows": rows,
        "created": _timestamp(job.get("datetime_created")),
        "progress": progress,
        "cost": cost if cost is not None else job.get("cost_estimate"),
    }


def _timestamp(text: str | None) -> datetime | None:
    if not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


class JobsTable:
    """The `_sutro_jobs(token)` UDF of one session."""

    def __init__(self, session: SutroSession) -> None:
        self.session = session

    def __call__(self, _token: int | None) -> str:
        table = pa.Table.from_pylist([job_row(job) for job in self.session.client.list_jobs()], schema=JOBS_SCHEMA)
        path = os.path.join(self.session.workdir, f"jobs-{uuid.uuid4().hex}.parquet")
        pq.write_table(table, path)
        return path
