"""Batch submissions (v1 §5.2) and their results (§5.6), from every input form, on every backend.

Inputs are text as the v1 API sends them: a CSV cell is never type-inferred, and bytes reach
a Function decoded as UTF-8 (or the submission is refused naming the row and the column)."""

from __future__ import annotations

import json

import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest

from sutro_sql.errors import ConflictError, NotFoundError, ValidationError
from tests.backends.expected import inputs_of, labels_of, results_when_done, triage_labels
from tests.backends.gated_engine import HOLD
from tests.support.local_jobs import ticket_rows, wait_for_job

ROWS = ticket_rows(12)[::-1]  # ids descending: order cannot come from sorting


def _csv(rows, folder):
    pa_csv.write_csv(pa.Table.from_pylist(rows), folder / "rows.csv")
    return str(folder / "rows.csv")


def _parquet(rows, folder):
    pq.write_table(pa.Table.from_pylist(rows), folder / "rows.parquet", row_group_size=5)
    return str(folder / "rows.parquet")


FORMS = {
    "rows": lambda rows, folder: rows,
    "generator": lambda rows, folder: (row for row in rows),
    "arrow-table": lambda rows, folder: pa.Table.from_pylist(rows),
    "arrow-reader": lambda rows, folder: pa.Table.from_pylist(rows).to_reader(max_chunksize=5),
    "polars": lambda rows, folder: pl.DataFrame(rows),
    "pandas": lambda rows, folder: pd.DataFrame(rows),
    "parquet": _parquet,
    "csv": _csv,
}


@pytest.mark.parametrize("form", FORMS)
def test_every_input_form_gives_results_in_input_order_with_the_id_column(backend, tmp_path, form):
    job_id = backend.submit_batch("ticket-triage", FORMS[form](ROWS, tmp_path), id_column="id")
    table = results_when_done(backend, job_id)
    assert table.column_names == ["id", "outputs", "confidence_score", "error"]
    ids = [row["id"] for row in ROWS]
    # A CSV cell is text, as the v1 API sends it; every other form keeps the id's type.
    assert table.column("id").to_pylist() == ([str(i) for i in ids] if form == "csv" else ids)
    assert labels_of(table) == triage_labels(ROWS)
    assert table.column("error").null_count == len(ROWS)


@pytest.mark.parametrize("form", ["csv", "parquet"])
def test_leading_zeros_of_a_text_column_reach_the_function_unchanged(backend, tmp_path, form):
    rows = [{"code": "00123", "subject": "00123", "body": "bug 007"}, {"code": "00124", "subject": "4", "body": "0.50"}]
    job_id = backend.submit_batch("ticket-triage", FORMS[form](rows, tmp_path), id_column="code")
    table = results_when_done(backend, job_id, include_inputs=True)
    assert inputs_of(table) == [{"subject": r["subject"], "body": r["body"]} for r in rows]
    assert table.column("code").to_pylist() == ["00123", "00124"]


