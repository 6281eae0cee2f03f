"""The counters are exact: `calls` = distinct inputs not answered before the statement,
`cache_hits` = rows whose answer was there before the statement began, whatever DuckDB's
vector split, the repeats, re-runs and new connections (a property test against a model)."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sutro_sql.backends.local import LocalBackend
from sutro_sql.sql_layer import connect, session_for
from tests.conftest import EXAMPLE_FUNCTIONS
from tests.support.engines import KeywordEngine

RUN = "sutro_run('lead-qualifier', {'query': 'lead ' || x, 'region': 'EU'})"
#: Statements: (rows drawn from a pool of 12 inputs, whether to open a new connection first).
STATEMENTS = st.lists(
    st.tuples(st.lists(st.integers(0, 11), min_size=1, max_size=5000), st.booleans()), min_size=1, max_size=4
)


def test_a_cold_statement_with_repeats_counts_no_cache_hits(local_backend):
    con = connect(backend=local_backend, progress=False)
    con.execute("CREATE TABLE t AS SELECT i % 10 AS x FROM range(5000) r(i)")
    con.sql(f"SELECT {RUN} FROM t").fetchall()
    stats = session_for(con).stats
    assert (stats.calls, stats.cache_hits, stats.rows_answered) == (10, 0, 5000)
    session_for(con).reset_stats()
    con.sql(f"SELECT {RUN} FROM t").fetchall()
    assert (stats.calls, stats.cache_hits) == (10, 0)  # the old counters are kept as they were
    assert (session_for(con).stats.calls, session_for(con).stats.cache_hits) == (0, 5000)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(statements=STATEMENTS)
def test_calls_and_cache_hits_match_a_model_of_the_cache(statements, monkeypatch):
    monkeypatch.delenv("SUTRO_API_URL", raising=False)
    monkeypatch.delenv("SUTRO_API_KEY", raising=False)
    home = Path(tempfile.mkdtemp(prefix="sutro-stats-"))
    shutil.copytree(EXAMPLE_FUNCTIONS, home / "functions")
    backend = LocalBackend(home, engine=KeywordEngine())
    cached: set[int] = set()
    con = None
    try:
        for rows, reconnect in statements:
            if con is None or reconnect:
                con = connect(backend=backend, progress=False)
            con.execute("CREATE OR REPLACE TABLE t AS SELECT unnest($rows::INTEGER[]) AS x", {"rows": rows})
            session_for(con).reset_stats()
            con.sql(f"SELECT {RUN} FROM t").fetchall()
            stats = session_for(con).stats
            assert stats.calls == len(set(rows) - cached)
            assert stats.cache_hits == sum(1 for x in rows if x in cached)
            assert (stats.rows_answered, stats.rows_failed) == (len(rows), 0)
            cached |= set(rows)
    finally:
        backend.close()
        shutil.rmtree(home, ignore_errors=True)
