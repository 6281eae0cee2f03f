"""What the engine answers, computed in-process from the example specs, so every assertion in
the suite predicts answers instead of hard-coding them."""

from __future__ import annotations

import json
from typing import Any

import pyarrow as pa

from sutro_sql.functions import load_spec_file
from tests.support.engines import KeywordEngine
from tests.support.local_jobs import wait_for_job
from tests.support.serve_process import EXAMPLE_FUNCTIONS

TRIAGE = load_spec_file(EXAMPLE_FUNCTIONS / "ticket-triage.yaml")[0]
EXTRACTOR = load_spec_file(EXAMPLE_FUNCTIONS / "ticket-extractor.yaml")[0]


def triage_labels(rows: list[dict[str, Any]]) -> list[str | None]:
    """The label of each row, None for a row the engine refuses (FAIL_ROW)."""
    answers = KeywordEngine(delay=0).answer(TRIAGE, [TRIAGE.convert_input(row) for row in rows])
    return [getattr(answer, "output", None) for answer in answers]


def labels_of(table: pa.Table) -> list[str | None]:
    return [json.loads(text)["response"] if text else None for text in table.column("outputs").to_pylist()]


def inputs_of(table: pa.Table) -> list[dict[str, str]]:
    return [json.loads(text) for text in table.column("inputs").to_pylist()]


def results_when_done(backend, job_id: str, **kwargs) -> pa.Table:
    job = wait_for_job(backend, job_id)
    assert job["status"] == "SUCCEEDED", job
    return backend.get_job_results(job_id, **kwargs)
