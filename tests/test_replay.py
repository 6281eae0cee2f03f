"""Hermetic replay (SUTRO_SQL_CACHE=replay): answers come only from the answer cache; a miss
names the Function and the row (or is NULL + error under on_error := 'null'), and nothing is
computed or submitted. A team records its cache once and replays it in CI."""

from __future__ import annotations

import duckdb
import pytest

from sutro_sql.client import Client
from sutro_sql.dbt import PluginSettings
from sutro_sql.errors import CacheMissError, ConfigurationError
from sutro_sql.sql_layer import connect, session_for, sql
from tests.support.cli_runner import run_cli

TRIAGE = "sutro_run('ticket-triage', {'subject': subject, 'body': body})"
TICKETS = [("Refund", "billing error on my invoice"), ("Crash", "the app has a bug")]


def tickets(con, rows) -> None:
    con.execute("CREATE OR REPLACE TABLE tickets (subject VARCHAR, body VARCHAR)")
    con.executemany("INSERT INTO tickets VALUES (?, ?)", rows)


@pytest.fixture
def recorded(counting):
    """The TICKETS answered once in record mode: what replay finds in the cache."""
    con = connect(backend=counting, progress=False)
    tickets(con, TICKETS)
    answers = con.sql(f"SELECT {TRIAGE}.response FROM tickets ORDER BY subject").fetchall()
    con.close()
    assert len(counting.run_calls) == 2
    return answers


@pytest.fixture
def replaying(monkeypatch):
    monkeypatch.setenv("SUTRO_SQL_CACHE", "replay")


def test_replay_answers_recorded_inputs_without_calling(recorded, counting, replaying):
    con = connect(backend=counting, progress=False)
    tickets(con, TICKETS)
    assert con.sql(f"SELECT {TRIAGE}.response FROM tickets ORDER BY subject").fetchall() == recorded
    assert len(counting.run_calls) == 2 and session_for(con).stats.cache_hits == 2


def test_a_replay_miss_fails_the_query_naming_the_function_and_the_row(recorded, counting, replaying):
    con = connect(backend=counting, progress=False)
    tickets(con, [*TICKETS, ("Login", "locked out of my account")])
    with pytest.raises(duckdb.Error, match="ticket-triage.*locked out of my account.*replay"):
        con.sql(f"SELECT {TRIAGE} FROM tickets").fetchall()
    assert len(counting.run_calls) == 2


def test_a_replay_miss_is_null_with_the_error_under_on_error_null(recorded, counting, replaying):
    con = connect(backend=counting, progress=False)
    tickets(con, [*TICKETS, ("Login", "locked out of my account")])
    rows = con.sql(
        "SELECT subject, a.response, a.error FROM (SELECT subject, sutro_run('ticket-triage', "
        "{'subject': subject, 'body': body}, on_error := 'null') AS a FROM tickets) ORDER BY subject"
    ).fetchall()
    login = next(row for row in rows if row[0] == "Login")
    assert login[1] is None and "replay" in login[2]
    assert all(response is not None for subject, response, _ in rows if subject != "Login")
    assert len(counting.run_calls) == 2


def test_sutro_batch_replays_from_the_cache_and_submits_nothing(recorded, counting, replaying):
    con = connect(backend=counting, progress=False)
    tickets(con, TICKETS)
    con.execute("CHECKPOINT")
    rows = con.sql("SELECT response FROM sutro_batch('ticket-triage', 'tickets') ORDER BY row_id").fetchall()
    assert sorted(rows) == sorted(recorded) and counting.submissions == 0
    tickets(con, [*TICKETS, ("Login", "locked out of my account")])
    with pytest.raises(duckdb.Error, match="ticket-triage.*locked out.*replay"):
        con.sql("SELECT * FROM sutro_batch('ticket-triage', 'tickets')").fetchall()
    assert counting.submissions == 0


@pytest.mark.parametrize("on_error", ["raise", "null"])
def test_a_replay_miss_keeps_its_error_mode_where_the_lift_is_on(recorded, counting, replaying, on_error):
    """`sutro-sql run` and dbt lift by default; in replay nothing is lifted (no job may be
    submitted), so a miss fails naming the row, or is NULL + error, as without the lift."""
    con = connect(backend=counting, progress=False, auto_batch=True, auto_batch_threshold=0)
    tickets(con, [*TICKETS, ("Login", "locked out of my account")])
    query = (
        "SELECT subject, sutro_run('ticket-triage', {'subject': subject, 'body': body}, "
        f"on_error := '{on_error}') AS a FROM tickets ORDER BY subject"
    )
    if on_error == "raise":
        with pytest.raises(duckdb.Error, match="ticket-triage.*locked out of my account.*replay"):
            sql(con, query).fetchall()
    else:
        answers = dict(sql(con, query).fetchall())
        assert answers["Login"]["response"] is None and "replay" in answers["Login"]["error"]
        assert {answers[subject]["source"] for subject, _ in TICKETS} == {"cache"}
    assert counting.submissions == 0 and len(counting.run_calls) == 2


def test_python_calls_replay_too_and_submit_no_job(recorded, counting, replaying):
    with Client(backend=counting, progress=False) as client:
        assert client.cache_mode == "replay"
        assert client.run_function("ticket-triage", {"subject": "Crash", "body": "the app has a bug"})["cached"]
        with pytest.raises(CacheMissError, match="ticket-triage"):
            client.run_function("ticket-triage", {"subject": "New", "body": "never seen"})
        with pytest.raises(ConfigurationError, match="replay.*submits no"):
            client.batch_run_function("ticket-triage", [{"subject": "Refund", "body": "billing error on my invoice"}])
    assert len(counting.run_calls) == 2 and counting.submissions == 0


def test_an_unknown_cache_mode_is_refused_by_name(local_backend, monkeypatch):
    monkeypatch.setenv("SUTRO_SQL_CACHE", "replya")
    with pytest.raises(ConfigurationError, match="SUTRO_SQL_CACHE.*'replya'"):
        Client(backend=local_backend)
    with pytest.raises(ConfigurationError, match="cache_mode"):
        PluginSettings.from_config({"cache_mode": "sometimes"})
    assert PluginSettings.from_config({"cache_mode": "replay"}).cache_mode == "replay"


def test_the_cli_replays_with_cache_mode_and_exits_4_on_a_miss(home):
    query = "SELECT sutro_run('ticket-triage', {'subject': 'Crash', 'body': 'the app has a bug'}).response"
    assert run_cli("query", query, home=home).code == 0  # records
    assert run_cli("--cache-mode", "replay", "query", query, home=home).code == 0
    missed = run_cli("--cache-mode", "replay", "query", query.replace("Crash", "Other"), home=home)
    assert missed.code == 4 and "replay" in missed.stderr and "ticket-triage" in missed.stderr
