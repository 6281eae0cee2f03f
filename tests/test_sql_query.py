"""sutro_sql.sql(): the subquery form, inner queries that see TEMP tables, auto_batch; and the
sqlglot validation and content key underneath."""

from __future__ import annotations

import json

import pytest

from sutro_sql import QueryError
from sutro_sql.inputs import FunctionRef
from sutro_sql.sql_layer import connect, session_for, sql
from sutro_sql.sql_layer import spool as spools
from sutro_sql.sql_layer.rewrite import validate_read_query


@pytest.fixture
def con(counting):
    connection = connect(backend=counting, progress=False, auto_batch_threshold=10)
    connection.execute(
        "CREATE TABLE leads AS SELECT i AS id, CASE WHEN i % 2 = 0 THEN 'qualified buyer ' ELSE 'student ' END || "
        "(i % 25) AS query, 'EMEA' AS region FROM range(60) r(i)"
    )
    yield connection
    connection.close()


def test_subquery_form_runs_one_batch(con, counting):
    rows = sql(
        con,
        "SELECT l.id, b.response FROM leads l JOIN sutro_batch('lead-qualifier', "
        "(SELECT id, query, region FROM leads WHERE id < 20), id_column := 'id') b USING (id) ORDER BY l.id",
    ).fetchall()
    assert [r[0] for r in rows] == list(range(20))
    assert all(r[1] == "qualified" for r in rows if r[0] % 2 == 0)
    assert counting.submissions == 1


def test_sql_sees_temp_tables_and_uncommitted_rows(con, counting):
    con.execute("CREATE TEMP TABLE new_leads AS SELECT * FROM leads WHERE id < 5")
    con.execute("BEGIN")
    con.execute("INSERT INTO new_leads VALUES (100, 'qualified buyer 100', 'NA')")
    rows = sql(con, "SELECT id, response FROM sutro_batch('lead-qualifier', 'new_leads', id_column := 'id')").fetchall()
    con.execute("COMMIT")
    assert sorted(r[0] for r in rows) == [0, 1, 2, 3, 4, 100]
    assert counting.submissions == 1


def test_a_script_can_build_a_temp_table_and_batch_it(con, counting):
    rows = sql(
        con,
        "CREATE TEMP TABLE new_rows AS SELECT * FROM leads WHERE id % 10 = 0; "
        "SELECT id, response FROM sutro_batch('lead-qualifier', 'SELECT * FROM new_rows', id_column := 'id') "
        "ORDER BY id",
    ).fetchall()
    assert [r[0] for r in rows] == [0, 10, 20, 30, 40, 50]
    assert all(r[1] == "qualified" for r in rows)
    assert counting.submissions == 1


def test_sql_refuses_bad_inner_queries_before_running_them(con, counting):
    with pytest.raises(QueryError, match="only read queries"):
        sql(con, "SELECT * FROM sutro_batch('lead-qualifier', 'DELETE FROM leads')")
    with pytest.raises(QueryError, match="string literal"):
        sql(con, "SELECT * FROM sutro_batch(lower('LEAD-QUALIFIER'), 'leads')")
    assert counting.submissions == 0
    assert con.sql("SELECT count(*) FROM leads").fetchall() == [(60,)]


def test_sql_passes_other_statements_through(con):
    assert sql(con, "SELECT count(*) FROM leads").fetchall() == [(60,)]


def test_auto_batch_answers_with_one_job_equal_to_sutro_run(con, counting, local_backend):
    query = "SELECT id, sutro_run('lead-qualifier', {'query': query, 'region': region}) AS a FROM leads ORDER BY id"
    lifted = sql(con, query, auto_batch=True).fetchall()
    stats = session_for(con).stats
    assert (stats.jobs_submitted, stats.calls) == (1, 0) and counting.run_calls == []
    assert len(lifted) == 60
    for (_, answer), (query_text,) in zip(
        lifted, con.sql("SELECT query FROM leads ORDER BY id").fetchall(), strict=True
    ):
        live = local_backend.run_function("lead-qualifier", {"query": query_text, "region": "EMEA"})
        assert answer["response"] == live["response"]
        assert answer["confidence"] == pytest.approx(live["confidence"])
        assert answer["predictions"] == live["predictions"]
        assert json.loads(answer["output"]) == live["output"]
        assert answer["error"] is None


