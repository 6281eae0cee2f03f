"""Acceptance (newcomer's view): the SQL surface and the Client as issues 2 and 3 name them,
on newcomer-written Functions, a real DuckDB and the LocalBackend with the KeywordEngine."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import duckdb
import pandas as pd
import polars as pl
import pytest

from sutro_sql import Client, load_specs
from sutro_sql.sql_layer import register, session_for
from sutro_sql.sql_layer import sql as sutro_query
from tests.sql_support import REPO, run_python
from tests.test_acceptance_specs import write_newcomer_specs


@pytest.fixture
def backend(local_backend, tmp_path):
    for spec in load_specs(write_newcomer_specs(tmp_path / "specs")).values():
        local_backend.publish(spec)
    return local_backend


@pytest.fixture
def con(backend):
    con = duckdb.connect()
    register(con, backend, progress=False)
    con.execute(
        "CREATE TABLE notes AS SELECT * FROM (VALUES (10, 'says cancel, risk is high', 'pro'), "
        "(20, 'all good, risk low', NULL), (30, 'FAIL_ROW please', 'free')) t(id, note, plan)"
    )
    con.execute(
        "CREATE TABLE reviews AS SELECT * FROM (VALUES (1, 'positive, love it'), (2, 'negative, broke'), "
        "(3, 'positive, love it')) t(id, review)"
    )
    yield con
    con.close()


def test_sutro_run_struct_literal_and_whole_row(con, keyword_engine):
    by_struct = con.sql(
        "SELECT id, sutro_run('review-sentiment', {'review': review}).response FROM reviews ORDER BY id"
    ).fetchall()
    assert by_struct == [(1, "positive"), (2, "negative"), (3, "positive")]
    assert keyword_engine.calls == 2  # row 3 repeats row 1: deduplicated
    by_row = con.sql("SELECT id, sutro_run('review-sentiment', t).response FROM reviews t ORDER BY id").fetchall()
    assert by_row == by_struct
    answer_type = con.execute("SELECT typeof(sutro_run('review-sentiment', {'review': 'x'}))").fetchall()[0][0]
    assert answer_type.startswith("STRUCT(response VARCHAR, output JSON, confidence DOUBLE")
    calls = keyword_engine.calls
    assert con.execute("SELECT sutro_run('review-sentiment', CAST(NULL AS STRUCT(review VARCHAR)))").fetchall() == [
        (None,)
    ]
    assert keyword_engine.calls == calls


def test_on_error_and_cache_options(con, keyword_engine):
    rows = con.sql(
        "SELECT id, a.response, a.error FROM (SELECT id, sutro_run('churn_risk', t, on_error := 'null') a "
        "FROM notes t) ORDER BY id"
    ).fetchall()
    assert rows[0][1:] == ("high", None) and rows[1][1:] == ("low", None)
    assert rows[2][1] is None and "FAIL_ROW" in rows[2][2]
    with pytest.raises(duckdb.Error, match=r"churn_risk.*FAIL_ROW"):
        con.sql("SELECT sutro_run('churn_risk', {'note': note}) FROM notes").fetchall()
    calls = keyword_engine.calls
    con.sql("SELECT sutro_run('churn_risk', {'note': note}, cache := false) FROM notes WHERE id < 30").fetchall()
    assert keyword_engine.calls == calls + 2


def test_sutro_batch_select_table_name_join_and_types(con):
    joined = con.sql(
        "SELECT n.id, b.response FROM notes n JOIN sutro_batch('churn_risk', "
        "'SELECT id, note, plan FROM notes WHERE id < 30', id_column := 'id') b USING (id) ORDER BY id"
    ).fetchall()
    assert joined == [(10, "high"), (20, "low")]
    by_name = con.sql("SELECT row_id, response FROM sutro_batch('review-sentiment', 'reviews') ORDER BY row_id")
    assert by_name.fetchall() == [(0, "positive"), (1, "negative"), (2, "positive")]
    con.execute("CREATE TABLE inv AS SELECT 7 AS id, 'Acme 3 items 12 USD paid' AS email_body")
    types = dict(
        con.sql("DESCRIBE SELECT * FROM sutro_batch('invoice.parse', 'inv', id_column := 'id')")
        .project("column_name, column_type")
        .fetchall()
    )
    assert {k: types[k] for k in ("line_items", "total", "paid", "currency", "vendor", "confidence_score")} == {
        "line_items": "BIGINT",
        "total": "DOUBLE",
        "paid": "BOOLEAN",
        "currency": "VARCHAR",
        "vendor": "VARCHAR",
        "confidence_score": "DOUBLE",
    }


def test_dry_run_and_empty_query_submit_no_work(con, keyword_engine):
    estimate = con.execute(
        "SELECT rows, input_tokens, cost_usd FROM sutro_batch('review-sentiment', "
        "'SELECT review || id AS review FROM reviews', dry_run := true)"
    ).fetchall()[0]
    assert estimate[0] == 3 and estimate[1] > 0 and estimate[2] > 0
    empty = con.sql(
        "SELECT * FROM sutro_batch('churn_risk', 'SELECT id, note FROM notes WHERE false', id_column := 'id')"
    )
    assert empty.fetchall() == []
    assert keyword_engine.calls == 0
    assert session_for(con).stats.jobs_submitted == 1  # the estimate job only
    jobs = con.sql("SELECT function, status FROM sutro_jobs()").fetchall()
    assert jobs == [("review-sentiment", "SUCCEEDED")]


BAD_INPUTS = [
    ("non-struct", "SELECT sutro_run('churn_risk', 'hello')", "must be a STRUCT"),
    ("unknown Function", "SELECT sutro_run('nope', {'note': 'x'})", "nope"),
    ("missing field", "SELECT sutro_run('churn_risk', {'plan': 'x'})", "note"),
    ("batch missing field", "SELECT * FROM sutro_batch('churn_risk', 'SELECT id, plan FROM notes')", "note"),
    (
        "non-unique id",
        "SELECT * FROM sutro_batch('churn_risk', 'SELECT 1 AS id, note FROM notes', id_column := 'id')",
        "not unique",
    ),
    ("id not a column", "SELECT * FROM sutro_batch('churn_risk', 'notes', id_column := 'nope')", "nope"),
    ("DDL", "SELECT * FROM sutro_batch('churn_risk', 'DROP TABLE notes')", "read quer"),
    ("two statements", "SELECT * FROM sutro_batch('churn_risk', 'SELECT 1 AS note; SELECT 2 AS note')", "single"),
]


def test_bad_input_is_a_clear_error(con):
    """Every case fails fast with a message that says what is wrong; nothing is changed."""
    for case, query, needle in BAD_INPUTS:
        started = time.monotonic()
        with pytest.raises(duckdb.Error, match=needle):
            con.sql(query).fetchall()
        assert time.monotonic() - started < 5, case
    assert con.execute("SELECT count(*) FROM notes").fetchall() == [(3,)]


def test_sql_helper_sees_temp_tables_and_subquery_form(con):
    con.execute("CREATE TEMP TABLE todo AS SELECT id, note FROM notes WHERE id = 10")
    rows = sutro_query(
        con, "SELECT id, response FROM sutro_batch('churn_risk', (SELECT id, note FROM todo), id_column := 'id')"
    )
    assert rows.fetchall() == [(10, "high")]


def test_public_sql_callable_after_connect(home):
    code = "import sutro_sql\ncon = sutro_sql.connect()\nprint(sutro_sql.sql(con, 'SELECT 42').fetchall())"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SUTRO_")}
    env.update(SUTRO_SQL_HOME=str(home), PYTHONPATH=str(REPO))
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-300:]
    assert done.stdout.strip() == "[(42,)]"


def test_database_file_reopened_in_new_process_hits_the_cache(home, tmp_path):
    write_newcomer_specs(home / "functions")
    database = tmp_path / "w.duckdb"
    code = f"""