def test_a_latin1_csv_cell_is_refused_naming_the_row_and_column(backend, tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes("subject,body\nok,fine\nCaf\xe9,cr\xe8me br\xfbl\xe9e\n".encode("latin-1"))
    with pytest.raises(ValidationError) as caught:
        backend.submit_batch("ticket-triage", str(path))
    assert "row 1" in caught.value.detail and "'subject'" in caught.value.detail
    assert "UTF-8" in caught.value.detail and "b'" not in caught.value.detail


def test_a_utf8_parquet_binary_value_reaches_the_function_as_text(backend, tmp_path):
    table = pa.table({"subject": pa.array(["caf\xe9".encode()], pa.binary()), "body": ["cr\xe8me bug"]})
    pq.write_table(table, tmp_path / "binary.parquet")
    results = results_when_done(
        backend, backend.submit_batch("ticket-triage", str(tmp_path / "binary.parquet")), include_inputs=True
    )
    assert inputs_of(results) == [{"subject": "caf\xe9", "body": "cr\xe8me bug"}]


def test_a_parquet_binary_value_that_is_not_utf8_is_refused_naming_the_row_and_column(backend, tmp_path):
    body = pa.array([b"fine", "caf\xe9".encode("latin-1")], pa.binary())
    pq.write_table(pa.table({"subject": ["a", "b"], "body": body}), tmp_path / "latin1.parquet")
    with pytest.raises(ValidationError) as caught:
        backend.submit_batch("ticket-triage", str(tmp_path / "latin1.parquet"))
    assert "row 1" in caught.value.detail and "'body'" in caught.value.detail and "b'" not in caught.value.detail


def test_bytes_in_a_row_reach_the_function_as_text(backend):
    job_id = backend.submit_batch("ticket-triage", [{"subject": "caf\xe9".encode(), "body": b"a bug"}])
    assert inputs_of(results_when_done(backend, job_id, include_inputs=True)) == [
        {"subject": "caf\xe9", "body": "a bug"}
    ]


def test_a_failing_row_has_a_null_output_and_an_error_and_the_job_succeeds(backend):
    rows = [{"subject": "a", "body": "billing"}, {"subject": "b", "body": "FAIL_ROW now"}]
    table = results_when_done(backend, backend.submit_batch("ticket-triage", rows))
    assert table.column("outputs").to_pylist()[1] is None
    errors = table.column("error").to_pylist()
    assert errors[0] is None and "FAIL_ROW" in errors[1]


def test_results_with_inputs_and_logprobs_add_those_columns_only(backend):
    job_id = backend.submit_batch("ticket-triage", ROWS[:3])
    table = results_when_done(backend, job_id, include_inputs=True, include_cumulative_logprobs=True)
    assert table.column_names == ["inputs", "outputs", "confidence_score", "cumulative_logprobs", "error"]
    assert inputs_of(table) == [{"subject": r["subject"], "body": r["body"]} for r in ROWS[:3]]
    assert table.schema.field("confidence_score").type == pa.float64()


def test_a_bad_row_is_refused_at_submission_naming_the_field(backend):
    with pytest.raises(ValidationError) as caught:
        backend.submit_batch("ticket-triage", [{"subject": "a", "body": "b"}, {"subject": "no body"}])
    assert "body" in caught.value.detail and "1" in caught.value.detail


def test_an_unknown_function_is_not_found(backend):
    with pytest.raises(NotFoundError) as caught:
        backend.submit_batch("no-such-function", ROWS[:1])
    assert caught.value.code == "function_not_found"


def test_a_content_key_reattaches_to_the_same_job(backend):
    first = backend.submit_batch("ticket-triage", ROWS[:2], content_key="suite-key-1")
    assert backend.submit_batch("ticket-triage", ROWS[:2], content_key="suite-key-1") == first
    assert backend.submit_batch("ticket-triage", ROWS[:2], content_key="suite-key-2") != first


def test_a_dry_run_is_an_estimate_job_with_a_cost_and_no_results(backend):
    job = wait_for_job(backend, backend.submit_batch("ticket-triage", ROWS, dry_run=True))
    assert (job["status"], job["run_type"], job["num_rows"], job["job_cost"]) == ("SUCCEEDED", "ESTIMATE", 12, None)
    assert job["cost_estimate"] > 0
    with pytest.raises(ConflictError):
        backend.get_job_results(job["job_id"])


def test_results_before_success_are_a_conflict(backend, gate):
    gate.close()
    job_id = backend.submit_batch("ticket-triage", [{"subject": HOLD, "body": "bug"}])
    with pytest.raises(ConflictError) as caught:
        backend.get_job_results(job_id)
    assert caught.value.code == "job_not_succeeded"
    gate.open()
    assert json.loads(results_when_done(backend, job_id).column("outputs")[0].as_py())["response"] == "bug"


def test_results_stream_in_chunks_that_add_up_to_the_whole_job_in_order(backend):
    rows = ticket_rows(23)[::-1]
    job_id = backend.submit_batch("ticket-triage", rows, id_column="id")
    whole = results_when_done(backend, job_id, include_inputs=True)
    chunks = list(backend.iter_job_results(job_id, include_inputs=True, chunk_rows=5))
    assert [chunk.num_rows for chunk in chunks] == [5, 5, 5, 5, 3]
    assert pa.Table.from_batches(chunks).equals(whole)
    assert pa.Table.from_batches(chunks).column("id").to_pylist() == [row["id"] for row in rows]
    assert labels_of(whole) == triage_labels(rows)


def test_streaming_the_results_of_an_unfinished_job_fails_before_the_first_chunk(backend, gate):
    gate.close()
    job_id = backend.submit_batch("ticket-triage", [{"subject": HOLD, "body": "wait"}])
    with pytest.raises(ConflictError):
        backend.iter_job_results(job_id, chunk_rows=5)
    gate.open()
    wait_for_job(backend, job_id)
