"""`sutro-sql run`: a multi-statement SQL script, run unattended, with a summary and an exit code."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

import click

from ..errors import ExitCode
from .database import execute, open_database, returns_rows, session_stats
from .exit_codes import EXIT_CODE_HELP, error_line, exit_code_for, redact
from .output import write_table
from .signals import handing_back_work_on_signal
from .state import CliState, exit_with, pass_state
from .variables import parse_variables, substitute_variables


@dataclasses.dataclass
class RunSummary:
    """What `run` reports: the script's statements and the SQL session's counters."""

    script: str
    database: str
    status: str = "ok"
    exit_code: int = 0
    error: str | None = None
    statements: int = 0
    statements_run: int = 0
    failed_statement: int | None = None
    seconds: float = 0.0
    stats: dict[str, Any] = dataclasses.field(default_factory=dict)

    def fail(self, exc: BaseException, api_key: str | None) -> None:
        self.status, self.exit_code, self.error = "error", exit_code_for(exc), redact(error_line(exc), api_key)

    def as_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        stats = data.pop("stats")
        return {**data, **stats}

    def text(self) -> str:
        s = self.stats
        lines = [
            f"{self.status.upper()}: {self.statements_run}/{self.statements} statements in {self.seconds:.1f}s",
            f"  rows answered {s.get('rows_answered', 0):,}, rows failed {s.get('rows_failed', 0):,}",
            f"  calls {s.get('calls', 0):,}, cache hits {s.get('cache_hits', 0):,}, "
            f"jobs submitted {s.get('jobs_submitted', 0):,}, re-attached {s.get('jobs_reattached', 0):,}",
            f"  tokens in {s.get('input_tokens', 0):,} out {s.get('output_tokens', 0):,}, "
            f"cost ${s.get('cost_usd', 0.0):.4f}",
        ]
        return "\n".join(lines)


@click.command(epilog=EXIT_CODE_HELP)
@click.argument("script", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--db", type=click.Path(dir_okay=False), help="DuckDB database file (default: in memory).")
@click.option("--var", "var_pairs", multiple=True, metavar="NAME=VALUE", help="Value for ${NAME} (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as one JSON object on stdout.")
@pass_state
def run(state: CliState, script: Path, db: str | None, var_pairs: tuple[str, ...], as_json: bool) -> None:
    """Run a multi-statement SQL SCRIPT with sutro_run/sutro_batch available.

    Statements run in order, each committed when it ends, so a job killed
    midway and run again picks up where it stopped (sutro_batch re-attaches to
    its job); SIGTERM or Ctrl-C hands running jobs back first (exit 143/130).
    SELECT results print as tables. `${name}` in the script is
    replaced by the --var value as a quoted SQL string literal (cast it:
    `${day}::DATE`); variables inside quoted strings are refused.

    \b
    Example:
      sutro-sql run enrich.sql --db warehouse.duckdb --var landing=./landing --json
    """
    summary = RunSummary(script=str(script), database=db or ":memory:")
    started = time.monotonic()
    con = None
    try:
        with handing_back_work_on_signal(lambda signum: stop_on_signal(signum, state, summary, con, started, as_json)):
            text = substitute_variables(script.read_text(encoding="utf-8"), parse_variables(var_pairs))
            con = open_database(state, db)
            statements = con.extract_statements(text)
            summary.statements = len(statements)
            for number, statement in enumerate(statements, start=1):
                summary.failed_statement = number
                table = execute(con, statement.query)
                if returns_rows(statement) and not (state.quiet or as_json):
                    write_table(table, fmt="table", output=None)
                summary.statements_run = number
            summary.failed_statement = None
    except click.BadParameter:
        raise
    except Exception as exc:
        if state.debug:
            raise
        summary.fail(exc, state.api_key)
    finally:
        summary.seconds = round(time.monotonic() - started, 3)
        if con is not None:
            summary.stats = session_stats(con)
            con.close()
    if summary.exit_code == 0 and summary.stats.get("rows_failed", 0) > 0:
        summary.status, summary.exit_code = "partial_failure", ExitCode.PARTIAL_FAILURE
    report(summary, quiet=state.quiet, as_json=as_json)
    exit_with(int(summary.exit_code))


#: Held while a run's outcome is printed; a signal-stopped run keeps it until the process exits,
#: so the main thread (failing as its backend closes) cannot print a second outcome.
_REPORTING = threading.Lock()


def report(summary: RunSummary, *, quiet: bool, as_json: bool) -> None:
    """The error line (stderr), then the summary: JSON on stdout, or text on stderr unless quiet."""
    with _REPORTING:
        _print_report(summary, quiet=quiet, as_json=as_json)


def _print_report(summary: RunSummary, *, quiet: bool, as_json: bool) -> None:
    sys.stdout.flush()  # keep the results before the summary in a log that captures both streams
    if summary.error:
        where = f"statement {summary.failed_statement}: " if summary.failed_statement else ""
        click.echo(f"error: {where}{summary.error}", err=True)
    if as_json:
        click.echo(json.dumps(summary.as_dict(), default=str))
    elif not quiet:
        click.echo(summary.text(), err=True)
    sys.stdout.flush()


def stop_on_signal(signum: int, state: CliState, summary: RunSummary, con: Any, started: float, as_json: bool) -> None:
    """Stop this process's batch workers so they hand their jobs back (a re-run resumes at once,
    instead of waiting for the lease to lapse), report, and exit 128 + the signal number.
    Uncommitted statements are rolled back, as after a crash."""
    _REPORTING.acquire()  # never released: the process ends here
    stats = session_stats(con) if con is not None else {}
    state.close()
    stopped = dataclasses.replace(
        summary,
        status="interrupted",
        exit_code=128 + signum,
        error=f"interrupted by {signal.Signals(signum).name}: running jobs were handed back; run again to resume",
        seconds=round(time.monotonic() - started, 3),
        stats=stats,
    )
    _print_report(stopped, quiet=state.quiet, as_json=as_json)
    os._exit(stopped.exit_code)
