"""sutro_batch and sutro_jobs on a real DuckDB over the LocalBackend + KeywordEngine."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import duckdb
import pytest

from sutro_sql.sql_layer import connect, session_for
from tests.sql_support import REPO, CountingBackend, logged_rows, run_python


def open_warehouse(database: str, backend: CountingBackend) -> duckdb.DuckDBPyConnection:
    connection = connect(database, backend=backend, progress=False)
    connection.execute(
        "CREATE TABLE tickets AS SELECT i AS ticket_id, "
        "['billing', 'bug', 'account_access', 'feature_request'][i % 4 + 1] || ' issue ' || i AS subject, "
        "'body of ticket ' || i AS body FROM range(30) r(i)"
    )
    return connection


@pytest.fixture
def con(counting):
    connection = open_warehouse(":memory:", counting)
    yield connection
    connection.close()


@pytest.fixture(params=["memory", "file"])
def any_con(request, counting, tmp_path):
    """The same tests on an in-memory database and on a database file."""
    connection = open_warehouse(":memory:" if request.param == "memory" else str(tmp_path / "w.duckdb"), counting)
    yield connection
    connection.close()


def test_batch_returns_row_id_then_typed_answers_in_query_order(any_con, counting):
    relation = any_con.sql(
        "SELECT * FROM sutro_batch('ticket-triage', 'SELECT subject, body FROM tickets ORDER BY ticket_id DESC')"
    )
    assert relation.columns == [
        "row_id",
        "response",
        "confidence",
        "predictions",
        "rationale",
        "confidence_score",
        "error",
        "function",
        "revision",
        "engine",
        "job_id",
        "source",
        "escalated",
    ]
    assert [str(t) for t in relation.types][:3] == ["BIGINT", "VARCHAR", "DOUBLE"]
    rows = relation.fetchall()
    subjects = [s for (s,) in any_con.sql("SELECT subject FROM tickets ORDER BY ticket_id DESC").fetchall()]
    assert [r[0] for r in rows] == list(range(30))
    assert [r[1] for r in rows] == [s.split()[0] for s in subjects]
    assert all(r[6] is None and r[5] == pytest.approx(r[2]) for r in rows)
    assert counting.submissions == 1 and counting.run_calls == []
    stats = session_for(any_con).stats
    assert (stats.jobs_submitted, stats.jobs_reattached, stats.rows_answered) == (1, 0, 30)


def test_batch_answers_equal_sutro_run_answers(con):
    rows = con.sql(
        "SELECT b.response, b.confidence, b.predictions, "
        "sutro_run('ticket-triage', {'subject': t.subject, 'body': t.body}) AS live FROM tickets t "
        "JOIN sutro_batch('ticket-triage', 'SELECT ticket_id, subject, body FROM tickets', id_column := 'ticket_id') b "
        "USING (ticket_id)"
    ).fetchall()
    assert len(rows) == 30
    for response, confidence, predictions, live in rows:
        assert (live["response"], live["confidence"], live["predictions"]) == (response, confidence, predictions)


def test_batch_results_join_back_to_the_source_by_id(any_con):
    rows = any_con.sql(
        "SELECT t.ticket_id, t.subject, b.response FROM tickets t "
        "JOIN sutro_batch('ticket-triage', 'SELECT ticket_id, subject, body FROM tickets', id_column := 'ticket_id') b "
        "USING (ticket_id) ORDER BY t.ticket_id"
    ).fetchall()
    assert len(rows) == 30
    assert all(response == subject.split()[0] for _, subject, response in rows)
    (kind,) = any_con.sql(
        "SELECT typeof(ticket_id) FROM sutro_batch('ticket-triage', 'SELECT ticket_id, subject, body FROM tickets', "
        "id_column := 'ticket_id') LIMIT 1"
    ).fetchall()[0]
    assert kind == "BIGINT"


def test_extraction_fields_become_typed_columns(any_con):
    relation = any_con.sql("SELECT * FROM sutro_batch('ticket-extractor', 'SELECT body FROM tickets')")
    types = dict(zip(relation.columns, [str(t) for t in relation.types], strict=True))
    assert types == {
        "row_id": "BIGINT",
        "order_id": "VARCHAR",
        "amount": "DOUBLE",
        "email": "VARCHAR",
        "sentiment": "VARCHAR",
        "urgent": "BOOLEAN",
        "confidence_score": "DOUBLE",
        "error": "VARCHAR",
        "function": "VARCHAR",
        "revision": "VARCHAR",
        "engine": "VARCHAR",
        "job_id": "VARCHAR",
        "source": "VARCHAR",
        "escalated": "BOOLEAN",
    }
    rows = relation.fetchall()
    assert len(rows) == 30 and all(r[4] in ("angry", "neutral", "happy") for r in rows)


def test_rerunning_answers_every_row_from_the_cache_and_submits_nothing(any_con, counting, keyword_engine):
    query = "SELECT * FROM sutro_batch('ticket-triage', 'tickets')"
    first = any_con.sql(query).fetchall()
    answered = keyword_engine.calls
    session = session_for(any_con)
    assert (session.stats.jobs_submitted, session.stats.cache_hits) == (1, 0)
    session.reset_stats()
    assert {row[-2] for row in first} == {"job"}
    assert any_con.execute(query).fetchall() == [row[:-2] + ("cache", False) for row in first]
    stats = session.stats
    assert (stats.jobs_submitted, stats.jobs_reattached, stats.cache_hits, stats.rows_answered) == (0, 0, 30, 30)
    assert counting.submissions == 1 and keyword_engine.calls == answered


def test_rerunning_with_the_cache_off_reattaches_to_the_job(any_con, counting, keyword_engine):
    query = "SELECT * FROM sutro_batch('ticket-triage', 'tickets', cache := false)"
    first = any_con.sql(query).fetchall()
    answered = keyword_engine.calls
    session = session_for(any_con)
    session.reset_stats()
    assert any_con.execute(query).fetchall() == first
    assert (session.stats.jobs_submitted, session.stats.jobs_reattached, session.stats.cache_hits) == (0, 1, 0)
    assert counting.submissions == 1 and keyword_engine.calls == answered


def jobs_of(backend) -> list[dict]:
    """The backend's run jobs, oldest first."""
    return sorted((j for j in backend.list_jobs() if j["run_type"] != "ESTIMATE"), key=lambda j: j["datetime_created"])


