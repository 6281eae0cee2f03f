"""`sutro-sql query`: run SQL, print or save the last statement's result."""

from __future__ import annotations

from pathlib import Path

import click

from .database import execute, open_database
from .exit_codes import EXIT_CODE_HELP
from .output import FORMATS, output_format, write_table
from .state import CliState, pass_state


@click.command(epilog=EXIT_CODE_HELP)
@click.argument("query_text", metavar="SQL")
@click.option("--db", type=click.Path(dir_okay=False), help="DuckDB database file (default: in memory).")
@click.option(
    "--format", "fmt", type=click.Choice(FORMATS), default=None, help="Default: table, or from --output's suffix."
)
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), help="Write the result to this file.")
@pass_state
def query(state: CliState, query_text: str, db: str | None, fmt: str | None, output: Path | None) -> None:
    """Run SQL and print or save the result of its last statement.

    Several statements separated by ';' all run, in order (e.g. a CREATE TEMP TABLE, then the
    SELECT that uses it); only the last one's result is printed. For scripts with a summary
    and exit codes per failure kind, use `sutro-sql run`.

    \b
    Examples:
      sutro-sql query "SELECT sutro_run('lead-qualifier', {'query': 'Need 50 seats', 'region': 'NA'}).*"
      sutro-sql query "SELECT * FROM tickets_enriched" --db warehouse.duckdb --format csv -o out.csv
    """
    fmt = output_format(fmt, output)  # refuse a bad combination before running anything
    con = open_database(state, db)
    try:
        table = None
        for statement in con.extract_statements(query_text):
            table = execute(con, statement.query)
    finally:
        con.close()
    write_table(table, fmt=fmt, output=output)
