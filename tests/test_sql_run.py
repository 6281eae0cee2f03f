"""sutro_run on a real DuckDB over the LocalBackend + KeywordEngine: answers, NULLs, dedup,
the persistent cache, concurrency and order, errors."""

from __future__ import annotations

import json

import duckdb
import pytest

import sutro_sql
from sutro_sql.sql_layer import connect, register, session_for, sql
from tests.sql_support import CountingBackend, logged_rows, run_python

RUN = "sutro_run('lead-qualifier', {'query': query, 'region': region})"


@pytest.fixture
def con(counting):
    connection = connect(backend=counting, progress=False)
    yield connection
    connection.close()


def make_leads(con, rows: int, distinct: int) -> None:
    con.execute(
        f"CREATE TABLE leads AS SELECT i AS id, 'lead ' || (i % {distinct}) || "
        f"CASE WHEN i % {distinct} % 3 = 0 THEN ' qualified' ELSE ' browsing' END AS query, "
        f"'EMEA' AS region FROM range({rows}) t(i)"
    )


def test_answers_are_the_backends_answers_in_row_order(con, counting, local_backend):
    make_leads(con, 40, 40)
    rows = con.sql(f"SELECT query, {RUN} AS a FROM leads ORDER BY id DESC").fetchall()
    for query, answer in rows:
        expected = local_backend.run_function("lead-qualifier", {"query": query, "region": "EMEA"})
        assert answer["response"] == expected["response"] == expected["output"]
        assert answer["confidence"] == expected["confidence"]
        assert answer["predictions"] == expected["predictions"]
        assert json.loads(answer["output"]) == expected["output"]
        assert answer["usage"] == {k: expected["usage"][k] for k in ("input_tokens", "output_tokens")}
        assert answer["error"] is None
    assert all(answer["response"] == "qualified" for query, answer in rows if query.endswith(" qualified"))


def test_result_type_is_the_one_answer_struct(con):
    (kind,) = con.sql("SELECT typeof(sutro_run('ticket-triage', {'subject': 's', 'body': 'b'}))").fetchall()[0]
    assert kind == (
        'STRUCT(response VARCHAR, output JSON, confidence DOUBLE, predictions STRUCT("label" VARCHAR, '
        'confidence DOUBLE)[], rationale VARCHAR, usage STRUCT(input_tokens BIGINT, output_tokens BIGINT), "error" VARCHAR, '
        '"function" VARCHAR, revision VARCHAR, engine VARCHAR, job_id VARCHAR, "source" VARCHAR, escalated BOOLEAN)'
    )


def test_extraction_output_is_json(con):
    (output,) = con.sql(
        "SELECT sutro_run('ticket-extractor', {'body': 'Order ORD-1 was charged twice'}).output"
    ).fetchall()[0]
    assert set(json.loads(output)) == {"order_id", "amount", "email", "sentiment", "urgent"}


def test_null_input_gives_null_and_makes_no_call(con, counting):
    con.execute("CREATE TABLE t AS SELECT NULL::STRUCT(query VARCHAR, region VARCHAR) AS s FROM range(5)")
    assert con.sql("SELECT sutro_run('lead-qualifier', s) FROM t").fetchall() == [(None,)] * 5
    con.execute("INSERT INTO t VALUES ({'query': 'buy now', 'region': 'NA'})")
    answers = [r[0] for r in con.sql("SELECT sutro_run('lead-qualifier', s) FROM t").fetchall()]
    assert answers[:5] == [None] * 5 and answers[5]["response"] is not None
    assert len(counting.run_calls) == 1
    assert session_for(con).stats.rows_answered == 1


def test_empty_input_makes_no_call(con, counting):
    make_leads(con, 0, 1)
    assert con.sql(f"SELECT {RUN} FROM leads").fetchall() == []
    assert counting.run_calls == [] and counting.submissions == 0
    assert session_for(con).stats.calls == 0


def test_identical_inputs_are_sent_once_within_and_across_vectors(con, counting, keyword_engine):
    make_leads(con, 10_000, 37)  # ~5 DuckDB vectors, every input in each of them
    rows = con.sql(f"SELECT {RUN}.response FROM leads").fetchall()
    assert len(rows) == 10_000
    assert len(counting.run_calls) == 37 == keyword_engine.calls
    assert len({json.dumps(c, sort_keys=True) for c in counting.run_calls}) == 37
    stats = session_for(con).stats
    assert stats.calls == 37
    assert stats.rows_answered == 10_000 and stats.rows_failed == 0
    assert stats.cache_hits + 37 <= 10_000


def test_struct_field_order_does_not_defeat_the_cache(con, counting):
    con.sql("SELECT sutro_run('lead-qualifier', {'query': 'q', 'region': 'r'})").fetchall()
    con.sql("SELECT sutro_run('lead-qualifier', {'region': 'r', 'query': 'q'})").fetchall()
    assert len(counting.run_calls) == 1


