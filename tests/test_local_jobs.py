"""LocalBackend batch jobs: data forms, order, id columns, lifecycle, priorities, cancel, dry run,
failures, content keys, progress streams."""

from __future__ import annotations

import functools
import json
import threading
import time

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sutro_sql.backends.local import LocalBackend
from sutro_sql.errors import ConflictError, NotFoundError, ValidationError
from tests.support.engines import KeywordEngine
from tests.support.local_jobs import ticket_rows, wait_for_job


def expected_label(row: dict) -> str:
    return KeywordEngine().answer(_spec(), [{"subject": row["subject"], "body": row["body"]}])[0].output


@functools.cache
def _spec():
    from sutro_sql.functions import load_spec_file
    from tests.conftest import EXAMPLE_FUNCTIONS

    return load_spec_file(EXAMPLE_FUNCTIONS / "ticket-triage.yaml")[0]


def run_to_results(backend, data, **kwargs) -> pa.Table:
    job_id = backend.submit_batch("ticket-triage", data, **kwargs)
    job = wait_for_job(backend, job_id)
    assert job["status"] == "SUCCEEDED", job
    return backend.get_job_results(job_id)


def _write_csv(path, rows):
    pa.csv.write_csv(pa.Table.from_pylist(rows), path)


DATA_FORMS = {
    "list": lambda rows, tmp: rows,
    "generator": lambda rows, tmp: (row for row in rows),
    "arrow_table": lambda rows, tmp: pa.Table.from_pylist(rows),
    "record_batch_reader": lambda rows, tmp: pa.Table.from_pylist(rows).to_reader(max_chunksize=7),
    "parquet_path": lambda rows, tmp: (
        pq.write_table(pa.Table.from_pylist(rows), tmp / "in.parquet", row_group_size=9),
        str(tmp / "in.parquet"),
    )[1],
    "csv_path": lambda rows, tmp: (_write_csv(tmp / "in.csv", rows), str(tmp / "in.csv"))[1],
    "polars": lambda rows, tmp: pl.DataFrame(rows),
    "pandas": lambda rows, tmp: pd.DataFrame(rows),
}


@pytest.mark.parametrize("form", sorted(DATA_FORMS))
def test_batch_from_each_data_form_returns_results_in_input_order(local_backend, tmp_path, form):
    import pyarrow.csv  # noqa: F401  (used by the csv form)

    rows = ticket_rows(40)[::-1]  # ids descending, so order cannot come from sorting by id
    results = run_to_results(local_backend, DATA_FORMS[form](rows, tmp_path), id_column="id")
    assert results.column_names == ["id", "outputs", "confidence_score", "error"]
    # A CSV cell is text, as the v1 API sends it: the ids come back as the file spells them.
    ids = [str(row["id"]) if form == "csv_path" else row["id"] for row in rows]
    assert results.column("id").to_pylist() == ids
    outputs = [json.loads(text) for text in results.column("outputs").to_pylist()]
    assert [o["response"] for o in outputs] == [expected_label(row) for row in rows]
    assert results.column("confidence_score").to_pylist() == [o["predictions"][0]["confidence"] for o in outputs]
    assert results.column("error").null_count == len(rows)


def test_results_with_inputs_hold_the_converted_rows_as_json(local_backend):
    rows = [{"subject": "a", "body": None}, {"subject": 5, "body": "bug"}]
    job_id = local_backend.submit_batch("ticket-triage", rows)
    wait_for_job(local_backend, job_id)
    results = local_backend.get_job_results(job_id, include_inputs=True)
    assert results.column_names == ["inputs", "outputs", "confidence_score", "error"]
    assert [json.loads(t) for t in results.column("inputs").to_pylist()] == [
        {"subject": "a", "body": ""},
        {"subject": "5", "body": "bug"},
    ]


def test_extraction_job_outputs_are_the_extracted_objects(local_backend):
    job_id = local_backend.submit_batch("ticket-extractor", ["Order ORD-9 broken", "thanks a lot"])
    wait_for_job(local_backend, job_id)
    outputs = [json.loads(t) for t in local_backend.get_job_results(job_id).column("outputs").to_pylist()]
    assert [o["order_id"] for o in outputs] == ["Order", "thanks"]
    assert all(set(o) == {"order_id", "amount", "email", "sentiment", "urgent"} for o in outputs)


