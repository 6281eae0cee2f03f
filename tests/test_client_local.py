"""The Client end to end on the embedded LocalBackend, answered by the deterministic KeywordEngine."""

from __future__ import annotations

import json

import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from pydantic import BaseModel

import sutro_sql
from sutro_sql.backends.local import LocalBackend
from sutro_sql.client import Client, FunctionRunResult
from sutro_sql.default_client import set_default_client
from sutro_sql.errors import (
    BackendUnavailableError,
    ConfigurationError,
    JobFailedError,
    JobTimeoutError,
    NotFoundError,
    ValidationError,
)
from tests.support.engines import KeywordEngine

#: Ticket rows whose subject names the label the KeywordEngine will pick, in a scrambled order.
LABELS = ["bug", "billing", "feature_request", "account_access", "billing", "bug", "account_access"]
TICKETS = [{"ticket_id": 100 + i, "subject": f"{label} issue", "body": f"row {i}"} for i, label in enumerate(LABELS)]


@pytest.fixture
def client(local_backend):
    return Client(backend=local_backend, progress=False)


class Lead(BaseModel):
    query: str
    region: str


class ExplodingEngine:
    """An engine whose whole batch fails, so the job FAILS."""

    name = "exploding"

    def answer(self, spec, rows):
        raise RuntimeError("the model server is down")


# -- real time ----------------------------------------------------------------------------------


def test_run_function_with_a_dict_returns_the_v1_answer(client):
    result = client.run_function("lead-qualifier", {"query": "a qualified buyer", "region": "NA"})
    assert isinstance(result, FunctionRunResult) and isinstance(result, dict)
    assert result.output == "qualified" == result["response"]
    assert result.confidence == pytest.approx(0.8)
    assert result.function["name"] == "lead-qualifier"
    assert result.usage["input_tokens"] > 0
    assert [p["label"] for p in result["predictions"]] == ["qualified", "not_qualified"]


def test_run_function_with_a_pydantic_model_sends_its_json_dump(client):
    by_model = client.run_function("lead-qualifier", Lead(query="a student, not_qualified", region="EU"))
    by_dict = client.run_function("lead-qualifier", {"query": "a student, not_qualified", "region": "EU"}, cache=False)
    assert by_model.output == by_dict.output
    assert by_model.usage == by_dict.usage


def test_run_function_refuses_other_input_types_before_sending(client, local_backend, monkeypatch):
    monkeypatch.setattr(local_backend, "run_function", lambda *a, **k: pytest.fail("sent to the backend"))
    with pytest.raises(TypeError, match="int"):
        client.run_function("lead-qualifier", 42)


def test_run_function_without_confidence_scoring(client):
    result = client.run_function("ticket-extractor", "ORD-9 is late", confidence_scoring=False)
    assert result.confidence is None
    assert set(result.output) == {"order_id", "amount", "email", "sentiment", "urgent"}


def test_run_function_errors_are_typed(client):
    with pytest.raises(NotFoundError):
        client.run_function("no-such-function", {"x": 1})
    with pytest.raises(ValidationError, match="region"):
        client.run_function("lead-qualifier", {"query": "q"})


# -- batch from every data type -------------------------------------------------------------------


def _as(kind: str, tmp_path):
    frame = pl.DataFrame(TICKETS)
    if kind == "list":
        return [dict(row) for row in TICKETS]
    if kind == "pandas":
        return frame.to_pandas()
    if kind == "polars":
        return frame
    if kind == "arrow":
        return frame.to_arrow()
    if kind == "csv":
        path = tmp_path / "tickets.csv"
        pacsv.write_csv(frame.to_arrow(), path)
        return str(path)
    path = tmp_path / "tickets.parquet"
    pq.write_table(frame.to_arrow(), path)
    return path  # a pathlib.Path works too


@pytest.mark.parametrize("kind", ["list", "pandas", "polars", "arrow", "csv", "parquet"])
def test_batch_results_come_back_in_input_order_with_the_id_column(client, tmp_path, kind):
    job_id = client.batch_run_function("ticket-triage", _as(kind, tmp_path), id_column="ticket_id")
    results = client.await_job_completion(job_id, timeout=30)
    assert isinstance(results, pl.DataFrame)
    assert results.columns == ["ticket_id", "confidence_score", "response", "predictions", "rationale"]
    # A CSV cell is text, as the v1 API sends it: the ids come back as the file spells them.
    ids = [row["ticket_id"] for row in TICKETS]
    assert results["ticket_id"].to_list() == ([str(i) for i in ids] if kind == "csv" else ids)
    assert results["response"].to_list() == LABELS
    assert results["confidence_score"].to_list() == pytest.approx([0.8] * len(LABELS))


def test_dataframes_reach_the_backend_as_arrow(client, local_backend, monkeypatch):
    seen = []
    submit = local_backend.submit_batch
    monkeypatch.setattr(
        local_backend, "submit_batch", lambda name, data, **kw: seen.append(data) or submit(name, data, **kw)
    )
    client.batch_run_function("ticket-triage", pd.DataFrame(TICKETS))
    client.batch_run_function("ticket-triage", pl.DataFrame(TICKETS))
    assert all(isinstance(data, pa.Table) for data in seen)