def test_answers_are_cached_across_connections(con, counting, home, keyword_engine):
    from sutro_sql.backends.local import LocalBackend

    make_leads(con, 500, 20)
    first = con.sql(f"SELECT id, {RUN} FROM leads ORDER BY id").fetchall()
    assert len(counting.run_calls) == 20
    with LocalBackend(home, engine=keyword_engine) as fresh_backend:
        other_backend = CountingBackend(fresh_backend)
        other = duckdb.connect()
        register(other, other_backend)
        other.execute("CREATE TABLE leads AS SELECT * FROM (VALUES (0, 'x', 'y')) t(id, query, region) LIMIT 0")
        other.execute(
            "INSERT INTO leads SELECT * FROM (VALUES "
            + ", ".join(f"({i}, '{q}', '{r}')" for i, q, r in con.sql("SELECT * FROM leads ORDER BY id").fetchall())
            + ")"
        )
        again = other.sql(f"SELECT id, {RUN} FROM leads ORDER BY id").fetchall()
        assert {answer["source"] for _, answer in first} == {"engine"}
        assert again == [(i, answer | {"source": "cache"}) for i, answer in first]  # provenance kept
        assert other_backend.run_calls == []
        stats = session_for(other).stats
        assert stats.calls == 0 and stats.cache_hits == 500 and stats.rows_answered == 500
        other.close()


def test_answers_are_cached_across_processes(home, tmp_path):
    log = tmp_path / "engine.log"
    code = (
        "import json, sutro_sql\n"
        "from sutro_sql.sql_layer import session_for\n"
        f"con = sutro_sql.connect({str(tmp_path / 'w.duckdb')!r})\n"
        "con.execute(\"CREATE TABLE IF NOT EXISTS leads AS SELECT i AS id, 'lead ' || (i % 12) AS query, "
        "'NA' AS region FROM range(300) t(i)\")\n"
        f'rows = con.sql("SELECT id, {RUN}.response FROM leads ORDER BY id").fetchall()\n'
        "print(json.dumps({'rows': rows, **session_for(con).stats.as_dict()}))\n"
    )
    first = run_python(code, home, log=log)
    assert first["calls"] == 12 and logged_rows(log) == 12
    second = run_python(code, home, log=log)
    assert second["rows"] == first["rows"]
    assert second["calls"] == 0 and second["cache_hits"] == 300
    assert logged_rows(log) == 12


def test_cache_false_calls_the_backend_again(con, counting):
    make_leads(con, 100, 10)
    con.sql(f"SELECT {RUN} FROM leads").fetchall()
    assert len(counting.run_calls) == 10
    fresh = con.sql(
        "SELECT sutro_run('lead-qualifier', {'query': query, 'region': region}, cache := false).response FROM leads"
    ).fetchall()
    assert len(fresh) == 100
    assert len(counting.run_calls) == 20  # deduplicated within the vector, but not answered from the cache
    con.sql(f"SELECT {RUN} FROM leads").fetchall()
    assert len(counting.run_calls) == 20


def test_register_cache_false_turns_the_cache_off(local_backend):
    counting = CountingBackend(local_backend)
    con = connect(backend=counting, cache=False)
    for _ in range(2):
        con.sql("SELECT sutro_run('lead-qualifier', {'query': 'q', 'region': 'r'})").fetchall()
    assert len(counting.run_calls) >= 2
    assert session_for(con).stats.cache_hits == 0


def test_calls_run_concurrently_up_to_max_concurrency_and_keep_order(home):
    from sutro_sql.backends.local import LocalBackend
    from tests.support.engines import KeywordEngine

    with LocalBackend(home, engine=KeywordEngine(delay=0.03)) as slow:
        counting = CountingBackend(slow)
        con = connect(backend=counting, max_concurrency=4)
        con.execute(
            "CREATE TABLE t AS SELECT i, ['billing', 'bug', 'account_access', 'feature_request'][i % 4 + 1] || "
            "' ticket ' || i AS subject FROM range(24) r(i)"
        )
        rows = con.sql(
            "SELECT subject, sutro_run('ticket-triage', {'subject': subject, 'body': 'help'}).response FROM t"
        ).fetchall()
        assert len(rows) == 24
        assert [answer for _, answer in rows] == [subject.split()[0] for subject, _ in rows]
        assert 1 < counting.max_in_flight <= 4
        con.close()


def test_on_error_raise_names_function_row_and_detail(con):
    con.execute("CREATE TABLE t AS SELECT * FROM (VALUES ('fine'), ('please FAIL_ROW here')) v(q)")
    with pytest.raises(duckdb.Error) as failure:
        con.sql("SELECT sutro_run('lead-qualifier', {'query': q, 'region': 'NA'}) FROM t").fetchall()
    message = str(failure.value)
    assert "'lead-qualifier'" in message
    assert "please FAIL_ROW here" in message
    assert "engine refused the row" in message