def test_a_grown_input_sends_only_the_new_rows(con, counting, keyword_engine, local_backend):
    query = "SELECT * FROM sutro_batch('ticket-triage', 'SELECT ticket_id, subject, body FROM tickets', id_column := 'ticket_id')"
    con.sql(query).fetchall()
    assert keyword_engine.calls == 30
    con.execute("INSERT INTO tickets SELECT i, 'bug report ' || i, 'new' FROM range(30, 33) r(i)")
    session = session_for(con)
    session.reset_stats()
    rows = con.sql(query + " ORDER BY ticket_id").fetchall()
    assert [r[0] for r in rows] == list(range(33)) and all(r[1] and r[6] is None for r in rows)
    assert [job["num_rows"] for job in jobs_of(local_backend)] == [30, 3]
    assert keyword_engine.calls == 33
    stats = session.stats
    assert (stats.jobs_submitted, stats.cache_hits, stats.rows_answered) == (1, 30, 33)


def test_cache_false_sends_every_row(con, counting, keyword_engine, local_backend):
    query = "SELECT * FROM sutro_batch('ticket-triage', 'tickets'{})"
    con.sql(query.format("")).fetchall()
    con.execute("INSERT INTO tickets SELECT i, 'bug report ' || i, 'new' FROM range(30, 33) r(i)")
    con.sql(query.format(", cache := false")).fetchall()
    assert [job["num_rows"] for job in jobs_of(local_backend)] == [30, 33]
    assert keyword_engine.calls == 63 and session_for(con).stats.cache_hits == 0


def test_duplicate_inputs_are_sent_once(con, counting, keyword_engine, local_backend):
    con.execute("INSERT INTO tickets SELECT 100 + ticket_id, subject, body FROM tickets WHERE ticket_id < 5")
    rows = con.sql(
        "SELECT t.subject, b.response FROM tickets t JOIN sutro_batch('ticket-triage', "
        "'SELECT ticket_id, subject, body FROM tickets', id_column := 'ticket_id') b USING (ticket_id)"
    ).fetchall()
    assert len(rows) == 35 and all(response == subject.split()[0] for subject, response in rows)
    assert [job["num_rows"] for job in jobs_of(local_backend)] == [30]
    assert keyword_engine.calls == 30


