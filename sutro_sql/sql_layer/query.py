"""`sutro_sql.sql(con, query)`: run SQL with the friendlier forms plain DuckDB cannot take.

- ``sutro_batch('fn', (SELECT ...))``: the subquery form, rewritten with sqlglot.
- Every `sutro_batch` inner query (subquery or string) runs here, on the caller's
  connection, into a Parquet file the batch then reads. So, unlike a plain
  ``con.sql``, it sees this connection's TEMP tables and uncommitted rows (the
  UDF behind `sutro_batch` can only use a cursor, which sees neither).
- The `auto_batch` lift (the session's setting, or ``auto_batch=True/False``):
  `sutro_run` projections of a plain SELECT (also the query of CREATE TABLE ... AS or
  INSERT ... SELECT, and its CTEs) whose distinct inputs number more than the
  session's `auto_batch_threshold` become one batch job; its answers land in a
  Parquet file of the session (living until the connection closes) and each call is
  replaced by a lookup of its row's input there, so the query costs what a batch
  costs and returns what `sutro_run` returns (`usage` NULL: batch usage is per job;
  `source` 'job' and the job's id, or 'cache' for inputs answered before).

A script runs statement by statement (so a later `sutro_batch` sees the TEMP table an
earlier statement made); a query sqlglot cannot parse runs unchanged.

`lift_query` is the same rewrite as a function of the query text, behind the `_sutro_lift`
UDF: dbt-duckdb runs a model's SQL itself, so the `sutro_sql` dbt package's
`create_table_as` override asks it for the lifted SQL first (macros/lift.sql). It runs
on a cursor, so its inner queries see committed tables only, as `sutro_batch` does.
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
from ..inputs import FunctionRef, row_failure
from .batch import BatchOptions, BatchRunner
from .rewrite import (
    Lift,
    inner_queries,
    inputs_query,
    liftable_calls,
    literal_function_name,
    parse,
    scope_query,
    sutro_calls,
    with_batch_sources,
    with_lifted_answers,
)
from .session import SutroSession, session_for
from .spool import INPUT_COLUMN, spool_query


def sql(con: duckdb.DuckDBPyConnection, query: str, *, auto_batch: bool | None = None) -> duckdb.DuckDBPyRelation:
    """Run `query` (one statement or a script) on a registered connection, with the rewrites of the
    module docstring; returns DuckDB's relation for the last statement. `auto_batch`: lift large
    `sutro_run` queries to one batch job (default: the session's setting, see `register`)."""
    session = session_for(con)
    auto_batch = session.auto_batch if auto_batch is None else auto_batch
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
    """The statement's SQL after the rewrites, or None when nothing needed rewriting: find (pure),
    run what was found, substitute (pure); first for `sutro_batch` queries, then for the lift,
    which reads the statement with its `sutro_batch` sources in place."""
    for call in sutro_calls(tree, "sutro_run"):
        literal_function_name(call)
    queries = inner_queries(tree)
    sources = [None if query is None else _run_inner_query(con, session, query) for query in queries]
    rewritten = with_batch_sources(tree, sources)
    # replay submits no job: the calls stay per row, answered from the cache with their on_error
    lifting = auto_batch and session.client.cache_mode != "replay"
    lifts = liftable_calls(rewritten) if lifting else []
    files = [_lift(con, session, rewritten, lift) for lift in lifts]
    names = {lift.scope: _column_names(con, scope_query(rewritten, lift.scope)) for lift in lifts}
    rewritten = with_lifted_answers(rewritten, lifts, files, names)
    changed = any(source is not None for source in sources) or any(path is not None for path in files)
    return rewritten.sql("duckdb") if changed else None


def _column_names(con: duckdb.DuckDBPyConnection, select: exp.Select) -> list[str]:
    """Per projection of `select` holding a `sutro_run` call without an alias, the column name
    DuckDB gives it (its expression as DuckDB prints it back); "" for the others. Parsing only,
    since `lift_query`'s cursor has no `sutro_run` macro to bind."""
    names = []
    for projection in select.expressions:
        if isinstance(projection, exp.Alias) or not sutro_calls(projection, "sutro_run"):
            names.append("")
            continue
        text = f"SELECT {projection.sql('duckdb')}"
        (printed,) = con.execute("SELECT json_deserialize_sql(json_serialize_sql(?))", [text]).fetchall()[0]
        names.append(printed.removeprefix("SELECT "))
    return names


def lift_query(session: SutroSession, query: str) -> str:
    """`query` with the rewrites of `sql` (the lift when the session's `auto_batch` is on), run on
    a cursor of the session's connection; the query itself when there is nothing to rewrite or it
    is not one statement sqlglot reads."""
    try:
        statements = parse(query)
    except ParseError:
        return query
    if len(statements) != 1:
        return query
    cursor = session.connection.cursor()
    try:
        return _rewrite(cursor, session, statements[0], session.auto_batch) or query
    finally:
        cursor.close()


def _run_inner_query(con: duckdb.DuckDBPyConnection, session: SutroSession, query: str) -> str:
    """Run a sutro_batch inner query on `con` itself into a Parquet file; returns its path."""
    path = os.path.join(session.workdir, f"inner-{uuid.uuid4().hex}.parquet")
    try:
        con.execute(f"COPY (\n{query}\n) TO '{path}' (FORMAT parquet)")
    except duckdb.Error as exc:
        raise QueryError(f"sutro_batch: the query failed: {exc}") from None
    return path


def _lift(con: duckdb.DuckDBPyConnection, session: SutroSession, tree: exp.Expression, lift: Lift) -> str | None:
    """Answer a lifted call's distinct inputs with one batch job; the Parquet file holding them
    (input JSON text, answer), or None when there are too few inputs to be worth a job."""
    ref = session.function(lift.function)
    inputs = inputs_query(tree, lift)
    (count,) = con.sql(f"SELECT count(*) FROM ({inputs})").fetchall()[0]
    if count <= session.auto_batch_threshold:
        return None
    _check_required_fields(con, ref, inputs)
    spool = spool_query(con, ref, inputs, None, session.workdir, input_json="__sutro_input")
    try:
        answers = BatchRunner(session).answer(ref, spool, BatchOptions(cache=lift.cache)).per_row()
        texts = pq.read_table(spool.path, columns=[INPUT_COLUMN]).column(0)
    finally:
        spool.remove()
    errors = answers.field("error")
    if lift.on_error == "raise" and errors.null_count < len(errors):
        first = next(i for i, e in enumerate(errors.to_pylist()) if e is not None)
        raise row_failure(ref.name, texts[first].as_py(), errors[first].as_py())
    path = os.path.join(session.workdir, f"lift-{uuid.uuid4().hex}.parquet")
    pq.write_table(pa.table({"__sutro_input": texts, "__sutro_answer": answers}), path)
    return path


def _check_required_fields(con: duckdb.DuckDBPyConnection, ref: FunctionRef, inputs: str) -> None:
    """A clear error, naming the row, when an input STRUCT lacks a field the Function requires."""
    if ref.spec is None:
        return
    for field in ref.spec.inputs:
        if not field.required:
            continue
        missing = con.sql(
            f"SELECT __sutro_input FROM ({inputs}) WHERE NOT json_exists(__sutro_input, {_json_path(field.name)}) "
            "LIMIT 1"
        ).fetchall()
        if missing:
            raise row_failure(ref.name, missing[0][0], f"Missing required input field(s): {field.name}.")


def _json_path(name: str) -> str:
    escaped = name.replace('"', '\\"').replace("'", "''")
    return f"'$.\"{escaped}\"'"