def test_on_error_raise_truncates_long_rows(con):
    long_text = "FAIL_ROW " + "x" * 5000
    with pytest.raises(duckdb.Error) as failure:
        con.sql(f"SELECT sutro_run('lead-qualifier', {{'query': '{long_text}', 'region': 'NA'}})").fetchall()
    assert "FAIL_ROW" in str(failure.value) and "x" * 1000 not in str(failure.value)


def test_on_error_null_fills_error_and_answers_the_rest(con):
    con.execute(
        "CREATE TABLE t AS SELECT * FROM (VALUES (1, 'qualified buyer'), (2, 'FAIL_ROW'), (3, 'student')) v(i, q)"
    )
    rows = con.sql(
        "SELECT i, sutro_run('lead-qualifier', {'query': q, 'region': 'NA'}, on_error := 'null') AS a FROM t ORDER BY i"
    ).fetchall()
    assert rows[0][1]["response"] == "qualified" and rows[0][1]["error"] is None
    assert rows[1][1]["response"] is None and "engine refused the row" in rows[1][1]["error"]
    assert rows[2][1]["response"] is not None
    stats = session_for(con).stats
    assert (stats.rows_answered, stats.rows_failed) == (2, 1)


def test_failed_rows_are_not_cached(con, counting):
    query = "SELECT sutro_run('lead-qualifier', {'query': 'FAIL_ROW', 'region': 'NA'}, on_error := 'null')"
    con.sql(query).fetchall()
    con.sql(query).fetchall()
    assert len(counting.run_calls) >= 2


def test_bad_on_error_value_is_refused(con):
    with pytest.raises(duckdb.Error, match="on_error must be 'raise' or 'null'"):
        con.sql("SELECT sutro_run('lead-qualifier', {'query': 'q', 'region': 'r'}, on_error := 'ignore')").fetchall()


def test_non_struct_input_is_refused(con, counting):
    with pytest.raises(duckdb.Error, match="must be a STRUCT"):
        con.sql("SELECT sutro_run('lead-qualifier', 'just text')").fetchall()
    assert counting.run_calls == []


def test_unknown_function_is_refused(con):
    with pytest.raises(duckdb.Error, match="unknown Function 'no-such-function'"):
        con.sql("SELECT sutro_run('no-such-function', {'query': 'q'})").fetchall()


def test_missing_required_field_is_refused(con, counting):
    with pytest.raises(duckdb.Error, match="Missing required input field"):
        con.sql("SELECT sutro_run('lead-qualifier', {'query': 'only a query'})").fetchall()
    assert counting.run_calls == []


def test_function_name_must_be_a_literal(con):
    con.execute("CREATE TABLE t AS SELECT * FROM (VALUES ('lead-qualifier'), ('ticket-triage')) v(fn)")
    with pytest.raises(duckdb.Error, match="must be a string literal"):
        con.sql("SELECT sutro_run(fn, {'query': 'q', 'region': 'r'}) FROM t").fetchall()
    with pytest.raises(sutro_sql.QueryError, match="must be a string literal"):
        sql(con, "SELECT sutro_run(fn, {'query': 'q', 'region': 'r'}) FROM t")


def test_options_must_be_the_same_on_every_row_even_with_every_input_cached(con):
    lead = "{'query': 'q', 'region': 'r'}"
    con.sql(f"SELECT sutro_run('lead-qualifier', {lead}, abstain_below := 0.5)").fetchall()  # now in memory
    con.execute("CREATE TABLE t AS SELECT * FROM (VALUES ('lead-qualifier', 0.5), ('ticket-triage', 0.9)) v(fn, p)")
    with pytest.raises(duckdb.Error, match="on_error, cache and abstain_below must be literals"):
        con.sql(f"SELECT sutro_run('lead-qualifier', {lead}, abstain_below := p) FROM t").fetchall()
    with pytest.raises(duckdb.Error, match="must be a string literal"):
        con.sql(f"SELECT sutro_run(fn, {lead}, abstain_below := 0.5) FROM t").fetchall()


def test_usage_and_cost_are_counted_exactly(con, counting):
    make_leads(con, 30, 6)
    con.sql(f"SELECT {RUN} FROM leads").fetchall()
    expected = [counting._backend.run_function("lead-qualifier", call)["usage"] for call in counting.run_calls]
    stats = session_for(con).stats
    assert stats.input_tokens == sum(u["input_tokens"] for u in expected)
    assert stats.output_tokens == sum(u["output_tokens"] for u in expected)
    assert stats.cost_usd == pytest.approx(sum(u["cost_usd"] for u in expected))
    session_for(con).reset_stats()
    assert session_for(con).stats.calls == 0


