"""Acceptance (newcomer's view) of this session's features: provenance across a re-run, typed
SQL values sharing answers between sutro_batch and sutro_run, a file database and a script run
by `sutro-sql run` (lifted, then replayed), a remote deployment's provenance and its refusals,
and staging errors. Newcomer-written Functions, a real DuckDB, the KeywordEngine."""

from __future__ import annotations

import shutil
import textwrap

import duckdb
import httpx
import pytest

from sutro_sql import Client, load_specs
from sutro_sql.errors import ValidationError
from sutro_sql.sql_layer import connect, session_for, sql
from tests.support.cli_runner import run_cli
from tests.support.serve_process import ServedDeployment, make_home
from tests.test_acceptance_specs import write_newcomer_specs

PROVENANCE = "a.function, a.revision, a.engine, a.job_id, a.source, a.escalated"

#: One Function whose output has an odd field name, an enum, a nested object and a list.
ORDER_SPEC = """
    name: Order_Extract.v2
    kind: extraction
    inputs: [{name: "Email Text"}, {name: sent_on, required: false}]
    output:
      type: object
      properties:
        "customer name": {type: string}
        qty: {type: integer}
        tier: {type: string, enum: [gold, silver]}
        address: {type: object, properties: {city: {type: string}}}
        tags: {type: array, items: {type: string}}
      required: [qty]
"""


@pytest.fixture
def backend(local_backend, tmp_path):
    folder = write_newcomer_specs(tmp_path / "specs")
    (folder / "order.yaml").write_text(textwrap.dedent(ORDER_SPEC))
    for spec in load_specs(folder).values():
        local_backend.publish(spec)
    return local_backend


@pytest.fixture
def con(backend):
    con = connect(backend=backend, progress=False)
    con.execute(
        "CREATE TABLE notes AS SELECT * FROM (VALUES (1, 'risk high, cancel ✓ 日本'), (2, NULL), "
        "(3, 'risk high, cancel ✓ 日本'), (4, 'risk low ' || repeat('é', 5000))) t(id, note)"
    )
    yield con
    con.close()


def test_provenance_says_engine_then_cache_on_a_rerun_and_keeps_the_revision(con, backend, keyword_engine):
    query = (
        f"SELECT id, a.response, {PROVENANCE} FROM (SELECT id, sutro_run('churn_risk', {{'note': note}}) a FROM notes)"
    )
    first = con.sql(query + " ORDER BY id").fetchall()
    revision = backend.registry.get("churn_risk").spec.revision
    assert [row[1] for row in first] == ["high", "low", "high", "low"]  # a NULL field is "" (no label named)
    assert {row[2:] for row in first} == {("churn_risk", revision, "embedded", None, "engine", False)}
    assert keyword_engine.calls == 3  # rows 1 and 3 are one input
    again = con.sql(query + " ORDER BY id").fetchall()
    assert [row[:6] for row in again] == [row[:6] for row in first] and {row[6] for row in again} == {"cache"}
    assert keyword_engine.calls == 3


def test_a_batch_answer_says_job_then_cache_and_sutro_run_finds_it_under_its_job(con, keyword_engine):
    batch = "SELECT id, response, job_id, source FROM sutro_batch('churn_risk', 'notes', id_column := 'id') ORDER BY id"
    first = con.sql(batch).fetchall()
    (job,) = {row[2] for row in first}
    assert job.startswith("job-") and {row[3] for row in first} == {"job"}
    assert [row[:3] for row in con.sql(batch).fetchall()] == [row[:3] for row in first]
    assert {row[3] for row in con.sql(batch).fetchall()} == {"cache"}
    run = con.sql(
        "SELECT a.job_id, a.source, count(*) FROM (SELECT sutro_run('churn_risk', {'note': note}) a FROM notes) GROUP BY ALL"
    ).fetchall()
    assert run == [(job, "cache", 4)]
    assert keyword_engine.calls == 3


