"""`sutro_sql.sql(con, query)`: run SQL with the friendlier forms plain DuckDB cannot take.

- ``sutro_batch('fn', (SELECT ...))``: the subquery form, rewritten with sqlglot.
- Every `sutro_batch` inner query (subquery or string) runs here, on the caller's
  connection, into a Parquet file the batch then reads. So, unlike a plain
  ``con.sql``, it sees this connection's TEMP tables and uncommitted rows (the
  UDF behind `sutro_batch` can only use a cursor, which sees neither).
- ``auto_batch=True``: `sutro_run` projections of a plain SELECT whose distinct
  inputs number more than the session's `auto_batch_threshold` become one batch
  job; its answers land in a TEMP table (living until the connection closes) and
  each call is replaced by a lookup of its row's input there, so the query costs
  what a batch costs and returns what `sutro_run` returns (with `usage` NULL:
  batch usage is per job).

A script runs statement by statement (so a later `sutro_batch` sees the TEMP table an
earlier statement made); a query sqlglot cannot parse runs unchanged.
"""

from __future__ import annotations

import os
import uuid

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
from sqlglot import exp
from sqlglot.errors import ParseError

from ..errors import QueryError
from .answers import ANSWER_SQL_TYPE
from .batch import BatchOptions, BatchRunner, content_key, quote, spool_query
from .rewrite import (
    Lift,
    inputs_query,
    liftable_calls,
    literal_function_name,
    lookup,
    parse,
    positional,
    sutro_calls,
    validate_read_query,
)
from .scalar import row_failure
from .session import FunctionInfo, SutroSession, session_for


def sql(con: duckdb.DuckDBPyConnection, query: str, *, auto_batch: bool = False) -> duckdb.DuckDBPyRelation:
    """Run `query` (one statement or a script) on a registered connection, with the rewrites of the
    module docstring; returns DuckDB's relation for the last statement."""
    session = session_for(con)
    try:
        statements = parse(query)
    except ParseError:
        return con.sql(query)
    if not statements:
        return con.sql(query)
    for statement in statements[:-1]:  # a script: earlier statements run first, so later ones see them
        con.execute(_rewrite(con, session, statement, auto_batch) or statement.sql("duckdb"))
    last = statements[-1]
    rewritten = _rewrite(con, session, last, auto_batch)
    if rewritten is None:
        return con.sql(query if len(statements) == 1 else last.sql("duckdb"))
    return con.sql(rewritten)


def _rewrite(
    con: duckdb.DuckDBPyConnection, session: SutroSession, tree: exp.Expression, auto_batch: bool
) -> str | None:
    """The statement's SQL after the rewrites, or None when nothing needed rewriting."""
    for call in sutro_calls(tree, "sutro_run"):
        literal_function_name(call)
    changed = False
    for call in sutro_calls(tree, "sutro_batch"):
        literal_function_name(call)
        args = positional(call)
        if len(args) < 2:
            continue
        inner = args[1]
        if isinstance(inner, exp.Subquery):
            text = inner.this.sql("duckdb")
        elif isinstance(inner, exp.Literal) and inner.is_string:
            text = inner.this
        else:
            raise QueryError("sutro_batch: the query must be a string or a (SELECT ...) subquery")
        source = _run_inner_query(con, session, validate_read_query(text))
        inner.replace(exp.Literal.string(f"SELECT * FROM read_parquet('{source}')"))
        changed = True
    if auto_batch and isinstance(tree, exp.Select):
        for lift in liftable_calls(tree):
            table = _lift(con, session, tree, lift)
            if table is not None:
                for call in lift.calls:
                    call.replace(lookup(table, lift))
                changed = True
    return tree.sql("duckdb") if changed else None


def _run_inner_query(con: duckdb.DuckDBPyConnection, session: SutroSession, query: str) -> str:
    """Run a sutro_batch inner query on `con` itself into a Parquet file; returns its path."""
    path = os.path.join(session.workdir, f"inner-{uuid.uuid4().hex}.parquet")
    try:
        con.execute(f"COPY (\n{query}\n) TO '{path}' (FORMAT parquet)")
    except duckdb.Error as exc:
        raise QueryError(f"sutro_batch: the query failed: {exc}") from None
    return path


def _lift(con: duckdb.DuckDBPyConnection, session: SutroSession, tree: exp.Select, lift: Lift) -> str | None:
    """Answer a lifted call's distinct inputs with one batch job; the TEMP table holding them,
    or None when there are too few inputs to be worth a job."""
    info = session.function(lift.function)
    inputs = inputs_query(tree, lift)
    (count,) = con.sql(f"SELECT count(*) FROM ({inputs})").fetchall()[0]
    if count <= session.auto_batch_threshold:
        return None
    names = _input_names(con, info, inputs)
    fields = ", ".join(f"json_extract_string(__sutro_input, {_json_path(n)}) AS {quote(n)}" for n in names)
    spool = spool_query(con, info, f"SELECT __sutro_input, {fields} FROM ({inputs})", "__sutro_input", session.workdir)
    try:
        answers = BatchRunner(session).answer(info, spool, BatchOptions(cache=lift.cache)).per_row()
        texts = pq.read_table(spool.path, columns=["__sutro_input"]).column(0)
    finally:
        spool.remove()
    errors = answers.field("error")
    if lift.on_error == "raise" and errors.null_count < len(errors):
        first = next(i for i, e in enumerate(errors.to_pylist()) if e is not None)
        raise row_failure(info.name, texts[first].as_py(), errors[first].as_py())
    table = f"__sutro_auto_{content_key(info, spool, False)[:16]}"
    view = f"{table}_arrow"
    con.register(view, pa.table({"__sutro_input": texts, "__sutro_answer": answers}))
    try:
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE {table} AS SELECT __sutro_input, "
            f"CAST(__sutro_answer AS {ANSWER_SQL_TYPE}) AS __sutro_answer FROM {view}"
        )
    finally:
        con.unregister(view)
    return table


def _input_names(con: duckdb.DuckDBPyConnection, info: FunctionInfo, inputs: str) -> list[str]:
    """The Function's input fields; a clear error when an input STRUCT lacks a required one."""
    if info.spec is None:
        rows = con.sql(f"SELECT DISTINCT unnest(json_keys(__sutro_input)) FROM ({inputs})").fetchall()
        return sorted(name for (name,) in rows)
    for field in info.spec.inputs:
        if not field.required:
            continue
        missing = con.sql(
            f"SELECT __sutro_input FROM ({inputs}) WHERE NOT json_exists(__sutro_input, {_json_path(field.name)}) "
            "LIMIT 1"
        ).fetchall()
        if missing:
            raise row_failure(info.name, missing[0][0], f"Missing required input field(s): {field.name}.")
    return info.spec.input_names


def _json_path(name: str) -> str:
    escaped = name.replace('"', '\\"').replace("'", "''")
    return f"'$.\"{escaped}\"'"
