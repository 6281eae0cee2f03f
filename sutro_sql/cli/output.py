"""How results reach the user: a rich table on a terminal, or CSV, JSON or Parquet."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

FORMATS = ("table", "csv", "json", "parquet")


def output_format(fmt: str | None, output: Path | None) -> str:
    """The format asked for, else the one --output's suffix names, else csv for a file and table for a terminal."""
    if fmt is None:
        suffix = output.suffix.lstrip(".").lower() if output else ""
        fmt = suffix if suffix in FORMATS else ("csv" if output else "table")
    if fmt == "parquet" and output is None:
        raise click.UsageError("--format parquet needs --output FILE")
    return fmt


def write_table(table: Any, *, fmt: str | None, output: Path | None) -> None:
    """Write an Arrow table as a rich table, CSV, JSON (an array of objects) or Parquet."""
    if table is None:
        return
    fmt = output_format(fmt, output)
    if fmt == "table":
        _render_table(table, output)
        return
    import polars as pl

    frame = pl.from_arrow(table)
    if fmt == "parquet":
        frame.write_parquet(output)
    elif fmt == "csv":
        frame = frame.with_columns(pl.col(c).map_elements(_json_text, return_dtype=pl.String) for c in _nested(frame))
        _write_text(frame.write_csv(), output)
    else:
        _write_text(json.dumps(frame.to_dicts(), default=str, ensure_ascii=False), output)


def _nested(frame: Any) -> list[str]:
    return [name for name, dtype in frame.schema.items() if dtype.is_nested()]


def _json_text(value: Any) -> str:
    return json.dumps(value.to_list() if hasattr(value, "to_list") else value, default=str, ensure_ascii=False)


def _write_text(text: str, output: Path | None) -> None:
    if output is None:
        click.echo(text, nl=not text.endswith("\n"))
    else:
        output.write_text(text if text.endswith("\n") else text + "\n", encoding="utf-8")


def console(file: Any = None) -> Any:
    """A rich console; off a terminal (pipes, files, logs) lines are never wrapped or cut."""
    from rich.console import Console

    target = file or sys.stdout
    return Console(file=file, width=None if target.isatty() else 100_000, soft_wrap=False)


def rich_table(columns: list[str], rows: list[list[Any]]) -> Any:
    """A rich table of plain values; cells are Text, so data is never read as rich markup."""
    from rich.table import Table
    from rich.text import Text

    view = Table(header_style="bold")
    for name in columns:
        view.add_column(name, overflow="fold")
    for row in rows:
        view.add_row(*(Text(cell_text(value)) for value in row))
    return view


def _render_table(table: Any, output: Path | None, *, limit: int = 50) -> None:
    view = rich_table(table.column_names, [list(row.values()) for row in table.slice(0, limit).to_pylist()])
    if output is None:
        console().print(view)
        if table.num_rows > limit:
            console().print(f"({table.num_rows:,} rows, first {limit} shown; use --format csv|json|parquet for all)")
    else:
        with output.open("w", encoding="utf-8") as handle:
            console(handle).print(view)


def cell_text(value: Any) -> str:
    """A value as one table cell: NULL, JSON for objects and lists, else its text."""
    if value is None:
        return "NULL"
    if isinstance(value, dict | list):
        return json.dumps(value, default=str, ensure_ascii=False)
    return str(value)