def test_finished_job_reports_counters_tokens_and_cost(local_backend):
    rows = ticket_rows(30)
    job_id = local_backend.submit_batch("ticket-triage", rows, job_name="triage", description="nightly")
    job = wait_for_job(local_backend, job_id)
    assert job["job_id"].startswith("job-") and job["status"] == "SUCCEEDED"
    assert (job["num_rows"], job["rows_done"], job["rows_failed"]) == (30, 30, 0)
    assert (job["model"], job["name"], job["description"], job["run_type"]) == (
        "ticket-triage",
        "triage",
        "nightly",
        "FULL",
    )
    assert job["input_tokens"] == sum(len(f"{r['subject']} {r['body']}".split()) for r in rows)
    assert job["output_tokens"] == 30
    assert job["job_cost"] == pytest.approx((job["input_tokens"] + 30) / 1000 * 0.0005)
    assert job["datetime_created"] <= job["datetime_started"] <= job["datetime_completed"]
    assert job["datetime_created"].endswith("Z") and job["failure_reason"] is None


def test_a_failing_row_is_recorded_and_the_job_still_succeeds(local_backend):
    rows = ticket_rows(10)
    rows[4]["body"] = "please FAIL_ROW"
    job_id = local_backend.submit_batch("ticket-triage", rows, id_column="id")
    job = wait_for_job(local_backend, job_id)
    assert (job["status"], job["rows_done"], job["rows_failed"]) == ("SUCCEEDED", 10, 1)
    results = local_backend.get_job_results(job_id).to_pylist()
    assert results[4]["outputs"] is None and results[4]["confidence_score"] is None
    assert "engine refused the row" in results[4]["error"]
    assert all(r["outputs"] and r["error"] is None for i, r in enumerate(results) if i != 4)


def test_missing_field_is_refused_at_submission_naming_row_and_field(local_backend):
    rows = ticket_rows(5)
    del rows[3]["body"]
    with pytest.raises(ValidationError, match=r"row 3 .*body"):
        local_backend.submit_batch("ticket-triage", rows)
    assert local_backend.list_jobs() == []


def test_missing_id_column_and_empty_input_are_refused(local_backend):
    with pytest.raises(ValidationError, match="id column 'key'"):
        local_backend.submit_batch("ticket-triage", ticket_rows(3), id_column="key")
    with pytest.raises(ValidationError, match="no rows"):
        local_backend.submit_batch("ticket-triage", [])
    with pytest.raises(ValidationError, match="clashes"):
        local_backend.submit_batch("ticket-triage", ticket_rows(3), id_column="outputs")
    with pytest.raises(ValidationError, match="job_priority"):
        local_backend.submit_batch("ticket-triage", ticket_rows(3), job_priority=2)
    with pytest.raises(ValidationError, match="no such file"):
        local_backend.submit_batch("ticket-triage", "/nowhere/in.parquet")
    with pytest.raises(NotFoundError):
        local_backend.submit_batch("nope", ticket_rows(3))
    assert local_backend.list_jobs() == []


def test_job_names_and_descriptions_over_the_v1_bounds_are_refused(local_backend):
    with pytest.raises(ValidationError, match="name: job names are at most 45 characters, got 46"):
        local_backend.submit_batch("ticket-triage", ticket_rows(3), job_name="n" * 46)
    with pytest.raises(ValidationError, match="description: at most 512 characters, got 513"):
        local_backend.submit_batch("ticket-triage", ticket_rows(3), description="d" * 513)
    assert local_backend.list_jobs() == []
    local_backend.submit_batch("ticket-triage", ticket_rows(3), job_name="n" * 45, description="d" * 512)
    assert len(local_backend.list_jobs()) == 1


def test_unknown_job_is_not_found_everywhere(local_backend):
    for call in (
        local_backend.get_job,
        local_backend.get_job_status,
        local_backend.get_job_results,
        local_backend.cancel_job,
        local_backend.stream_job_progress,
    ):
        with pytest.raises(NotFoundError) as caught:
            call("job-00000000-0000-4000-8000-000000000000")
        assert caught.value.code == "job_not_found"


def test_results_of_an_unfinished_job_are_a_conflict(home, keyword_engine):
    with LocalBackend(home, engine=keyword_engine, start_workers=False) as backend:
        job_id = backend.submit_batch("ticket-triage", ticket_rows(3))
        assert backend.get_job_status(job_id) == "QUEUED"
        with pytest.raises(ConflictError) as caught:
            backend.get_job_results(job_id)
        assert caught.value.code == "job_not_succeeded"