def test_sutro_run_reuses_batch_answers_and_the_other_way_round(con, counting, keyword_engine, local_backend):
    batch = con.sql(
        "SELECT ticket_id, response, confidence FROM sutro_batch('ticket-triage', "
        "'SELECT ticket_id, subject, body FROM tickets WHERE ticket_id < 20', id_column := 'ticket_id') ORDER BY 1"
    ).fetchall()
    session = session_for(con)
    session.reset_stats()
    live = con.sql(
        "SELECT ticket_id, a.response, a.confidence FROM (SELECT ticket_id, "
        "sutro_run('ticket-triage', {'subject': subject, 'body': body}) AS a FROM tickets WHERE ticket_id < 20) ORDER BY 1"
    ).fetchall()
    assert live == batch
    assert (session.stats.calls, session.stats.cache_hits) == (0, 20) and counting.run_calls == []

    con.sql("SELECT sutro_run('ticket-triage', {'subject': subject, 'body': body}) FROM tickets").fetchall()
    assert len(counting.run_calls) == 10  # the 10 rows the batch had not answered
    session.reset_stats()
    ordered = "SELECT subject, body FROM tickets ORDER BY ticket_id"
    rows = con.sql(f"SELECT response FROM sutro_batch('ticket-triage', '{ordered}') ORDER BY row_id").fetchall()
    subjects = con.sql(ordered).fetchall()
    assert [r for (r,) in rows] == [subject.split()[0] for subject, _ in subjects]
    assert (session.stats.jobs_submitted, session.stats.cache_hits) == (0, 30)
    assert counting.submissions == 1 and len(jobs_of(local_backend)) == 1


def test_dry_run_estimates_only_the_rows_it_would_send(con, counting, local_backend):
    con.sql(
        "SELECT * FROM sutro_batch('ticket-triage', 'SELECT subject, body FROM tickets WHERE ticket_id < 25')"
    ).fetchall()
    ((rows, job_id),) = con.sql(
        "SELECT rows, job_id FROM sutro_batch('ticket-triage', 'tickets', dry_run := true)"
    ).fetchall()
    assert rows == 5 and local_backend.get_job(job_id)["num_rows"] == 5
    ((rows, job_id),) = con.sql(
        "SELECT rows, job_id FROM sutro_batch('ticket-triage', 'SELECT * FROM tickets WHERE ticket_id < 25', dry_run := true)"
    ).fetchall()
    assert (rows, job_id) == (0, None)
    ((rows,),) = con.sql(
        "SELECT rows FROM sutro_batch('ticket-triage', 'tickets', dry_run := true, cache := false)"
    ).fetchall()
    assert rows == 30


def test_a_new_process_answers_from_the_disk_cache(home, tmp_path):
    log = tmp_path / "engine.log"
    code = (
        "import json, sutro_sql\n"
        "from sutro_sql.sql_layer import session_for\n"
        "con = sutro_sql.connect()\n"
        "con.execute(\"CREATE TABLE t AS SELECT 'bug number ' || i AS subject, 'b' AS body FROM range(40) r(i)\")\n"
        "rows = con.sql(\"SELECT row_id, response FROM sutro_batch('ticket-triage', 't') ORDER BY row_id\").fetchall()\n"
        "print(json.dumps({'rows': rows, **session_for(con).stats.as_dict()}))\n"
    )
    first = run_python(code, home, log=log)
    assert (first["jobs_submitted"], first["jobs_reattached"], first["cache_hits"]) == (1, 0, 0)
    assert logged_rows(log) == 40
    second = run_python(code, home, log=log)
    assert (second["jobs_submitted"], second["jobs_reattached"], second["cache_hits"]) == (0, 0, 40)
    assert second["rows"] == first["rows"]
    assert logged_rows(log) == 40


def test_id_column_must_exist(con):
    with pytest.raises(duckdb.Error, match="id_column 'nope' is not a column"):
        con.sql("SELECT * FROM sutro_batch('ticket-triage', 'tickets', id_column := 'nope')").fetchall()


def test_id_column_must_be_unique(con, counting):
    con.execute("INSERT INTO tickets VALUES (1, 'dup', 'dup')")
    with pytest.raises(duckdb.Error, match="id_column 'ticket_id' is not unique"):
        con.sql("SELECT * FROM sutro_batch('ticket-triage', 'tickets', id_column := 'ticket_id')").fetchall()
    assert counting.submissions == 0


def test_id_column_must_not_be_null(con):
    con.execute("INSERT INTO tickets VALUES (NULL, 'x', 'y')")
    with pytest.raises(duckdb.Error, match="NULL"):
        con.sql("SELECT * FROM sutro_batch('ticket-triage', 'tickets', id_column := 'ticket_id')").fetchall()