def test_database_file_keeps_no_macros(local_backend, tmp_path):
    path = str(tmp_path / "warehouse.duckdb")
    con = connect(path, backend=local_backend)
    con.execute("CREATE TABLE leads AS SELECT 'buy' AS query, 'NA' AS region")
    con.execute(f"CREATE TABLE answers AS SELECT {RUN}.response AS r FROM leads")
    con.close()
    plain = duckdb.connect(path)
    assert plain.sql("SELECT r FROM answers").fetchall() == [
        (local_backend.run_function("lead-qualifier", {"query": "buy", "region": "NA"})["response"],)
    ]
    assert plain.sql("SELECT count(*) FROM duckdb_functions() WHERE function_name LIKE 'sutro%'").fetchall() == [(0,)]
    plain.close()


def test_session_for_an_unregistered_connection_is_a_clear_error():
    with pytest.raises(sutro_sql.QueryError, match="register"):
        session_for(duckdb.connect())


def test_a_constant_call_is_counted_once(con, counting):
    con.sql("SELECT sutro_run('lead-qualifier', {'query': 'q', 'region': 'r'}).response").fetchall()
    stats = session_for(con).stats
    assert (stats.calls, stats.rows_answered) == (1, 1) and len(counting.run_calls) == 1


def test_an_unreachable_backend_fails_the_query_and_the_next_query_tries_again(local_backend):
    class FlakyBackend(CountingBackend):
        down = True

        def run_function(self, name, input, **kwargs):
            if self.down:
                raise sutro_sql.BackendUnavailableError("cannot connect (ConnectError)")
            return super().run_function(name, input, **kwargs)

    flaky = FlakyBackend(local_backend)
    con = connect(backend=flaky)
    query = "SELECT sutro_run('lead-qualifier', {'query': 'q', 'region': 'r'}, on_error := 'null').response"
    with pytest.raises(duckdb.Error, match="cannot connect"):
        con.sql(query).fetchall()
    flaky.down = False
    assert con.sql(query).fetchall()[0][0] is not None
    assert len(flaky.run_calls) == 1


def test_registering_again_replaces_the_session(con, local_backend):
    first = session_for(con)
    con.sql("SELECT sutro_run('lead-qualifier', {'query': 'q', 'region': 'r'})").fetchall()
    second = register(con, local_backend, max_concurrency=2)
    assert session_for(con) is second is not first
    con.sql("SELECT sutro_run('lead-qualifier', {'query': 'q', 'region': 'r'})").fetchall()
    assert (second.stats.calls, second.stats.cache_hits) == (0, 1)


def test_a_vector_of_new_inputs_reaches_the_local_engine_in_a_few_batched_calls(home):
    """The embedded engine encodes a batch at once: `sutro_run` hands it a vector's distinct new
    inputs together (split across the concurrency), not one call per row."""
    from sutro_sql.backends.local import LocalBackend
    from tests.support.engines import KeywordEngine

    class BatchRecordingEngine(KeywordEngine):
        def __init__(self) -> None:
            super().__init__()
            self.batch_sizes: list[int] = []

        def answer(self, spec, rows):
            self.batch_sizes.append(len(rows))
            return super().answer(spec, rows)

    engine = BatchRecordingEngine()
    backend = LocalBackend(home, engine=engine)
    try:
        con = connect(backend=backend, progress=False, max_concurrency=2)
        make_leads(con, 200, 200)
        rows = con.sql(f"SELECT id, {RUN}.response FROM leads ORDER BY id").fetchall()
        assert len(rows) == 200 and all(response is not None for _, response in rows)
        assert sum(engine.batch_sizes) == 200 and len(engine.batch_sizes) <= 4
        assert session_for(con).stats.calls == 200
        one = backend.run_function("lead-qualifier", {"query": "lead 7 qualified", "region": "EMEA"})
        assert one["output"] == dict(rows)[7]  # the batched answer is the one-row answer
    finally:
        backend.close()


def test_after_a_fatal_error_a_vector_sends_none_of_its_other_inputs(local_backend):
    class Unreachable:
        """A backend answering one input per call, whose deployment is down."""

        identity, home = local_backend.identity, local_backend.home
        get_function_spec = local_backend.get_function_spec
        calls = 0

        def run_function(self, name, input, **kwargs):
            Unreachable.calls += 1
            raise sutro_sql.BackendUnavailableError("cannot connect (ConnectError)")

    con = connect(backend=Unreachable(), max_concurrency=2, progress=False)
    make_leads(con, 200, 200)
    with pytest.raises(duckdb.Error, match="cannot connect"):
        con.sql(f"SELECT {RUN} FROM leads").fetchall()
    assert 1 <= Unreachable.calls <= 2  # at most one call in flight per worker when the first failed