#: SQL values of many types: sutro_batch and sutro_run must give each the same text (one answer).
TYPED_VALUES = [
    "42",
    "170141183460469231731687303715884105727::HUGEINT",
    "1.50::DECIMAL(10,2)",
    "'nan'::DOUBLE",
    "0.1::FLOAT",
    "DATE '2024-01-02'",
    "TIMESTAMPTZ '2024-01-02 03:04:05+02'",
    "INTERVAL 3 DAY",
    "'4a0d6f5e-6b1e-4f40-9a5c-5a0f2b2b8a11'::UUID",
    "{'x': 1, 'y': ['ü', NULL]}",
    "MAP {'k': 1}",
    "'\\xAA'::BLOB",
    "E'tab\\tnew\\nline \"q\" 😀'",
    "'x'::ENUM('x', 'y')",
    "'{\"a\": 1}'::JSON",
]


def test_every_sql_type_gives_sutro_batch_and_sutro_run_the_same_input(con, keyword_engine):
    for i, value in enumerate(TYPED_VALUES):
        con.execute(f"CREATE OR REPLACE TABLE one AS SELECT {i} AS id, {value} AS note")
        con.sql("SELECT * FROM sutro_batch('churn_risk', 'one', id_column := 'id')").fetchall()
        calls = keyword_engine.calls
        sources = con.sql(
            "SELECT sutro_run('churn_risk', {'note': note}).source, sutro_run('churn_risk', one).source FROM one"
        )
        assert sources.fetchall() == [("cache", "cache")], value
        assert keyword_engine.calls == calls, value


def test_an_extraction_with_odd_field_names_unpacks_typed_and_nested(con):
    con.execute(
        "CREATE TABLE mail AS SELECT * FROM (VALUES (1, 'Ann Lee ordered 3', DATE '2024-05-01'), (2, 'x', NULL)) t(id, body, d)"
    )
    relation = con.sql(
        "SELECT * FROM sutro_batch('Order_Extract.v2', 'SELECT id, body AS \"Email Text\", d AS sent_on FROM mail', "
        "id_column := 'id') ORDER BY id"
    )
    types = dict(zip(relation.columns, map(str, relation.types), strict=True))
    assert {name: types[name] for name in ("customer name", "qty", "tier", "address", "tags")} == {
        "customer name": "VARCHAR",
        "qty": "BIGINT",
        "tier": "VARCHAR",
        "address": "STRUCT(city VARCHAR)",
        "tags": "VARCHAR[]",
    }
    rows = relation.fetchall()
    assert [row[:3] for row in rows] == [(1, "Ann", 5), (2, "x", 1)]  # the date is a word of the text; NULL is ""
    assert rows[0][4] == {"city": None} and rows[0][5] == ["Ann", "Lee", "ordered"]
    output = con.sql(
        "SELECT sutro_run('Order_Extract.v2', {'Email Text': body, 'sent_on': d}).output->>'$.\"customer name\"' FROM mail ORDER BY id"
    )
    assert output.fetchall() == [("Ann",), ("x",)]


def test_bad_parameters_are_refused_by_name(con):
    cases = [
        ("SELECT sutro_run('churn_risk', {'note': 'x'}, on_error := 'ignore')", "on_error must be 'raise' or 'null'"),
        ("SELECT sutro_run('churn_risk', {'note': 'x'}, abstain_below := 1.5)", "between 0 and 1"),
        ("SELECT sutro_run('churn_risk', [1, 2])", "must be a STRUCT"),
        ("SELECT sutro_run(NULL, {'note': 'x'})", "non-empty string literal"),
        ("SELECT * FROM sutro_batch('churn_risk', NULL)", "the query is empty"),
        ("SELECT * FROM sutro_batch('churn_risk', 'no_such_table')", "no_such_table"),
        (
            "SELECT * FROM sutro_batch('churn_risk', 'SELECT NULL::INT AS id, note FROM notes', id_column := 'id')",
            "NULL",
        ),
        ("SELECT * FROM sutro_batch('Nope.fn', 'notes')", "unknown Function 'Nope.fn'"),
        (
            "SELECT sutro_run('churn_risk', {'note': note}, on_error := CASE WHEN id = 1 THEN 'raise' ELSE 'null' END) FROM notes",
            "literals, the same on every row",
        ),
    ]
    for query, needle in cases:
        with pytest.raises(duckdb.Error, match=needle):
            con.sql(query).fetchall()


