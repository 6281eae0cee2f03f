"""Quickstart: Sutro Functions in SQL on the embedded local deployment (no keys, no network).

Run it with `sutro-sql demo` (or `python -m sutro_sql.demo.quickstart`). It

1. publishes the example Functions (examples/functions/*.yaml, shipped as package data
   in sutro_sql/demo/functions) into a demo home,
2. opens an in-memory DuckDB with `sutro_run` and `sutro_batch` registered,
3. answers ten support tickets: `sutro_run` routes each ticket to a team,
   `sutro_batch` extracts order ids, amounts and sentiment in one batch job,
4. prints the answers and what it cost (calls, cache hits, tokens).

Run it twice: the second run is answered from the cache, with no engine calls.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path

import duckdb
from rich.console import Console
from rich.table import Table
from rich.text import Text

from sutro_sql.backends.local import LocalBackend
from sutro_sql.functions import load_specs
from sutro_sql.sql_layer import connect, session_for, sql

FUNCTIONS_DIR = Path(__file__).resolve().parent / "functions"

TICKETS = [
    (1, "Charged twice", "Order ORD-1042 was charged $49.99 twice. Please refund one charge."),
    (2, "App crashes on export", "Exporting a report to PDF crashes the app with error 500 every time."),
    (3, "Cannot log in", "I reset my password but still cannot log in to my account."),
    (4, "Dark mode", "It would be great to have a dark mode in the editor."),
    (5, "Invoice question", "Why is invoice INV-2231 for $120 higher than last month? Write to bo@example.com"),
    (6, "Lost my phone", "I lost my phone and cannot get my two-factor code. Urgent, I am locked out!"),
    (7, "Wrong totals", "The dashboard shows wrong totals since yesterday's update."),
    (8, "Slack alerts", "Could you add an integration that posts alerts to Slack?"),
    (9, "Refund not received", "I was promised a refund of $15 for ORD-877 two weeks ago and got nothing. Angry."),
    (10, "Thanks", "Thanks for fixing the sync bug so quickly, everything works now."),
]

ROUTE_SQL = """
SELECT id, subject, answer.response AS team, round(answer.confidence, 2) AS confidence
FROM (SELECT id, subject, sutro_run('ticket-triage', {'subject': subject, 'body': body}) AS answer FROM tickets)
ORDER BY id
"""

WHY_SQL = "SELECT sutro_run('ticket-triage', {'subject': subject, 'body': body}).rationale FROM tickets WHERE id = 1"

EXTRACT_SQL = """
SELECT id, order_id, amount, email, sentiment, urgent, round(confidence_score, 2) AS confidence
FROM sutro_batch('ticket-extractor', 'SELECT id, body FROM tickets', id_column := 'id')
ORDER BY id
"""


def main(home: str | Path = ".sutro-demo") -> None:
    """Run the quickstart against the demo home `home` (created if missing)."""
    console = Console(soft_wrap=True)
    started = time.monotonic()
    backend = LocalBackend(home)
    try:
        for spec in load_specs(FUNCTIONS_DIR).values():
            backend.publish(spec)
        con = connect(backend=backend)
        con.execute("CREATE TABLE tickets (id INTEGER, subject VARCHAR, body VARCHAR)")
        con.executemany("INSERT INTO tickets VALUES (?, ?, ?)", TICKETS)

        console.print(
            f"[bold]Demo home:[/bold] {backend.home}  (Functions: {', '.join(s.name for s in backend.functions())})"
        )
        show(console, "sutro_run: route each ticket to a team (ticket-triage)", ROUTE_SQL, con)
        show(console, "sutro_batch: extract facts in one batch job (ticket-extractor)", EXTRACT_SQL, con)
        why = sql(con, WHY_SQL).fetchall()[0][0]
        console.print(Text.assemble(("Why ticket 1 went to its team: ", "bold"), why))

        stats = dataclasses.asdict(session_for(con).stats)
        console.print(
            f"{stats['rows_answered']} answers, {stats['calls']} engine calls, {stats['cache_hits']} cache hits, "
            f"{stats['jobs_submitted']} job(s) submitted, {stats['jobs_reattached']} re-attached, "
            f"{stats['input_tokens'] + stats['output_tokens']:,} tokens, ${stats['cost_usd']:.4f}, "
            f"{time.monotonic() - started:.1f}s."
        )
        if stats["calls"] == 0 and stats["jobs_submitted"] == 0:
            source = "the answer cache and the finished job" if stats["jobs_reattached"] else "the answer cache"
            console.print(f"Everything came from {source}: nothing was computed again.")
        else:
            console.print("Run it again: the answers come from the cache, with no engine calls.")
        con.close()
    finally:
        backend.close()


def show(console: Console, title: str, query: str, con: duckdb.DuckDBPyConnection) -> None:
    """Run `query` and print its rows as a table (values as plain text, never as markup)."""
    result = sql(con, query)
    table = Table(title=title, title_justify="left", header_style="bold")
    for name in result.columns:
        table.add_column(name, overflow="fold")
    for row in result.fetchall():
        table.add_row(*(Text("" if value is None else str(value)) for value in row))
    console.print(table)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else ".sutro-demo")