def test_auto_batch_keeps_field_access_and_other_columns(con, counting):
    rows = sql(
        con,
        "SELECT id, upper(sutro_run('lead-qualifier', {'query': query, 'region': region}).response) AS r "
        "FROM leads WHERE id >= 30 ORDER BY id",
        auto_batch=True,
    ).fetchall()
    assert [r[0] for r in rows] == list(range(30, 60))
    assert {r[1] for r in rows} <= {"QUALIFIED", "NOT_QUALIFIED"}
    assert counting.submissions == 1 and counting.run_calls == []


def test_auto_batch_below_the_threshold_stays_real_time(con, counting):
    rows = sql(
        con,
        "SELECT sutro_run('lead-qualifier', {'query': query, 'region': region}).response FROM leads WHERE id < 4",
        auto_batch=True,
    ).fetchall()
    assert len(rows) == 4
    assert counting.submissions == 0 and len(counting.run_calls) == 4


def test_auto_batch_on_error_raise_names_the_row(con):
    con.execute("INSERT INTO leads VALUES (999, 'please FAIL_ROW', 'NA')")
    with pytest.raises(Exception, match="FAIL_ROW"):
        sql(con, "SELECT sutro_run('lead-qualifier', {'query': query, 'region': region}) FROM leads", auto_batch=True)


def test_auto_batch_on_error_null_keeps_going(con):
    con.execute("INSERT INTO leads VALUES (999, 'please FAIL_ROW', 'NA')")
    rows = sql(
        con,
        "SELECT id, sutro_run('lead-qualifier', {'query': query, 'region': region}, on_error := 'null') AS a "
        "FROM leads ORDER BY id",
        auto_batch=True,
    ).fetchall()
    assert "engine refused the row" in rows[-1][1]["error"]
    assert all(a["error"] is None and a["response"] for _, a in rows[:-1])


@pytest.mark.parametrize(
    "query",
    [
        "leads",
        "main.leads",
        "SELECT * FROM leads",
        "WITH x AS (SELECT 1 AS a) SELECT * FROM x",
        "SELECT 1 UNION SELECT 2",
    ],
)
def test_read_queries_are_accepted(query):
    assert validate_read_query(query).upper().startswith(("SELECT", "WITH"))


@pytest.mark.parametrize(
    "query",
    ["DROP TABLE leads", "SELECT 1; SELECT 2", "ATTACH 'x.db'", "COPY leads TO 'x.csv'", "INSTALL httpfs", "CALL f()"],
)
def test_other_statements_are_refused(query):
    with pytest.raises(QueryError):
        validate_read_query(query)


def test_a_typo_in_select_is_called_a_typo():
    with pytest.raises(QueryError, match="not a SQL statement"):
        validate_read_query("SELEC nope")


def test_content_key_ignores_how_rows_are_chunked(con, local_backend, tmp_path, monkeypatch):
    info = FunctionRef("lead-qualifier", local_backend.get_function_spec("lead-qualifier"))
    keys = set()
    for rows_per_batch in (7, 64, 65_536):
        monkeypatch.setattr(spools, "SPOOL_BATCH_ROWS", rows_per_batch)
        spool = spools.spool_query(con, info, "SELECT * FROM leads ORDER BY id", None, str(tmp_path))
        keys.add(spools.content_key(info, spool, False))
        spool.remove()
    assert len(keys) == 1
    spool = spools.spool_query(con, info, "SELECT * FROM leads ORDER BY id DESC", None, str(tmp_path))
    assert spools.content_key(info, spool, False) not in keys  # the order is part of the content
