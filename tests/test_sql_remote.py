"""The SQL layer over a real `sutro-sql serve` deployment (RemoteBackend over HTTP on 127.0.0.1):
Functions known by name only, so cache keys use the name and extraction columns are inferred."""

from __future__ import annotations

import json

import duckdb
import pytest

from sutro_sql.backends.remote import RemoteBackend
from sutro_sql.sql_layer import connect, session_for
from tests.support.serve_process import TEST_KEY


@pytest.fixture
def con(remote):
    connection = connect(backend=remote, progress=False)
    connection.execute(
        "CREATE TABLE tickets AS SELECT i AS ticket_id, ['billing', 'bug'][i % 2 + 1] || ' case ' || i AS subject, "
        "'order ORD-' || i || ' was charged twice' AS body FROM range(12) r(i)"
    )
    yield connection
    connection.close()


def test_sutro_run_over_http_is_cached_by_function_name(con, remote, tmp_path):
    query = (
        "SELECT sutro_run('ticket-triage', {'subject': subject, 'body': body}).response FROM tickets ORDER BY ticket_id"
    )
    rows = con.sql(query).fetchall()
    assert [r[0] for r in rows] == [["billing", "bug"][i % 2] for i in range(12)]
    assert session_for(con).stats.calls == 12
    again = connect(backend=RemoteBackend(remote.api_url, TEST_KEY, home=tmp_path / "client-home"))
    again.execute(
        "CREATE TABLE tickets AS SELECT * FROM (VALUES "
        + ", ".join(
            f"({i}, '{['billing', 'bug'][i % 2]} case {i}', 'order ORD-{i} was charged twice')" for i in range(12)
        )
        + ") v(ticket_id, subject, body)"
    )
    assert again.sql(query).fetchall() == rows
    assert session_for(again).stats.calls == 0 and session_for(again).stats.cache_hits == 12


def test_sutro_batch_over_http_infers_extraction_columns(con):
    relation = con.sql(
        "SELECT * FROM sutro_batch('ticket-extractor', 'SELECT ticket_id, body FROM tickets', id_column := 'ticket_id')"
    )
    types = dict(zip(relation.columns, [str(t) for t in relation.types], strict=True))
    assert list(types)[0] == "ticket_id" and types["ticket_id"] == "BIGINT"
    assert {"order_id", "sentiment", "urgent", "confidence_score", "error"} <= set(types)
    assert types["urgent"] == "BOOLEAN"
    assert len(relation.fetchall()) == 12


def test_sutro_batch_over_http_is_cached_and_reattaches(con):
    query = "SELECT * FROM sutro_batch('ticket-triage', 'SELECT subject, body FROM tickets'{})"
    first = con.sql(query.format("")).fetchall()
    assert [r[1] for r in first] == [["billing", "bug"][i % 2] for i in range(12)]
    session = session_for(con)
    session.reset_stats()
    assert con.sql(query.format("")).fetchall() == [row[:-2] + ("cache", False) for row in first]
    assert (session.stats.jobs_submitted, session.stats.jobs_reattached, session.stats.cache_hits) == (0, 0, 12)
    session.reset_stats()
    assert con.sql(query.format(", cache := false")).fetchall() == first  # the same rows: the same job
    assert (session.stats.jobs_submitted, session.stats.jobs_reattached, session.stats.cache_hits) == (0, 1, 0)


def test_errors_over_http_name_the_row_and_never_the_key(con):
    with pytest.raises(duckdb.Error) as failure:
        con.sql("SELECT sutro_run('ticket-triage', {'subject': 'FAIL_ROW please', 'body': 'x'})").fetchall()
    message = str(failure.value)
    assert "'ticket-triage'" in message and "FAIL_ROW please" in message
    assert TEST_KEY not in message
    with pytest.raises(duckdb.Error, match="no-such-function"):
        con.sql("SELECT sutro_run('no-such-function', {'subject': 'a', 'body': 'b'}, on_error := 'null')").fetchall()


def test_remote_answers_have_the_same_shape(con):
    (answer,) = con.sql("SELECT sutro_run('ticket-triage', {'subject': 'bug', 'body': 'crash'})").fetchall()[0]
    assert answer["response"] == "bug" and json.loads(answer["output"]) == "bug"
    assert answer["predictions"][0]["label"] == "bug" and answer["usage"]["input_tokens"] > 0