def test_extraction_answers_unpack_into_typed_columns(client):
    rows = [{"body": "ORD-7 charged twice, write to ann@example.com"}, {"body": "all good thanks"}]
    results = client.await_job_completion(client.batch_run_function("ticket-extractor", rows), timeout=30)
    assert results.columns == ["confidence_score", "order_id", "amount", "email", "sentiment", "urgent"]
    assert results.schema["amount"] == pl.Float64 and results.schema["urgent"] == pl.Boolean
    spec = client.backend.get_function_spec("ticket-extractor")
    expected = [a.output for a in KeywordEngine().answer(spec, [spec.convert_input(r) for r in rows])]
    assert results.drop("confidence_score").to_dicts() == expected


def test_failed_rows_are_null_with_the_reason(client):
    rows = [{"body": "fine"}, {"body": "FAIL_ROW please"}, {"body": "also fine"}]
    results = client.await_job_completion(client.batch_run_function("ticket-extractor", rows), timeout=30)
    assert results["sentiment"].is_null().to_list() == [False, True, False]
    assert "engine refused the row" in results["error"][1]


def test_get_job_results_options(client):
    job_id = client.batch_run_function("ticket-triage", TICKETS[:2])
    client.wait_for_job(job_id, timeout=30)
    with_inputs = client.get_job_results(job_id, include_inputs=True)
    assert with_inputs.columns[0] == "inputs"
    assert json.loads(with_inputs["inputs"][0]) == {"subject": "bug issue", "body": "row 0"}
    raw = client.get_job_results(job_id, unpack_json=False, output_column="answer")
    assert raw.columns == ["answer", "confidence_score"]
    assert json.loads(raw["answer"][1])["response"] == "billing"


def test_with_original_df_joins_onto_a_pandas_frame(client):
    original = pd.DataFrame(TICKETS)
    job_id = client.batch_run_function("ticket-triage", original)
    client.wait_for_job(job_id, timeout=30)
    joined = client.get_job_results(job_id, with_original_df=original)
    assert isinstance(joined, pd.DataFrame)
    assert list(joined.columns) == [*original.columns, "confidence_score", "response", "predictions", "rationale"]
    assert joined["response"].tolist() == LABELS
    with pytest.raises(ValueError, match="rows"):
        client.get_job_results(job_id, with_original_df=original.head(3))


# -- dry run, attach, failure, cancel, timeout --------------------------------------------------


def test_dry_run_prints_the_estimate_and_returns_the_estimate_job(client, capsys):
    job_id = client.batch_run_function("ticket-triage", TICKETS, dry_run=True)
    job = client.get_job(job_id)
    assert job["status"] == "SUCCEEDED" and job["run_type"] == "ESTIMATE"
    assert job["cost_estimate"] > 0
    assert f"${job['cost_estimate']}" in capsys.readouterr().err


def test_stay_attached_shows_a_progress_bar_and_waits(local_backend, capsys, monkeypatch):
    monkeypatch.setenv("SUTRO_SQL_PROGRESS", "1")
    job_id = Client(backend=local_backend).batch_run_function("ticket-triage", TICKETS, stay_attached=True)
    assert local_backend.get_job_status(job_id) == "SUCCEEDED"
    err = capsys.readouterr().err
    assert "ticket-triage:" in err
    assert f"{len(TICKETS)}/{len(TICKETS)} rows (100%)" in err


def test_detached_submission_prints_nothing(local_backend, capsys, monkeypatch):
    monkeypatch.setenv("SUTRO_SQL_PROGRESS", "1")
    job_id = Client(backend=local_backend).batch_run_function("ticket-triage", TICKETS)
    Client(backend=local_backend, progress=False).wait_for_job(job_id, timeout=30)
    assert capsys.readouterr().err == ""


def test_a_broken_progress_stream_falls_back_to_polling(home, keyword_engine, monkeypatch):
    with LocalBackend(home, engine=keyword_engine, start_workers=False) as backend:
        client = Client(backend=backend, progress=False)
        client.poll_interval = 0.05
        job_id = client.batch_run_function("ticket-triage", TICKETS)

        def broken_stream(job_id):
            yield {"update_type": "progress", "result": 0}
            backend.start_workers()  # the job runs on while nobody streams it
            raise BackendUnavailableError("connection reset")

        monkeypatch.setattr(backend, "stream_job_progress", broken_stream)
        assert client.wait_for_job(job_id, timeout=30)["status"] == "SUCCEEDED"


def test_interrupting_an_attached_wait_detaches_and_says_how_to_reattach(home, keyword_engine, monkeypatch, capsys):
    def interrupted(job_id):
        raise KeyboardInterrupt
        yield

    with LocalBackend(home, engine=keyword_engine, start_workers=False) as backend:
        monkeypatch.setattr(backend, "stream_job_progress", interrupted)
        with pytest.raises(KeyboardInterrupt):
            Client(backend=backend, progress=False).batch_run_function("ticket-triage", TICKETS, stay_attached=True)
        job = backend.list_jobs()[0]
        assert f"wait_for_job('{job['job_id']}')" in capsys.readouterr().err
        assert job["status"] == "QUEUED"  # detached, not cancelled


