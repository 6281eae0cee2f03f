"""Provenance: every answer says where it came from (function, revision, engine, job_id,
source, escalated), in the `sutro_run` STRUCT, in `sutro_batch`'s columns and in Python;
answers read back from the cache say 'cache' and keep what they were computed with."""

from __future__ import annotations

import pytest

from sutro_sql.answer_cache import answer_key
from sutro_sql.client import Client
from sutro_sql.sql_layer import connect, sql

PROVENANCE = "function, revision, engine, job_id, source, escalated"
TRIAGE = "sutro_run('ticket-triage', {'subject': subject, 'body': body})"
TICKETS = [("Refund", "billing error on my invoice"), ("Crash", "the app has a bug"), ("Crash", "the app has a bug")]


def tickets(con, rows=TICKETS) -> None:
    con.execute("CREATE OR REPLACE TABLE tickets (subject VARCHAR, body VARCHAR)")
    con.executemany("INSERT INTO tickets VALUES (?, ?)", rows)


def run_provenance(con) -> list[tuple]:
    return con.sql(
        f"SELECT a.function, a.revision, a.engine, a.job_id, a.source, a.escalated FROM "
        f"(SELECT {TRIAGE} AS a, subject FROM tickets) ORDER BY subject"
    ).fetchall()


@pytest.fixture
def con(counting):
    con = connect(backend=counting, progress=False)
    tickets(con)
    yield con
    con.close()


def revision_of(backend, name: str) -> str:
    return backend.get_function_spec(name).revision


def test_a_real_time_answer_names_its_function_revision_and_engine_and_says_engine(con, counting):
    revision = revision_of(counting, "ticket-triage")
    # the repeated input is dedup within the statement: computed now too
    assert run_provenance(con) == [("ticket-triage", revision, "embedded", None, "engine", False)] * 3
    assert len(counting.run_calls) == 2


def test_the_next_statement_reads_the_same_answers_from_the_cache(con, counting):
    first = run_provenance(con)
    again = run_provenance(con)
    assert again == [row[:4] + ("cache", False) for row in first]
    assert len(counting.run_calls) == 2


def test_a_cache_hit_on_the_cold_path_says_cache_beside_new_answers(con, counting):
    run_provenance(con)
    tickets(con, [*TICKETS, ("Zebra", "a new question")])
    sources = con.sql(f"SELECT subject, {TRIAGE}.source FROM tickets ORDER BY subject").fetchall()
    assert sources == [("Crash", "cache"), ("Crash", "cache"), ("Refund", "cache"), ("Zebra", "engine")]


def test_a_batch_answer_names_its_job_and_keeps_it_when_read_back(con, counting):
    query = f"SELECT row_id, {PROVENANCE} FROM sutro_batch('ticket-triage', 'SELECT subject, body FROM tickets') "
    first = con.sql(query + "ORDER BY row_id").fetchall()
    (job_id,) = {row[4] for row in first}
    assert job_id is not None and job_id in {job["job_id"] for job in counting.list_jobs()}
    revision = revision_of(counting, "ticket-triage")
    assert {row[1:] for row in first} == {("ticket-triage", revision, "embedded", job_id, "job", False)}
    again = con.sql(query + "ORDER BY row_id").fetchall()
    assert {row[1:] for row in again} == {("ticket-triage", revision, "embedded", job_id, "cache", False)}
    # sutro_run finds the batch's answers in the cache: source 'cache', the job still named
    assert {row[3:5] for row in run_provenance(con)} == {(job_id, "cache")}
    assert counting.submissions == 1 and counting.run_calls == []


def test_a_batch_answer_on_a_new_connection_comes_from_the_disk_cache(counting):
    first = connect(backend=counting, progress=False)
    tickets(first)
    first.sql("SELECT * FROM sutro_batch('ticket-triage', 'SELECT subject, body FROM tickets')").fetchall()
    first.close()
    with Client(backend=counting, progress=False) as fresh:  # a new Client: nothing in its memory
        second = connect(client=fresh, progress=False)
        tickets(second)
        (job_id,) = {row[3] for row in run_provenance(second)}
        assert job_id is not None
        assert {row[4] for row in run_provenance(second)} == {"cache"}
        second.close()


def test_the_auto_batch_lift_says_job_and_names_the_job(counting):
    con = connect(backend=counting, progress=False, auto_batch_threshold=1)
    tickets(con)
    rows = sql(
        con, f"SELECT subject, {TRIAGE}.source AS source, {TRIAGE}.job_id AS job FROM tickets", auto_batch=True
    ).fetchall()
    assert {source for _, source, _ in rows} == {"job"}
    assert len({job for _, _, job in rows}) == 1 and rows[0][2] is not None
    assert counting.submissions == 1 and counting.run_calls == []
    con.close()


def test_an_answer_cached_before_provenance_existed_still_reads(counting):
    with Client(backend=counting, progress=False) as client:
        ref = client.function("ticket-triage")
        _, canonical = ref.canonical({"subject": "Old", "body": "cached long ago"})
        old = {
            "response": "billing",
            "output": '"billing"',
            "confidence": 0.9,
            "predictions": None,
            "rationale": None,
            "usage": {"input_tokens": 1, "output_tokens": 1},
            "error": None,
        }
        client.answers.put_many([(answer_key(counting.identity, ref.name, ref.revision, canonical), old)])
        con = connect(client=client, progress=False)
        tickets(con, [("Old", "cached long ago")])
        con.execute("CHECKPOINT")
        batch = con.sql(f"SELECT response, {PROVENANCE} FROM sutro_batch('ticket-triage', 'tickets')").fetchall()
        assert batch == [("billing", "ticket-triage", ref.revision, "embedded", None, "cache", False)]
        assert run_provenance(con) == [("ticket-triage", ref.revision, "embedded", None, "cache", False)]
        assert con.sql(f"SELECT {TRIAGE}.response FROM tickets").fetchall() == [("billing",)]
        assert counting.run_calls == [] and counting.submissions == 0
        con.close()


def test_run_function_says_where_its_answer_came_from(client, counting):
    revision = revision_of(counting, "ticket-triage")
    fresh = client.run_function("ticket-triage", {"subject": "Refund", "body": "billing error"})
    assert fresh.provenance == {
        "function": "ticket-triage",
        "revision": revision,
        "engine": "embedded",
        "job_id": None,
        "source": "engine",
        "escalated": False,
    }
    again = client.run_function("ticket-triage", {"subject": "Refund", "body": "billing error"})
    assert again.provenance == fresh.provenance | {"source": "cache"}
    assert again["function"] == {"name": "ticket-triage", "revision": revision}  # the v1 shape is kept


def test_a_remote_answer_names_the_deployment_never_the_key(remote, deployment):
    con = connect(backend=remote, progress=False)
    tickets(con)
    rows = run_provenance(con)
    engines = {row[2] for row in rows}
    assert engines == {deployment.url.rstrip("/").removesuffix("/v1") + "/v1"}
    assert all(deployment.api_key not in str(row) for row in rows)
    assert {row[0] for row in rows} == {"ticket-triage"} and {row[4] for row in rows} == {"engine"}
    batch = con.sql(
        f"SELECT {PROVENANCE} FROM sutro_batch('ticket-triage', 'SELECT subject, body FROM tickets', cache := false)"
    ).fetchall()
    assert {(row[2], row[4]) for row in batch} == {(engines.pop(), "job")}
    assert all(row[3] is not None for row in batch)
    con.close()