import json, sutro_sql
from sutro_sql.sql_layer import session_for
con = sutro_sql.connect({str(database)!r})
con.execute("CREATE TABLE IF NOT EXISTS r AS SELECT * FROM (VALUES (1, 'positive!'), (2, 'mixed...')) t(id, review)")
con.execute("CREATE OR REPLACE TABLE s AS SELECT id, sutro_run('review-sentiment', {{'review': review}}).response AS s FROM r")
stats = session_for(con).stats
print(json.dumps({{"calls": stats.calls, "hits": stats.cache_hits, "rows": con.sql("FROM s ORDER BY id").fetchall()}}))
"""
    first = run_python(code, home)
    second = run_python(code, home)
    assert first["calls"] == 2 and first["rows"] == [[1, "positive"], [2, "mixed"]]
    assert second == {"calls": 0, "hits": 2, "rows": first["rows"]}
    assert duckdb.connect(str(database)).execute("SELECT count(*) FROM s").fetchall() == [(2,)]  # plain DuckDB reads it


def test_client_batch_from_each_data_type(backend, tmp_path):
    rows = [{"note": "high risk, cancel"}, {"note": "low risk"}, {"note": "high again"}]
    csv_path = tmp_path / "n.csv"
    pl.DataFrame(rows).write_csv(csv_path)
    client = Client(backend=backend, progress=False)
    for data in (rows, pl.DataFrame(rows), pd.DataFrame(rows), str(csv_path)):
        job_id = client.batch_run_function("churn_risk", data)
        frame = client.await_job_completion(job_id, timeout=30)
        assert frame["response"].to_list() == ["high", "low", "high"], type(data)
        with_inputs = client.get_job_results(job_id, include_inputs=True)
        assert [json.loads(text)["note"] for text in with_inputs["inputs"]] == [row["note"] for row in rows]
    assert client.run_function("churn_risk", {"note": "high"})["response"] == "high"