def test_missing_input_column_is_refused(con, counting):
    with pytest.raises(duckdb.Error, match=r"needs input column\(s\) \['body'\]"):
        con.sql("SELECT * FROM sutro_batch('ticket-triage', 'SELECT subject FROM tickets')").fetchall()
    assert counting.submissions == 0


def test_unknown_function_is_refused(con):
    with pytest.raises(duckdb.Error, match="unknown Function 'nope'"):
        con.sql("SELECT * FROM sutro_batch('nope', 'tickets')").fetchall()


def test_non_literal_function_name_is_refused(con):
    con.execute("CREATE TABLE names AS SELECT 'ticket-triage' AS fn")
    with pytest.raises(duckdb.Error, match="literal"):
        con.sql("SELECT * FROM names, sutro_batch(names.fn, 'tickets')").fetchall()


def test_empty_query_result_makes_no_job(con, counting):
    rows = con.sql("SELECT * FROM sutro_batch('ticket-triage', 'SELECT subject, body FROM tickets WHERE false')")
    assert rows.fetchall() == [] and rows.columns[0] == "row_id"
    assert counting.submissions == 0
    assert session_for(con).stats.jobs_submitted == 0


def test_dry_run_returns_the_estimate(con, counting, local_backend):
    ((rows, input_tokens, output_tokens, cost, job_id),) = con.sql(
        "SELECT rows, input_tokens, output_tokens, cost_usd, job_id "
        "FROM sutro_batch('ticket-triage', 'tickets', dry_run := true)"
    ).fetchall()
    assert rows == 30 and input_tokens > 0 and output_tokens > 0 and cost > 0
    job = local_backend.get_job(job_id)
    assert job["run_type"] == "ESTIMATE" and job["cost_estimate"] == pytest.approx(cost)
    assert session_for(con).stats.rows_answered == 0


@pytest.mark.parametrize(
    "query, reason",
    [
        ("DROP TABLE tickets", "only read queries"),
        ("CREATE TABLE x AS SELECT 1", "only read queries"),
        ("INSERT INTO tickets VALUES (1, 'a', 'b')", "only read queries"),
        ("DELETE FROM tickets", "only read queries"),
        ("UPDATE tickets SET body = 'x'", "only read queries"),
        ("SELECT * FROM tickets; DROP TABLE tickets", "single read query, got 2 statements"),
        ("ATTACH 'other.duckdb' AS other", "only read queries"),
        ("COPY tickets TO 'out.csv'", "only read queries"),
        ("PRAGMA database_list", "only read queries"),
        ("SET threads = 1", "only read queries"),
        ("", "empty"),
    ],
)
def test_only_single_read_queries_are_accepted(con, counting, query, reason):
    with pytest.raises(duckdb.Error, match=reason):
        con.sql(f"SELECT * FROM sutro_batch('ticket-triage', '{query.replace(chr(39), chr(39) * 2)}')").fetchall()
    assert counting.submissions == 0
    assert con.sql("SELECT count(*) FROM tickets").fetchall() == [(30,)]


def test_failed_rows_have_error_set_the_rest_are_answered_and_only_answers_are_cached(con, local_backend):
    con.execute("INSERT INTO tickets VALUES (100, 'FAIL_ROW', 'x')")
    rows = con.sql(
        "SELECT ticket_id, response, error FROM sutro_batch('ticket-triage', 'tickets', id_column := 'ticket_id') "
        "ORDER BY ticket_id"
    ).fetchall()
    assert rows[-1][0] == 100 and rows[-1][1] is None and "engine refused the row" in rows[-1][2]
    assert all(r[1] is not None and r[2] is None for r in rows[:-1])
    stats = session_for(con).stats
    assert (stats.rows_answered, stats.rows_failed) == (30, 1)
    session_for(con).reset_stats()
    again = con.sql(
        "SELECT ticket_id, response, error FROM sutro_batch('ticket-triage', 'tickets', id_column := 'ticket_id') ORDER BY ticket_id"
    ).fetchall()
    assert again == rows  # the failed row is not cached: only it is sent again
    assert [job["num_rows"] for job in jobs_of(local_backend)] == [31, 1]
    assert (stats.cache_hits, stats.rows_failed) == (0, 1) and session_for(con).stats.cache_hits == 30