def test_priority_one_runs_before_priority_zero_then_fifo(home, keyword_engine):
    with LocalBackend(home, engine=keyword_engine, workers=1, start_workers=False) as backend:
        first = backend.submit_batch("ticket-triage", ticket_rows(5))
        second = backend.submit_batch("ticket-triage", ticket_rows(5))
        urgent = backend.submit_batch("ticket-triage", ticket_rows(5), job_priority=1)
        backend.start_workers()
        jobs = {job_id: wait_for_job(backend, job_id) for job_id in (first, second, urgent)}
    order = sorted(jobs, key=lambda job_id: jobs[job_id]["datetime_completed"])
    assert order == [urgent, first, second]
    assert jobs[urgent]["job_priority"] == 1


def test_priority_one_submitted_while_priority_zero_runs_finishes_first(home):
    with LocalBackend(home, engine=KeywordEngine(delay=0.003), workers=1) as backend:
        backend.settings.chunk_size = 10
        slow = backend.submit_batch("ticket-triage", ticket_rows(300))
        wait_for_job(backend, slow, statuses={"RUNNING"})
        urgent = backend.submit_batch("ticket-triage", ticket_rows(10), job_priority=1)
        urgent_job = wait_for_job(backend, urgent)
        assert backend.get_job_status(slow) in ("QUEUED", "STARTING", "RUNNING")
        slow_job = wait_for_job(backend, slow)
        results = backend.get_job_results(slow)
    assert urgent_job["datetime_completed"] < slow_job["datetime_completed"]
    assert slow_job["rows_done"] == 300 and results.num_rows == 300
    assert results.column("error").null_count == 300


def test_cancelling_a_queued_job_is_immediate(home, keyword_engine):
    with LocalBackend(home, engine=keyword_engine, start_workers=False) as backend:
        job_id = backend.submit_batch("ticket-triage", ticket_rows(3))
        backend.cancel_job(job_id)
        assert backend.get_job_status(job_id) == "CANCELLED"
        backend.start_workers()
        time.sleep(0.3)
        assert backend.get_job(job_id)["rows_done"] == 0


def test_cancelling_a_running_job_stops_it_between_chunks(home):
    engine = KeywordEngine(delay=0.002)
    with LocalBackend(home, engine=engine, workers=1) as backend:
        backend.settings.chunk_size = 5
        job_id = backend.submit_batch("ticket-triage", ticket_rows(500))
        wait_for_job(backend, job_id, statuses={"RUNNING"})
        backend.cancel_job(job_id)
        assert backend.get_job_status(job_id) in ("CANCELLING", "CANCELLED")
        job = wait_for_job(backend, job_id)
        assert job["status"] == "CANCELLED"
        assert job["rows_done"] < 500 and engine.calls < 500
        with pytest.raises(ConflictError):
            backend.get_job_results(job_id)


def test_cancelling_a_finished_job_changes_nothing(local_backend):
    job_id = local_backend.submit_batch("ticket-triage", ticket_rows(3))
    wait_for_job(local_backend, job_id)
    before = local_backend.get_job_results(job_id)
    local_backend.cancel_job(job_id)
    assert local_backend.get_job_status(job_id) == "SUCCEEDED"
    assert local_backend.get_job_results(job_id).equals(before)


def test_dry_run_is_an_estimate_job_that_runs_nothing(local_backend, keyword_engine):
    rows = ticket_rows(20)
    job_id = local_backend.submit_batch("ticket-triage", rows, dry_run=True)
    job = wait_for_job(local_backend, job_id)
    assert (job["status"], job["run_type"], job["num_rows"], job["job_cost"]) == ("SUCCEEDED", "ESTIMATE", 20, None)
    assert keyword_engine.calls == 0
    from sutro_sql.tokens import count_tokens

    input_tokens = sum(count_tokens(r["subject"]) + count_tokens(r["body"]) for r in rows)
    output_tokens = 20 * max(count_tokens(label) for label in ("billing", "bug", "account_access", "feature_request"))
    assert job["estimated_input_tokens"] == input_tokens
    assert job["cost_estimate"] == pytest.approx((input_tokens + output_tokens) / 1000 * 0.0005)
    with pytest.raises(ConflictError):
        local_backend.get_job_results(job_id)


def test_dry_run_price_comes_from_the_home_config(home, keyword_engine):
    (home / "config.yaml").write_text("price_per_1k_tokens: 2.0\n")
    with LocalBackend(home, engine=keyword_engine, start_workers=False) as backend:
        cheap = backend.get_job(backend.submit_batch("ticket-triage", ticket_rows(4), dry_run=True))
    tokens = cheap["estimated_input_tokens"] + cheap["estimated_output_tokens"]
    assert cheap["cost_estimate"] == pytest.approx(tokens / 1000 * 2.0)