def test_the_client_refuses_wrong_input_types_clearly(backend):
    with Client(backend=backend, progress=False) as client:
        with pytest.raises(ValidationError, match="pass an object, not a string"):
            client.run_function("churn_risk", "risk high")
        with pytest.raises(TypeError, match="must be a dict"):
            client.run_function("churn_risk", ["risk high"])
        with pytest.raises(ValidationError, match="lone surrogate"):
            client.run_function("churn_risk", {"note": "\ud800"})
        with pytest.raises(ValidationError, match="no rows"):
            client.batch_run_function("churn_risk", [])


def test_a_malformed_stage_is_refused_on_the_embedded_deployment_too(backend):
    with Client(backend=backend, progress=False) as client, pytest.raises(ValidationError, match="S3 location"):
        client.batch_run_function("churn_risk", [{"note": "a"}], stage="ftp://bucket/prefix")


LFS_POINTER = "version https://git-lfs.github.com/spec/v1\noid sha256:0123\nsize 4096\n"


def test_a_cache_checked_out_as_a_git_lfs_pointer_is_a_clear_error_not_an_internal_one(home):
    """Regression: a committed answers.sqlite that is not a database (an LFS pointer) made every
    query an 'internal error' (exit 1, "report it") instead of naming the file."""
    write_newcomer_specs(home / "functions")
    (home / "cache").mkdir()
    (home / "cache" / "answers.sqlite").write_text(LFS_POINTER)
    result = run_cli("--cache-mode", "replay", "query", "SELECT sutro_run('churn_risk', {'note': 'x'})", home=home)
    assert result.code == 4, result.stderr
    assert "answers.sqlite cannot be used: file is not a database" in result.stderr
    assert "internal error" not in result.stderr


def test_replay_with_cache_false_answers_from_the_cache_and_counts_hits(backend, keyword_engine, monkeypatch):
    """Regression: in replay `cache := false` still reads the cache (its only source), but the
    SQL layer skipped its own lookups, so those rows were not counted as cache hits."""
    recording = connect(backend=backend, progress=False)
    recording.sql("SELECT sutro_run('churn_risk', {'note': 'risk high'})").fetchall()
    monkeypatch.setenv("SUTRO_SQL_CACHE", "replay")
    con = connect(backend=backend, progress=False)
    query = "SELECT sutro_run('churn_risk', {'note': 'risk high'}, cache := false) AS a"
    assert con.sql(f"SELECT a.response, a.source FROM ({query})").fetchall() == [("high", "cache")]
    assert (session_for(con).stats.cache_hits, keyword_engine.calls) == (1, 1)


# -- `sutro-sql run`: a script on a file database, lifted, re-run, replayed ----------------------

SCRIPT = """
    CREATE OR REPLACE TABLE notes AS
    SELECT i AS id, CASE WHEN i % 3 = 0 THEN 'risk high ' ELSE 'risk low ' END || i || ' é漢字' AS note,
           CASE WHEN i % 2 = 0 THEN NULL ELSE 'pro' END AS plan
    FROM range(30) r(i);
    CREATE OR REPLACE TABLE scored AS
    WITH answered AS (SELECT id, sutro_run('churn_risk', {'note': note, 'plan': plan}) AS a FROM notes)
    SELECT id, a.response AS risk, a.source AS src, a.job_id AS job FROM answered;
"""


def test_a_lifted_script_says_job_then_cache_and_replays_offline(home, tmp_path):
    write_newcomer_specs(home / "functions")
    script = tmp_path / "score.sql"
    script.write_text(textwrap.dedent(SCRIPT))
    database = tmp_path / "w.duckdb"

    def run(*options: str) -> tuple[dict, list]:
        result = run_cli(*options, "run", str(script), "--db", str(database), "--json", home=home)
        assert result.code == 0, result.stderr
        with duckdb.connect(str(database), read_only=True) as plain:
            return result.json(), plain.sql(
                "SELECT src, count(*), count(DISTINCT job) FROM scored GROUP BY ALL"
            ).fetchall()

    summary, sources = run("--auto-batch-threshold", "10")
    assert (summary["jobs_submitted"], summary["calls"], sources) == (1, 0, [("job", 30, 1)])
    summary, sources = run("--auto-batch-threshold", "10")
    assert (summary["jobs_submitted"], summary["calls"], summary["cache_hits"], sources) == (
        0,
        0,
        30,
        [("cache", 30, 1)],
    )
    summary, sources = run("--cache-mode", "replay", "--auto-batch-threshold", "10")
    assert (summary["jobs_submitted"], summary["calls"], sources) == (0, 0, [("cache", 30, 1)])
    script.write_text(textwrap.dedent(SCRIPT).replace("range(30)", "range(31)"))
    missed = run_cli("--cache-mode", "replay", "run", str(script), "--db", str(database), "--json", home=home)
    assert missed.code == 4 and "churn_risk" in missed.stderr and "30 é漢字" in missed.stderr


