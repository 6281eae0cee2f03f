"""`sutro_batch` over more rows than one chunk: the spool, the job's streamed results and the
result file all go a chunk at a time, and every row still gets its own answer, in query order,
the same answer `sutro_run` gives it (duplicates, failed rows and extraction fields included)."""

from __future__ import annotations

import json

import pytest

import sutro_sql.sql_layer.batch as batch_module
import sutro_sql.sql_layer.spool as spool_module
from sutro_sql.sql_layer import connect, session_for

ROWS = 60
#: Small chunks, so 60 rows cross several boundaries (primes: boundaries fall everywhere).
SPOOL_ROWS, RESULT_ROWS = 7, 5
#: Answers cached per write, and per transaction (in key order) within one.
CACHE_WRITE_ROWS, CACHE_SLICE_ROWS = 11, 3


@pytest.fixture
def con(counting, client, monkeypatch):
    monkeypatch.setattr(spool_module, "SPOOL_BATCH_ROWS", SPOOL_ROWS)
    monkeypatch.setattr(batch_module, "SPOOL_BATCH_ROWS", SPOOL_ROWS)
    monkeypatch.setattr(batch_module, "CACHE_WRITE_ROWS", CACHE_WRITE_ROWS)
    monkeypatch.setattr(batch_module, "CACHE_SLICE_ROWS", CACHE_SLICE_ROWS)
    client.result_chunk_rows = RESULT_ROWS
    connection = connect(":memory:", client=client)
    # rows i and i + 40 share their input (dedup across chunks); row 13 fails in the engine
    connection.execute(
        f"CREATE TABLE tickets AS SELECT i AS id, "
        "['billing', 'bug', 'account_access', 'feature_request'][i % 40 % 4 + 1] || ' issue ' || (i % 40) || "
        "CASE WHEN i = 13 THEN ' FAIL_ROW' ELSE ' ✓' END AS subject, "
        "'body ' || (i % 40) || ' order ORD-' || (1000 + i % 40) AS body "
        f"FROM range({ROWS}) r(i)"
    )
    yield connection
    connection.close()


def jobs_of(backend) -> list[str]:
    return [job["job_id"] for job in backend.list_jobs()]


def live_answers(con, function: str) -> dict[int, dict]:
    rows = con.sql(
        f"SELECT id, sutro_run('{function}', {{'subject': subject, 'body': body}}, on_error := 'null') "
        "FROM tickets ORDER BY id"
    ).fetchall()
    return dict(rows)


@pytest.mark.parametrize(
    "where, count",
    [("", ROWS), ("WHERE id < 40", 40)],
    ids=["repeated inputs", "distinct rows (answers read as the file is written)"],
)
def test_a_classification_batch_of_many_chunks_matches_sutro_run_row_for_row(con, counting, where, count):
    query = f"SELECT id, subject, body FROM tickets {where} ORDER BY id DESC"
    rows = con.sql(
        "SELECT id, response, confidence, predictions, rationale, confidence_score, error, source, job_id "
        f"FROM sutro_batch('ticket-triage', '{query}', id_column := 'id', cache := false)"
    ).fetchall()
    assert [row[0] for row in rows] == list(range(count))[::-1]
    assert counting.submissions == 1
    session = session_for(con)
    assert (session.stats.rows_answered, session.stats.rows_failed) == (count - 1, 1)
    live = live_answers(con, "ticket-triage")
    assert {(source, job_id) for *_, source, job_id in rows} == {("job", jobs_of(counting)[0])}
    for id_, response, confidence, predictions, rationale, score, error, _, _ in rows:
        if id_ == 13:
            assert response is None and error.startswith("engine refused the row")
            continue
        answer = live[id_]
        assert (response, confidence, predictions, rationale) == (
            answer["response"],
            answer["confidence"],
            answer["predictions"],
            answer["rationale"],
        )
        assert error is None and score == confidence


def test_an_extraction_batch_of_many_chunks_has_every_rows_fields(con):
    rows = con.sql(
        "SELECT * FROM sutro_batch('ticket-extractor', 'SELECT id, body FROM tickets', id_column := 'id') ORDER BY id"
    )
    columns = rows.columns
    live = con.sql(
        "SELECT id, sutro_run('ticket-extractor', {'body': body}).output FROM tickets ORDER BY id"
    ).fetchall()
    for row, (id_, output) in zip(rows.fetchall(), live, strict=True):
        fields = dict(zip(columns, row, strict=True))
        assert fields["id"] == id_ and fields["error"] is None
        expected = json.loads(output)
        assert {name: fields[name] for name in expected} == expected


def test_a_rerun_answers_every_chunk_from_the_cache(con, counting):
    query = (
        "SELECT id, response, confidence, predictions, rationale, error, job_id, source "
        "FROM sutro_batch('ticket-triage', 'SELECT id, subject, body FROM tickets', id_column := 'id') ORDER BY id"
    )
    first = con.sql(query).fetchall()
    session = session_for(con)
    session.reset_stats()
    again = con.sql(query).fetchall()
    assert [row[:-2] for row in again] == [row[:-2] for row in first]
    # answers keep the job that computed them, and say they came from the cache
    assert [row[-2:] for row in again if row[0] != 13] == [(row[-2], "cache") for row in first if row[0] != 13]
    # the failed row is not cached: it is sent again, alone
    assert (session.stats.cache_hits, session.stats.jobs_submitted) == (ROWS - 1, 1)
    assert counting.submissions == 2
