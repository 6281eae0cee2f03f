"""The `auto_batch` lift where users write SQL: calls in a CTE (the dbt idiom: answer in a CTE,
unpack after), the session's setting as `sql()`'s default, and `_sutro_lift(query)`, the UDF the
dbt package's `create_table_as` asks for the lifted SQL."""

from __future__ import annotations

import pytest

from sutro_sql.answers import ANSWER_SQL_TYPE
from sutro_sql.sql_layer import connect, session_for, sql

CTE_QUERY = (
    "WITH recent AS (SELECT * FROM leads WHERE id >= 20), "
    "answered AS (SELECT id, sutro_run('lead-qualifier', {'query': query, 'region': region}) AS a FROM recent) "
    "SELECT id, a.response, a.source FROM answered ORDER BY id"
)


def leads(con) -> None:
    con.execute(
        "CREATE TABLE leads AS SELECT i AS id, CASE WHEN i % 2 = 0 THEN 'qualified buyer ' ELSE 'student ' END || "
        "i AS query, 'EMEA' AS region FROM range(60) r(i)"
    )


@pytest.fixture
def lifting(counting):
    con = connect(backend=counting, progress=False, auto_batch=True, auto_batch_threshold=10)
    leads(con)
    yield con
    con.close()


def test_calls_in_a_cte_are_lifted_to_one_job_over_that_ctes_rows(lifting, counting):
    rows = sql(lifting, CTE_QUERY).fetchall()  # the session's auto_batch is on
    assert counting.submissions == 1 and counting.run_calls == []
    assert [r[0] for r in rows] == list(range(20, 60)) and {r[2] for r in rows} == {"job"}
    (job,) = counting.list_jobs()
    assert job["num_rows"] == 40  # the CTE's rows, not the whole table
    real_time = sql(lifting, CTE_QUERY, auto_batch=False).fetchall()
    assert [r[:2] for r in real_time] == [r[:2] for r in rows] and {r[2] for r in real_time} == {"cache"}


@pytest.mark.parametrize(
    "statement",
    [
        "CREATE TABLE answered AS SELECT id, sutro_run('lead-qualifier', {'query': query, 'region': region}) AS a "
        "FROM leads WHERE id >= 20",
        "INSERT INTO answered SELECT id, sutro_run('lead-qualifier', {'query': query, 'region': region}) AS a "
        "FROM leads WHERE id >= 20",
    ],
    ids=["create table as", "insert select"],
)
def test_a_table_built_from_sutro_run_is_lifted_to_one_job(lifting, counting, statement):
    if statement.startswith("INSERT"):
        lifting.execute(f"CREATE TABLE answered (id BIGINT, a {ANSWER_SQL_TYPE})")
    sql(lifting, statement)
    assert counting.submissions == 1 and counting.run_calls == []
    rows = lifting.sql("SELECT a.source, count(*) FROM answered GROUP BY ALL").fetchall()
    assert rows == [("job", 40)]


@pytest.mark.parametrize(
    "query",
    [
        "SELECT CASE WHEN id % 2 = 0 THEN sutro_run('lead-qualifier', {'query': query, 'region': region}) END "
        "FROM leads",  # a condition: only some rows are asked
        "CREATE VIEW answered AS SELECT sutro_run('lead-qualifier', {'query': query, 'region': region}) AS a "
        "FROM leads",  # a view outlives the session's answers
    ],
    ids=["case", "view"],
)
def test_conditional_calls_and_views_are_not_lifted(lifting, counting, query):
    result = sql(lifting, query)
    if result is not None:
        result.fetchall()
    if query.startswith("CREATE VIEW"):
        lifting.sql("SELECT count(a) FROM answered").fetchall()
    assert counting.submissions == 0 and counting.run_calls


def test_the_session_setting_off_keeps_sql_real_time(counting):
    con = connect(backend=counting, progress=False, auto_batch_threshold=10)  # auto_batch off by default
    leads(con)
    assert len(sql(con, CTE_QUERY).fetchall()) == 40
    assert counting.submissions == 0 and len(counting.run_calls) == 40
    con.close()


def test_sutro_lift_returns_sql_that_reads_one_jobs_answers_from_any_cursor(lifting, counting):
    ((lifted,),) = lifting.execute("SELECT _sutro_lift(?)", [CTE_QUERY]).fetchall()
    assert lifted != CTE_QUERY and "read_parquet" in lifted.lower() and counting.submissions == 1
    cursor = lifting.cursor()  # dbt runs models on a cursor: no TEMP table of the connection is needed
    rows = cursor.execute(lifted).fetchall()
    cursor.close()
    assert len(rows) == 40 and {r[2] for r in rows} == {"job"} and counting.run_calls == []


@pytest.mark.parametrize(
    "query",
    [
        "SELECT count(*) FROM leads",  # no sutro_run
        "SELECT sutro_run('lead-qualifier', {'query': query, 'region': region}) FROM leads WHERE id < 5",  # small
        "SELECT 1; SELECT 2",  # not one statement
    ],
)
def test_sutro_lift_leaves_other_queries_unchanged(lifting, counting, query):
    assert lifting.execute("SELECT _sutro_lift(?)", [query]).fetchall() == [(query,)]
    assert counting.submissions == 0


def test_sutro_lift_with_the_lift_off_changes_nothing(counting):
    con = connect(backend=counting, progress=False, auto_batch_threshold=10)
    leads(con)
    assert con.execute("SELECT _sutro_lift(?)", [CTE_QUERY]).fetchall() == [(CTE_QUERY,)]
    assert counting.submissions == 0 and session_for(con).stats.jobs_submitted == 0
    con.close()