# -- a remote deployment -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    home = tmp_path_factory.mktemp("served")
    write_newcomer_specs(home / "functions")
    with ServedDeployment(make_home(home)) as deployment:
        yield deployment


@pytest.fixture
def remote_con(served, monkeypatch, tmp_path):
    monkeypatch.setenv("SUTRO_SQL_HOME", str(tmp_path / "client-home"))
    monkeypatch.setenv("SUTRO_API_URL", served.url)
    monkeypatch.setenv("SUTRO_API_KEY", served.api_key)
    con = connect(progress=False, max_concurrency=32)
    con.execute(
        "CREATE TABLE n AS SELECT i AS id, 'note ' || (i % 50) || CASE WHEN i % 7 = 0 THEN ' high' ELSE '' END AS note "
        "FROM range(200) r(i)"
    )
    yield con
    con.close()


def test_a_remote_answer_names_the_deployment_and_a_rerun_says_cache(remote_con, served):
    run = "SELECT a.source, a.engine, a.job_id, count(*) FROM (SELECT sutro_run('churn_risk', {'note': note}) a FROM n) GROUP BY ALL"
    assert remote_con.sql(run).fetchall() == [("engine", f"{served.url}/v1", None, 200)]
    (distinct,) = remote_con.sql("SELECT count(DISTINCT note) FROM n").fetchall()[0]
    assert session_for(remote_con).stats.calls == distinct < 200  # one call per distinct input
    assert remote_con.sql(run).fetchall() == [("cache", f"{served.url}/v1", None, 200)]
    batch = "SELECT source, count(DISTINCT job_id), count(*) FROM sutro_batch('invoice.parse', 'SELECT id, note AS email_body FROM n', id_column := 'id') GROUP BY ALL"
    assert remote_con.sql(batch).fetchall() == [("job", 1, 200)]
    assert remote_con.sql(batch).fetchall() == [("cache", 1, 200)]
    assert served.api_key not in str(remote_con.sql(run.replace("a.source", "a")).fetchall())


def test_remote_refusals_name_the_problem_and_never_the_key(remote_con, served, monkeypatch):
    for query, needle in [
        ("SELECT sutro_run('nope', {'x': 1})", "Function 'nope' not found"),
        ("SELECT sutro_run('churn_risk', {'plan': 'x'})", "Missing required input field"),
        ("SELECT * FROM sutro_batch('churn_risk', 'SELECT 1 AS id', id_column := 'id')", "note"),
    ]:
        with pytest.raises(duckdb.Error, match=needle) as raised:
            remote_con.sql(query).fetchall()
        assert served.api_key not in str(raised.value)
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(duckdb.Error, match="AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"):
        remote_con.sql(
            "SELECT * FROM sutro_batch('churn_risk', 'SELECT note FROM n', stage := 's3://bucket/p')"
        ).fetchall()
    bad = connect(client=Client(api_key="wrong-key-123", api_url=served.url), progress=False)
    with pytest.raises(duckdb.Error, match="Invalid or missing API key") as raised:
        bad.sql("SELECT sutro_run('churn_risk', {'note': 'x'})").fetchall()
    assert "wrong-key-123" not in str(raised.value)


