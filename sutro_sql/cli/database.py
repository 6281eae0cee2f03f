"""The DuckDB session `run` and `query` execute in: Functions registered, one statement at a time."""

from __future__ import annotations

import dataclasses
from typing import Any

from .state import CliState


def open_database(state: CliState, db: str | None) -> Any:
    """A DuckDB connection (a file, or in memory) with the Functions registered on the backend, and
    the `auto_batch` lift on unless turned off (`--no-auto-batch`)."""
    from ..sql_layer import connect

    threshold = {} if state.auto_batch_threshold is None else {"auto_batch_threshold": state.auto_batch_threshold}
    return connect(
        db or ":memory:", client=state.client(), progress=state.progress(), auto_batch=state.auto_batch, **threshold
    )


def execute(con: Any, query: str) -> Any:
    """Run one statement through `sutro_sql.sql` (subquery form, TEMP tables, the session's
    `auto_batch` lift) and fetch its rows as Arrow."""
    from ..sql_layer import sql

    result = sql(con, query)
    return None if result is None else result.fetch_arrow_table()


def returns_rows(statement: Any) -> bool:
    """SELECT-like statements print their rows; DDL and DML (whose result is a count) do not."""
    return statement.type.name in ("SELECT", "EXPLAIN", "PRAGMA", "CALL")


def session_stats(con: Any) -> dict[str, Any]:
    """The SQL session's counters (rows answered and failed, calls, cache hits, jobs, tokens, cost)."""
    from ..sql_layer import session_for

    return dataclasses.asdict(session_for(con).stats)
