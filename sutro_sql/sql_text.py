"""SQL text built from names and values: quoting, and the JSON object of a row's fields.

The few places that write SQL around user-given names (the `sutro_batch` spool, the local
deployment's batch conversion) quote them here, so one escaping rule holds for all.
"""

from __future__ import annotations


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