def test_served_run_refuses_a_lone_surrogate_as_invalid_input(served):
    """Regression: `"\\ud800"` is valid JSON but not Unicode; the run endpoint sent it to the
    engine, which crashed on it (502 provider_error, the engine's traceback text in the detail)."""
    headers = {"Authorization": f"Key {served.api_key}", "Content-Type": "application/json"}
    url = f"{served.url}/v1/functions/churn_risk/run"
    refused = httpx.post(url, content=b'{"input": {"note": "\\ud800 x"}}', headers=headers, timeout=30)
    assert refused.status_code == 422, refused.text
    assert refused.json()["code"] == "invalid_input" and "lone surrogate" in refused.json()["detail"]
    paired = httpx.post(url, content=b'{"input": {"note": "high \\ud83d\\ude00"}}', headers=headers, timeout=30)
    assert paired.status_code == 200 and paired.json()["output"] == "high"
    one_input = f"{served.url}/v1/functions/review-sentiment/run"
    plain = httpx.post(one_input, content=b'{"input": "\\udfff"}', headers=headers, timeout=30)
    assert plain.status_code == 422


@pytest.fixture
def lifting(backend):
    """A connection lifting above 2 distinct inputs, with a table `n` of 4 notes, note 1 failing."""
    con = connect(backend=backend, progress=False, auto_batch_threshold=2)
    con.execute(
        "CREATE TABLE n AS SELECT i AS id, CASE WHEN i = 1 THEN 'FAIL_ROW' ELSE 'note ' || i END AS note FROM range(4) r(i)"
    )
    yield con
    con.close()


@pytest.mark.parametrize(
    "query",
    [
        "SELECT id, sutro_run('churn_risk', {'note': note}, on_error := 'null').response FROM n",
        "WITH a AS (SELECT id, sutro_run('churn_risk', {'note': note}, on_error := 'null') FROM n) SELECT * FROM a",
    ],
)
def test_a_lifted_projection_keeps_the_column_name_duckdb_gives_the_call(lifting, query):
    real_time = sql(lifting, query, auto_batch=False).columns
    assert sql(lifting, query, auto_batch=True).columns == real_time


def test_a_recorded_home_replays_from_a_checkout_at_another_path(home, tmp_path, keyword_engine):
    """Record, commit the specs and cache/answers.sqlite, replay in CI from another path."""
    from sutro_sql.backends.local import LocalBackend

    write_newcomer_specs(home / "functions")
    with LocalBackend(home, engine=keyword_engine) as recording, Client(backend=recording, progress=False) as client:
        recorded = client.run_function("churn_risk", {"note": "risk high"})["response"]
    checkout = tmp_path / "ci" / "home"
    shutil.copytree(home / "functions", checkout / "functions")
    shutil.copytree(home / "cache", checkout / "cache")  # what the README says to commit
    with (
        LocalBackend(checkout, engine=keyword_engine) as ci,
        Client(backend=ci, progress=False, cache_mode="replay") as replay,
    ):
        assert replay.run_function("churn_risk", {"note": "risk high"})["response"] == recorded
    assert keyword_engine.calls == 1


def test_a_remote_batch_answer_names_the_revision_sutro_run_names(remote_con):
    (run_revision,) = remote_con.sql("SELECT sutro_run('churn_risk', {'note': 'x'}).revision").fetchall()[0]
    assert run_revision
    batch = remote_con.sql("SELECT DISTINCT revision FROM sutro_batch('churn_risk', 'SELECT ''y'' AS note')")
    assert batch.fetchall() == [(run_revision,)]


def test_a_failed_row_reads_the_same_lifted_or_real_time(lifting):
    query = (
        "WITH answered AS (SELECT id, sutro_run('churn_risk', {'note': note}, on_error := 'null') AS a FROM n) "
        "SELECT a.function, a.revision, a.engine, a.escalated FROM answered WHERE id = 1"
    )
    real_time = sql(lifting, query, auto_batch=False).fetchall()
    assert sql(lifting, query, auto_batch=True).fetchall() == real_time


def test_served_batch_refuses_a_url_with_a_lone_surrogate_as_invalid_input(served):
    """Regression: a URL `inputs` holding `\\ud800` crashed the URL parser (500 internal_error)."""
    headers = {"Authorization": f"Key {served.api_key}", "Content-Type": "application/json"}
    body = b'{"model": "review-sentiment", "inputs": "http://127.0.0.1:1/rows\\ud800.csv"}'
    refused = httpx.post(f"{served.url}/v1/batch-inference", content=body, headers=headers, timeout=30)
    assert refused.status_code == 422, refused.text
    assert refused.json()["code"] == "invalid_input" and "lone surrogate" in refused.json()["detail"]
