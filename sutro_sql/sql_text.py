"""SQL text built from names and values (quoting, the JSON object of a row's fields), and the
in-memory DuckDB that converts Arrow chunks with it.

The few places that write SQL around user-given names (the `sutro_batch` spool, the local
deployment's batch conversion) quote them here, so one escaping rule holds for all.
"""

from __future__ import annotations

import threading

import duckdb
import pyarrow as pa


def quote(identifier: str) -> str:
    """A column name as a DuckDB identifier."""
    return '"' + identifier.replace('"', '""') + '"'


def literal(text: str) -> str:
    """Text as a DuckDB string literal."""
    return "'" + text.replace("'", "''") + "'"


def json_object(fields: list[tuple[str, str]]) -> str:
    """SQL for the JSON text of an object with these (key, SQL expression) fields, in order:
    DuckDB's `to_json` of a STRUCT, what `sutro_run({'a': a, ...})` is given."""
    if not fields:
        return "'{}'"
    return "CAST(to_json({" + ", ".join(f"{literal(key)}: {value}" for key, value in fields) + "}) AS VARCHAR)"


_DATABASE: duckdb.DuckDBPyConnection | None = None
_DATABASE_LOCK = threading.Lock()


def query_arrow(sql: str, **tables: pa.Table) -> pa.Table:
    """Run `sql` over Arrow `tables` (by name) on a process-wide in-memory DuckDB, through a
    cursor of its own (safe from any thread): vectorized conversions such as `to_json` of a
    whole chunk. Opening a database per call would cost ~15 ms, a cursor costs microseconds."""
    global _DATABASE
    with _DATABASE_LOCK:
        if _DATABASE is None:
            _DATABASE = duckdb.connect()
        cursor = _DATABASE.cursor()
    with cursor:
        for name, table in tables.items():
            cursor.register(name, table)
        return cursor.sql(sql).to_arrow_table()
