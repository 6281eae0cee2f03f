"""`abstain_below := p`: an answer less confident than p comes back with `response` NULL and
`error` = 'abstained: confidence 0.80 < 0.90', without failing the query, so
`WHERE answer.response IS NULL` finds the rows for a person to review."""

from __future__ import annotations

import duckdb
import pytest

from sutro_sql.sql_layer import connect

#: The KeywordEngine answers a text naming a label with confidence 0.8.
TICKETS = "CREATE TABLE tickets AS SELECT * FROM (VALUES (1, 'Crash', 'a bug on export'), (2, 'Bill', 'billing twice')) t(id, subject, body)"


def run(threshold: str) -> str:
    return f"sutro_run('ticket-triage', {{'subject': subject, 'body': body}}{threshold})"


@pytest.fixture
def con(counting):
    connection = connect(backend=counting, progress=False)
    connection.execute(TICKETS)
    connection.execute("CHECKPOINT")
    yield connection
    connection.close()


def test_answers_below_the_threshold_abstain_and_keep_their_confidence(con):
    rows = con.sql(
        f"SELECT id, a.response, a.confidence, a.error FROM (SELECT id, {run(', abstain_below := 0.9')} AS a FROM tickets) ORDER BY id"
    ).fetchall()
    assert [(r[1], r[2], r[3]) for r in rows] == [(None, 0.8, "abstained: confidence 0.80 < 0.90")] * 2
    assert con.sql(
        f"SELECT count(*) FROM tickets WHERE {run(', abstain_below := 0.9')}.response IS NULL"
    ).fetchall() == [(2,)]


def test_answers_at_or_above_the_threshold_are_kept(con):
    rows = con.sql(f"SELECT {run(', abstain_below := 0.5')}.response FROM tickets ORDER BY id").fetchall()
    assert rows == [("bug",), ("billing",)]


def test_abstaining_changes_no_cached_answer(con, counting):
    con.sql(f"SELECT {run(', abstain_below := 0.9')} FROM tickets").fetchall()
    assert con.sql(f"SELECT {run('')}.response FROM tickets ORDER BY id").fetchall() == [("bug",), ("billing",)]
    assert len(counting.run_calls) == 2


def test_sutro_batch_abstains_too(con):
    rows = con.sql(
        "SELECT id, response, confidence_score, error FROM sutro_batch('ticket-triage', 'tickets', "
        "id_column := 'id', abstain_below := 0.9) ORDER BY id"
    ).fetchall()
    assert rows == [
        (1, None, 0.8, "abstained: confidence 0.80 < 0.90"),
        (2, None, 0.8, "abstained: confidence 0.80 < 0.90"),
    ]


@pytest.mark.parametrize("bad", ["1.5", "-0.1"])
def test_a_threshold_that_is_not_a_probability_is_refused_by_name(con, bad):
    with pytest.raises(duckdb.Error, match="abstain_below must be a probability"):
        con.sql(f"SELECT {run(', abstain_below := ' + bad)} FROM tickets").fetchall()