def test_temp_tables_give_a_clear_error(any_con):
    any_con.execute("CREATE TEMP TABLE fresh AS SELECT * FROM tickets")
    with pytest.raises(duckdb.Error, match="TEMP tables"):
        any_con.sql("SELECT * FROM sutro_batch('ticket-triage', 'fresh')").fetchall()


def test_one_query_can_use_both_functions(any_con, counting):
    rows = any_con.sql(
        "SELECT t.ticket_id, b.response AS batch, sutro_run('ticket-triage', {'subject': t.subject, 'body': t.body}).response "
        "AS live FROM tickets t JOIN sutro_batch('ticket-triage', 'SELECT ticket_id, subject, body FROM tickets', "
        "id_column := 'ticket_id') b USING (ticket_id) ORDER BY t.ticket_id"
    ).fetchall()
    assert len(rows) == 30 and all(batch == live for _, batch, live in rows)
    assert counting.submissions == 1 and counting.run_calls == []  # sutro_run reuses the batch answers
    assert session_for(any_con).stats.cache_hits == 30


def test_sutro_jobs_lists_the_backends_jobs(con, local_backend):
    con.sql("SELECT * FROM sutro_batch('ticket-triage', 'tickets', job_name := 'triage run')").fetchall()
    relation = con.sql("SELECT * FROM sutro_jobs()")
    assert relation.columns == ["id", "function", "status", "rows", "created", "progress", "cost"]
    jobs = relation.fetchall()
    assert [j[0] for j in jobs] == [j["job_id"] for j in local_backend.list_jobs()]
    (job,) = [j for j in jobs if j[1] == "ticket-triage"]
    assert job[2:4] == ("SUCCEEDED", 30) and job[5] == 1.0 and job[6] > 0
    assert local_backend.get_job(job[0])["name"] == "triage run"


def test_a_crash_and_rerun_reattaches_to_the_running_job(home, keyword_engine):
    from sutro_sql.backends.local import LocalBackend

    crashing = (
        "import sutro_sql\n"
        "from sutro_sql.backends.local import LocalBackend\n"
        "backend = LocalBackend(workers=1, start_workers=False)\n"
        "backend.settings.lease_seconds = 1.0\n"
        "backend.settings.chunk_size = 4\n"
        "backend.settings.poll_interval = 0.05\n"
        "backend.start_workers()\n"
        "con = sutro_sql.connect(backend=backend, progress=False)\n"
        "con.execute(\"CREATE TABLE t AS SELECT 'bug ' || i AS subject, 'b' AS body FROM range(40) r(i)\")\n"
        "con.sql(\"SELECT * FROM sutro_batch('ticket-triage', 't')\").fetchall()\n"
    )
    env = dict(
        os.environ,
        SUTRO_SQL_HOME=str(home),
        SUTRO_SQL_ENGINE="tests.support.engines:KeywordEngine",
        SUTRO_TEST_ENGINE_DELAY="0.1",
        PYTHONPATH=str(REPO),
    )
    local_backend = LocalBackend(home, engine=keyword_engine, start_workers=False)  # idle until the crash
    process = subprocess.Popen([sys.executable, "-c", crashing], env=env, cwd=REPO)
    try:
        deadline = time.monotonic() + 30
        while not any((job.get("rows_done") or 0) > 0 for job in local_backend.list_jobs()):
            assert time.monotonic() < deadline and process.poll() is None, "the job never started"
            time.sleep(0.05)
    finally:
        process.kill()
        process.wait()
    (job,) = local_backend.list_jobs()
    assert job["status"] not in ("SUCCEEDED", "FAILED", "CANCELLED")

    local_backend.settings.poll_interval = 0.05
    local_backend.start_workers()
    counting = CountingBackend(local_backend)
    con = connect(backend=counting, progress=False)
    con.execute("CREATE TABLE t AS SELECT 'bug ' || i AS subject, 'b' AS body FROM range(40) r(i)")
    rows = con.sql("SELECT row_id, response FROM sutro_batch('ticket-triage', 't') ORDER BY row_id").fetchall()
    assert rows == [(i, "bug") for i in range(40)]
    stats = session_for(con).stats
    assert (stats.jobs_submitted, stats.jobs_reattached) == (0, 1)
    assert counting.submissions == 0 and len(local_backend.list_jobs()) == 1
    assert keyword_engine.calls < 40  # rows the crashed process finished are not recomputed
    con.close()
    local_backend.close()