def test_a_content_key_reattaches_to_the_live_job(local_backend, keyword_engine):
    first = local_backend.submit_batch("ticket-triage", ticket_rows(5), content_key="k1")
    again = local_backend.submit_batch("ticket-triage", ticket_rows(5), content_key="k1")
    assert again == first
    wait_for_job(local_backend, first)
    assert local_backend.submit_batch("ticket-triage", ticket_rows(5), content_key="k1") == first
    assert len(local_backend.list_jobs()) == 1
    assert keyword_engine.calls == 5
    assert local_backend.submit_batch("ticket-triage", ticket_rows(5), content_key="k2") != first


def test_a_content_key_of_a_cancelled_job_submits_anew(home, keyword_engine):
    with LocalBackend(home, engine=keyword_engine, start_workers=False) as backend:
        first = backend.submit_batch("ticket-triage", ticket_rows(5), content_key="k")
        backend.cancel_job(first)
        second = backend.submit_batch("ticket-triage", ticket_rows(5), content_key="k")
        assert second != first and backend.get_job_status(second) == "QUEUED"


def test_concurrent_submissions_with_one_content_key_share_one_job(home, keyword_engine):
    with LocalBackend(home, engine=keyword_engine, start_workers=False) as backend:
        ids, barrier = [], threading.Barrier(6)

        def submit():
            barrier.wait()
            ids.append(backend.submit_batch("ticket-triage", ticket_rows(3000), content_key="same"))

        threads = [threading.Thread(target=submit) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(set(ids)) == 1 and len(backend.list_jobs()) == 1
        assert backend.get_job(ids[0])["num_rows"] == 3000


def test_an_engine_failing_a_whole_chunk_twice_fails_the_job(home):
    class DownEngine:
        name = "down"
        calls = 0

        def answer(self, spec, rows):
            DownEngine.calls += 1
            raise ConnectionError("model server unreachable")

    with LocalBackend(home, engine=DownEngine(), workers=1) as backend:
        backend.settings.retry_delay = 0.0
        job = wait_for_job(backend, backend.submit_batch("ticket-triage", ticket_rows(3)))
    assert job["status"] == "FAILED" and DownEngine.calls == 2
    assert "model server unreachable" in job["failure_reason"]["message"]


def test_an_engine_failing_once_is_retried_and_the_job_succeeds(home):
    class FlakyEngine(KeywordEngine):
        failed = False

        def answer(self, spec, rows):
            if not self.failed:
                self.failed = True
                raise TimeoutError("transient")
            return super().answer(spec, rows)

    with LocalBackend(home, engine=FlakyEngine(), workers=1) as backend:
        backend.settings.retry_delay = 0.0
        job = wait_for_job(backend, backend.submit_batch("ticket-triage", ticket_rows(3)))
    assert job["status"] == "SUCCEEDED" and job["rows_done"] == 3


def test_list_jobs_is_newest_first_and_ids_are_unique(local_backend):
    ids = [local_backend.submit_batch("ticket-triage", ticket_rows(2)) for _ in range(5)]
    assert [job["job_id"] for job in local_backend.list_jobs()] == ids[::-1]
    assert len(set(ids)) == 5


def test_progress_stream_sends_heartbeats_while_queued_and_ends_after_the_final_progress(home, keyword_engine):
    with LocalBackend(home, engine=keyword_engine, workers=1, start_workers=False) as backend:
        backend.heartbeat_interval = 0.05
        backend.progress_poll_interval = 0.01
        backend.settings.chunk_size = 7
        job_id = backend.submit_batch("ticket-triage", ticket_rows(50))
        events = backend.stream_job_progress(job_id)
        head = [next(events) for _ in range(3)]
        assert [e["update_type"] for e in head] == ["progress", "tokens", "heartbeat"]
        assert head[0]["result"] == 0
        backend.start_workers()
        rest = list(events)
    progress = [e["result"] for e in head + rest if e["update_type"] == "progress"]
    assert progress == sorted(progress) and progress[-1] == 50
    assert rest[-2]["update_type"] == "progress" and rest[-1]["update_type"] == "tokens"
    tokens = rest[-1]["result"]
    assert set(tokens) == {"input_tokens", "output_tokens", "total_tokens_processed_per_second"}
    assert tokens["output_tokens"] == 50


def test_progress_stream_of_a_finished_job_sends_its_final_progress_and_ends(local_backend):
    job_id = local_backend.submit_batch("ticket-triage", ticket_rows(4))
    wait_for_job(local_backend, job_id)
    events = list(local_backend.stream_job_progress(job_id))
    assert events[0] == {"update_type": "progress", "result": 4}
    assert [e["update_type"] for e in events] == ["progress", "tokens"]


def test_jobs_persist_across_backends_over_one_home(home, keyword_engine):
    with LocalBackend(home, engine=keyword_engine) as backend:
        job_id = backend.submit_batch("ticket-triage", ticket_rows(6), id_column="id")
        wait_for_job(backend, job_id)
        before = backend.get_job_results(job_id)
    with LocalBackend(home, engine=keyword_engine, start_workers=False) as reopened:
        assert reopened.get_job_status(job_id) == "SUCCEEDED"
        assert reopened.get_job_results(job_id).equals(before)


def test_an_answer_that_is_not_json_fails_only_its_row(home):
    class OddEngine(KeywordEngine):
        def answer(self, spec, rows):
            answers = super().answer(spec, rows)
            return [
                a if "odd" not in row["body"] else type(a)(output=object(), confidence=0.5, rationale="")
                for a, row in zip(answers, rows, strict=True)
            ]

    rows = ticket_rows(4)
    rows[2]["body"] = "an odd one"
    with LocalBackend(home, engine=OddEngine(), workers=1) as backend:
        job_id = backend.submit_batch("ticket-extractor", [{"body": r["body"]} for r in rows])
        job = wait_for_job(backend, job_id)
        errors = backend.get_job_results(job_id).column("error").to_pylist()
    assert (job["status"], job["rows_failed"]) == ("SUCCEEDED", 1)
    assert errors[2].startswith("engine 'keyword' gave an unusable answer") and errors.count(None) == 3


def test_id_values_keep_their_type_from_numpy_rows(local_backend):
    rows = [dict(row, id=np.int64(row["id"])) for row in ticket_rows(5)]
    job_id = local_backend.submit_batch("ticket-triage", rows, id_column="id")
    wait_for_job(local_backend, job_id)
    ids = local_backend.get_job_results(job_id).column("id")
    assert ids.type == pa.int64() and ids.to_pylist() == [0, 1, 2, 3, 4]


def test_jobs_submitted_and_cancelled_from_many_threads_keep_consistent_counters(home):
    engine = KeywordEngine(delay=0.0005)
    with LocalBackend(home, engine=engine, workers=2) as backend:
        backend.settings.chunk_size = 8
        submitted: list[str] = []
        lock = threading.Lock()

        def client(n: int) -> None:
            for j in range(4):
                rows = ticket_rows(40, start=1000 * n + 100 * j)
                rows[j]["body"] = "FAIL_ROW here"
                job_id = backend.submit_batch("ticket-triage", rows, job_priority=j % 2)
                if j == 3:
                    backend.cancel_job(job_id)
                with lock:
                    submitted.append(job_id)

        threads = [threading.Thread(target=client, args=(n,)) for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        jobs = [wait_for_job(backend, job_id) for job_id in submitted]
        for job in jobs:
            stored = backend.store.rows(job["job_id"])
            assert job["rows_done"] == sum(row["done"] for row in stored)
            assert job["rows_failed"] == sum(row["error"] is not None for row in stored)
            if job["status"] == "SUCCEEDED":
                assert (job["rows_done"], job["rows_failed"]) == (40, 1)
    assert len(set(submitted)) == 16
    assert {job["status"] for job in jobs} <= {"SUCCEEDED", "CANCELLED"}
    assert sum(job["status"] == "CANCELLED" for job in jobs) <= 4


@pytest.mark.parametrize(
    ("ids", "expected"),
    [
        ([1, 2, 3, None, 5], [1, 2, 3, None, 5]),  # a chunk of NULL ids takes the others' type
        ([1, 2, 3, "a", "b"], ["1", "2", "3", "a", "b"]),  # chunks of ints and of text: ids as text
    ],
    ids=["ints and nulls", "ints and text"],
)
def test_a_job_read_in_chunks_gives_its_ids_one_type(local_backend, ids, expected):
    local_backend.result_chunk_rows = 3
    rows = [{"id": i, "subject": f"ticket {n}", "body": "bug"} for n, i in enumerate(ids)]
    job_id = local_backend.submit_batch("ticket-triage", rows, id_column="id")
    wait_for_job(local_backend, job_id)
    assert [chunk.num_rows for chunk in local_backend.iter_job_results(job_id, chunk_rows=3)] == [3, 2]
    assert local_backend.get_job_results(job_id).column("id").to_pylist() == expected
