"""Acceptance (newcomer's view): `sutro_batch(..., stage := 's3://...')` on a table of my own with
integer, date, decimal, struct, list, timestamp, boolean and unicode columns and NULLs, against
`sutro-sql serve --allow-local-urls` and a loopback S3 (moto's server): the rows that travel as a
staged Parquet file get the same answers as the same rows sent inline."""

from __future__ import annotations

import textwrap

import duckdb
import pytest

from sutro_sql.sql_layer import connect
from tests.support.serve_process import ServedDeployment, make_home
from tests.test_acceptance_specs import write_newcomer_specs

pytest.importorskip("moto.server")

from tests import test_remote_staging as staging  # noqa: E402

BUCKET = staging.BUCKET
s3_endpoint = staging.s3_endpoint  # the loopback S3 (moto's server) holding BUCKET, one per module

#: An extraction whose answer the KeywordEngine derives from the whole text it is sent: the
#: first word and the number of words, so a value converted differently reads differently.
TYPED_SPEC = """
    name: typed
    kind: extraction
    inputs: [{name: v}, {name: w, required: false}]
    output: {type: object, properties: {first: {type: string}, n: {type: integer}}}
"""

COLUMNS = {
    "integer": "v",
    "date": "DATE '2024-01-02' + v::INT",
    "decimal": "1.50::DECIMAL(10,2) * v",
    "struct": "{'x': v, 'y': w}",
    "list": "[v, v]",
    "timestamp": "TIMESTAMP '2024-01-02 03:04:05'",
    "double": "v / 3.0",
    "boolean": "v > 5",
}


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    home = tmp_path_factory.mktemp("served")
    write_newcomer_specs(home / "functions")
    (home / "functions" / "typed.yaml").write_text(textwrap.dedent(TYPED_SPEC))
    with ServedDeployment(make_home(home), allow_local_urls=True) as deployment:
        yield deployment


@pytest.fixture
def con(served, s3_endpoint, monkeypatch, tmp_path):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIANEWCOMER")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "newcomer-secret-" + "y" * 20)
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3_endpoint)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("SUTRO_SQL_HOME", str(tmp_path / "client-home"))
    monkeypatch.setenv("SUTRO_API_URL", served.url)
    monkeypatch.setenv("SUTRO_API_KEY", served.api_key)
    con = connect(progress=False)
    con.execute(
        "CREATE TABLE t AS SELECT * FROM (VALUES (1, 42, 'a b'), (2, NULL, NULL), (3, 7, 'ü 日本 😀')) x(id, v, w)"
    )
    yield con
    con.close()


def batch(con: duckdb.DuckDBPyConnection, query: str, stage: str | None) -> list[tuple]:
    options = f", stage := 's3://{BUCKET}/{stage}'" if stage else ""
    quoted = query.replace("'", "''")
    return con.sql(
        f"SELECT id, first, n, source FROM sutro_batch('typed', '{quoted}', id_column := 'id', cache := false"
        f"{options}) ORDER BY id"
    ).fetchall()


def test_staged_rows_are_answered_as_the_same_rows_sent_inline(con):
    for name, expression in COLUMNS.items():
        query = f"SELECT id, {expression} AS v, w FROM t"
        inline = batch(con, query, None)
        staged = batch(con, query, f"typed/{name}")
        assert [row[:3] for row in staged] == [row[:3] for row in inline], name
        assert {row[3] for row in staged} == {"job"}


def test_a_stage_without_a_bucket_is_refused_before_anything_is_sent(con):
    query = "SELECT * FROM sutro_batch('typed', 'SELECT v || '' new'' AS v FROM t', stage := 's3://')"
    with pytest.raises(duckdb.Error, match="expected an S3 location"):
        con.sql(query).fetchall()


def test_a_malformed_stage_is_refused_even_when_every_row_is_cached(con):
    con.sql("SELECT * FROM sutro_batch('typed', 'SELECT v, w FROM t')").fetchall()
    with pytest.raises(duckdb.Error, match="expected an S3 location"):
        con.sql("SELECT * FROM sutro_batch('typed', 'SELECT v, w FROM t', stage := 's3://')").fetchall()