def test_a_failed_job_raises_job_failed_error_with_the_reason(home):
    with LocalBackend(home, engine=ExplodingEngine()) as backend:
        backend.settings.retry_delay = 0.01
        client = Client(backend=backend, progress=False)
        job_id = client.batch_run_function("ticket-triage", TICKETS)
        with pytest.raises(JobFailedError, match="FAILED: .*the model server is down"):
            client.await_job_completion(job_id, timeout=30)
        with pytest.raises(JobFailedError):
            client.batch_run_function("ticket-triage", TICKETS, stay_attached=True)


def test_cancelled_jobs_raise_and_timeouts_leave_the_job_running(home):
    with LocalBackend(home, engine=KeywordEngine(delay=0.02)) as backend:
        backend.settings.chunk_size = 4  # cancel is seen between chunks
        client = Client(backend=backend, progress=False)
        job_id = client.batch_run_function("ticket-triage", TICKETS * 30)
        with pytest.raises(JobTimeoutError) as timed_out:
            client.wait_for_job(job_id, timeout=0.2)
        assert isinstance(timed_out.value, TimeoutError)
        assert client.get_job_status(job_id) in ("QUEUED", "STARTING", "RUNNING")
        client.cancel_job(job_id)
        with pytest.raises(JobFailedError, match="CANCELLED"):
            client.wait_for_job(job_id, timeout=30)


# -- validation ---------------------------------------------------------------------------------


def test_job_name_and_description_limits_are_checked_locally(client, local_backend):
    with pytest.raises(ValidationError, match="45"):
        client.batch_run_function("ticket-triage", TICKETS, job_name="n" * 46)
    with pytest.raises(ValidationError, match="512"):
        client.batch_run_function("ticket-triage", TICKETS, description="d" * 513)
    assert local_backend.list_jobs() == []
    job_id = client.batch_run_function("ticket-triage", TICKETS, job_name="n" * 45, description="d" * 512)
    assert client.get_job(job_id)["name"] == "n" * 45


def test_unusable_data_is_refused_before_submitting(client, local_backend, tmp_path):
    with pytest.raises(TypeError, match="dict"):
        client.batch_run_function("ticket-triage", {"subject": "s", "body": "b"})
    text = tmp_path / "rows.txt"
    text.write_text("a\n")
    with pytest.raises(ValidationError, match=".csv or .parquet"):
        client.batch_run_function("ticket-triage", str(text))
    with pytest.raises(ValidationError, match="no such file"):
        client.batch_run_function("ticket-triage", str(tmp_path / "missing.csv"))
    with pytest.raises(ValidationError, match="id_column 'nope'"):
        client.batch_run_function("ticket-triage", pl.DataFrame(TICKETS), id_column="nope")
    assert local_backend.list_jobs() == []


def test_status_and_list_jobs(client):
    first = client.batch_run_function("ticket-triage", TICKETS[:1])
    second = client.batch_run_function("ticket-triage", TICKETS[:2])
    client.wait_for_job(second, timeout=30)
    assert client.get_job_status(second) == "SUCCEEDED"
    assert [job["job_id"] for job in client.list_jobs()] == [second, first]


# -- publishing and the module-level functions -----------------------------------------------------


SENTIMENT = {
    "name": "sentiment",
    "kind": "classification",
    "inputs": ["text"],
    "labels": ["positive", "negative"],
}


def test_module_level_functions_use_the_default_client(local_backend):
    set_default_client(Client(backend=local_backend, progress=False))
    try:
        spec = sutro_sql.publish_function(SENTIMENT)
        assert spec.name == "sentiment"
        assert sutro_sql.run_function("sentiment", "so negative").output == "negative"
        job_id = sutro_sql.batch_run_function("sentiment", [{"text": "positive"}, {"text": "negative"}])
        results = sutro_sql.await_job_completion(job_id, timeout=30)
        assert results["response"].to_list() == ["positive", "negative"]
        assert sutro_sql.get_job_status(job_id) == "SUCCEEDED"
        assert sutro_sql.list_jobs()[0]["job_id"] == job_id
    finally:
        set_default_client(None)


def test_the_default_client_comes_from_the_environment(home):
    from sutro_sql.default_client import get_default_client

    set_default_client(None)
    try:
        client = get_default_client()
        assert isinstance(client.backend, LocalBackend)
        assert client.backend.home == str(home)
        assert get_default_client() is client
    finally:
        client.close()
        set_default_client(None)


def test_publish_function_needs_a_local_deployment():
    from sutro_sql.backends.remote import RemoteBackend

    with Client(backend=RemoteBackend("http://127.0.0.1:9/v1", "test-key")) as client:
        with pytest.raises(ConfigurationError, match="local deployment"):
            client.publish_function(SENTIMENT)
