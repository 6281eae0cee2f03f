"""The `sutro-sql` command line: warehouse jobs, ad-hoc queries, Functions, jobs and the server.

Built for unattended use: a scheduler runs `sutro-sql run enrich.sql` and reads
the exit code (see `ExitCode`), errors are one line on stderr (tracebacks
only with `--debug`), progress shows on a terminal only, and `--json` prints
one machine-readable summary. The API key is never printed.
"""

from __future__ import annotations

import bisect
import contextlib
import dataclasses
import json
import os
import re
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click

from . import environment
from .errors import ExitCode
from .errors import redact as redact_secrets

API_KEY_ENV = environment.API_KEY
SERVE_API_KEY_ENV = environment.SERVE_API_KEY


EXIT_CODE_MEANINGS = {
    ExitCode.OK: "everything succeeded",
    ExitCode.INTERNAL: "unexpected error in sutro-sql (rerun with --debug, report it)",
    ExitCode.USAGE: "bad command-line arguments",
    ExitCode.BAD_SQL: "SQL that does not parse, names a missing table/column, or is refused",
    ExitCode.BAD_INPUT: "bad Function input, unknown Function/job, invalid spec, variable or data",
    ExitCode.BACKEND_UNAVAILABLE: "backend unreachable, or still failing after retries",
    ExitCode.PARTIAL_FAILURE: "everything ran but some rows failed (on_error := 'null')",
    ExitCode.UNAUTHORIZED: "the deployment refused the API key",
    ExitCode.JOB_FAILED: "a batch job ended FAILED or CANCELLED",
    ExitCode.INTERRUPTED: "run stopped by SIGINT: running jobs handed back, a re-run resumes them",
    ExitCode.TERMINATED: "run stopped by SIGTERM (e.g. a scheduler timeout): same as 130",
}
EXIT_CODE_HELP = "\b\nExit codes:\n" + "\n".join(
    f"  {code.value}  {meaning}" for code, meaning in EXIT_CODE_MEANINGS.items()
)


class VariableError(Exception):
    """A `${name}` in a script that cannot be substituted safely."""


# ---------------------------------------------------------------------------
# errors -> one line and an exit code


def exit_code_for(exc: BaseException) -> ExitCode:
    """Map sutro-sql errors, DuckDB errors and UDF errors (which DuckDB wraps as text) to an exit code."""
    import duckdb

    from .errors import SutroSQLError

    if isinstance(exc, duckdb.Error):
        wrapped = _wrapped_udf_error(str(exc))
        if wrapped is not None:
            return wrapped.exit_code
        if isinstance(exc, duckdb.ParserException | duckdb.CatalogException | duckdb.BinderException):
            return ExitCode.BAD_SQL
        return ExitCode.BAD_INPUT  # conversion, constraint, I/O: the data or a file is wrong
    if isinstance(exc, SutroSQLError):
        return exc.exit_code
    if isinstance(exc, VariableError | OSError):
        return ExitCode.BAD_INPUT
    return ExitCode.INTERNAL


_UDF_ERROR = re.compile(r"Python exception occurred while executing the UDF: (\w+): ")


def _wrapped_udf_error(message: str) -> type | None:
    """DuckDB turns an exception raised in a Python UDF into text; recover its sutro-sql class."""
    from . import errors

    match = _UDF_ERROR.search(message)
    cls = getattr(errors, match.group(1), None) if match else None
    return cls if isinstance(cls, type) and issubclass(cls, errors.SutroSQLError) else None


def error_line(exc: BaseException) -> str:
    """One clear line: DuckDB's first line (without its UDF wrapper), or the error's own message."""
    text = (str(exc).strip() or type(exc).__name__).splitlines()[0]
    match = _UDF_ERROR.search(text)
    if match:
        text = text[match.end() :]
    if exit_code_for(exc) is ExitCode.INTERNAL:
        return f"internal error: {type(exc).__name__}: {text} (rerun with --debug for the traceback)"
    return text


def redact(text: str, *secrets: str | None) -> str:
    """Remove API keys (given, or from the environment) from text that is about to be printed."""
    candidates = (*secrets, *environment.secrets())
    return redact_secrets(text, *(secret for secret in candidates if secret and len(secret) >= 4))


class SutroGroup(click.Group):
    """Turns any error escaping a command into `error: ...` on stderr and its exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.ClickException, click.exceptions.Abort):
            raise
        except Exception as exc:
            state = ctx.find_object(CliState)
            if state is not None and state.debug:
                raise
            click.echo(redact(f"error: {error_line(exc)}", state and state.api_key), err=True)
            ctx.exit(exit_code_for(exc))


# ---------------------------------------------------------------------------
# shared state: global options and the backend


@dataclasses.dataclass
class CliState:
    home: str | None
    api_url: str | None
    api_key: str | None = dataclasses.field(repr=False)
    debug: bool
    quiet: bool
    _backend: Any = None

    def backend(self, *, workers: bool = True) -> Any:
        """The backend of the global options (remote if an API URL is set, else the local home).
        Commands that only read pass `workers=False`, so they never run other processes' jobs."""
        if self._backend is None:
            from .backends import open_backend

            self._backend = open_backend(
                home=self.home, api_url=self.api_url, api_key=self.api_key, start_workers=workers
            )
        return self._backend

    def progress(self) -> bool | None:
        """None lets the progress bar decide (on a TTY only); --quiet turns it off."""
        return False if self.quiet else None

    def close(self) -> None:
        if self._backend is not None:
            self._backend.close()


pass_state = click.make_pass_decorator(CliState)


@click.group(
    cls=SutroGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog=EXIT_CODE_HELP,
)
@click.option(
    "--home",
    type=click.Path(file_okay=False),
    envvar="SUTRO_SQL_HOME",
    help="Local deployment home (Function specs, jobs, answer cache). Default ./.sutro.",
)
@click.option("--api-url", envvar="SUTRO_API_URL", help="A Sutro deployment's URL (env SUTRO_API_URL). Default: local.")
@click.option(
    "--api-key",
    envvar=API_KEY_ENV,
    show_default=False,
    help=f"API key for --api-url; prefer the env var {API_KEY_ENV} so it stays off the command line.",
)
@click.option("--debug", is_flag=True, help="Show tracebacks on errors.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars or summaries; errors still go to stderr.")
@click.version_option(package_name="sutro-sql")
@click.pass_context
def cli(
    ctx: click.Context, home: str | None, api_url: str | None, api_key: str | None, debug: bool, quiet: bool
) -> None:
    """Run Sutro Functions (classifiers, judges, extractors) from SQL on DuckDB.

    \b
    Examples:
      sutro-sql demo
      sutro-sql run enrich.sql --db warehouse.duckdb --var landing=./landing
      sutro-sql query "SELECT sutro_run('ticket-triage', {'subject': 'Refund', 'body': 'Charged twice'}).response"
      sutro-sql functions list
      sutro-sql jobs list
    """
    state = CliState(home=home, api_url=api_url, api_key=api_key, debug=debug, quiet=quiet)
    ctx.obj = state
    ctx.call_on_close(state.close)


# ---------------------------------------------------------------------------
# run: multi-statement scripts


VARIABLE = re.compile(r"\$\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}")


def substitute_variables(script: str, variables: dict[str, str]) -> str:
    """Replace each `${name}` outside quoted strings and comments with the value as a SQL string literal.

    The value is quoted ('...', quotes doubled), so it can never change the
    statement's structure; cast it in SQL when you need a type (`${day}::DATE`).
    Positions come from DuckDB's own tokenizer. A `${name}` inside a quoted
    string is refused rather than guessed at; `${name}` in a comment is left as is.
    """
    import duckdb

    tokens = duckdb.tokenize(script)
    starts = [offset for offset, _ in tokens]
    pieces: list[str] = []
    position = 0
    for match in VARIABLE.finditer(script):
        index = _token_index(starts, match.start())
        token_type = tokens[index][1] if index >= 0 else None
        token_text = script[starts[index] : match.start()] if index >= 0 else ""
        if token_type == duckdb.token_type.comment:
            continue
        line = script.count("\n", 0, match.start()) + 1
        if token_type == duckdb.token_type.string_const or token_text.startswith('"'):
            raise VariableError(
                f"line {line}: {match.group(0)} is inside a quoted string; variables become SQL literals, "
                f"so use them outside quotes (e.g. 'prefix' || {match.group(0)}, or a table built from them)"
            )
        name = match.group(1)
        if name not in variables:
            raise VariableError(f"line {line}: no value for {match.group(0)}; pass --var {name}=VALUE")
        pieces.append(script[position : match.start()])
        pieces.append("'" + variables[name].replace("'", "''") + "'")
        position = match.end()
    pieces.append(script[position:])
    return "".join(pieces)


def _token_index(starts: list[int], offset: int) -> int:
    """Index of the token whose span contains `offset` (-1 before the first token)."""
    return bisect.bisect_right(starts, offset) - 1


def parse_variables(pairs: tuple[str, ...]) -> dict[str, str]:
    variables = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name.strip()):
            raise click.BadParameter(f"expected NAME=VALUE, got {pair!r}", param_hint="--var")
        variables[name.strip()] = value
    return variables


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


def session_stats(con: Any) -> dict[str, Any]:
    from .sql_layer import session_for

    return dataclasses.asdict(session_for(con).stats)


def open_database(state: CliState, db: str | None) -> Any:
    """A DuckDB connection (a file, or in memory) with the Functions registered on the backend."""
    from .sql_layer import connect

    return connect(db or ":memory:", backend=state.backend(), progress=state.progress())


@cli.command(epilog=EXIT_CODE_HELP)
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
    _exit(int(summary.exit_code))


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


@contextlib.contextmanager
def handing_back_work_on_signal(on_signal: Callable[[int], None]) -> Iterator[None]:
    """Call `on_signal(signum)` on a watcher thread when SIGTERM or SIGINT arrives while the block runs.

    The main thread may sit inside DuckDB for minutes (waiting on a batch job)
    and would never run a Python signal handler; so the signals get a no-op
    handler (so they no longer kill the process) and CPython's wakeup fd hands
    their numbers to the watcher thread. Signals the process ignores stay ignored.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    reader, writer = socket.socketpair()
    writer.setblocking(False)
    watched = [s for s in (signal.SIGTERM, signal.SIGINT) if signal.getsignal(s) is not signal.SIG_IGN]
    previous_handlers = {s: signal.signal(s, lambda *_: None) for s in watched}
    previous_fd = signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)

    def watch() -> None:
        with reader:
            received = reader.recv(1)
        if received and received[0] in watched:
            on_signal(received[0])

    threading.Thread(target=watch, name="sutro-sql-signals", daemon=True).start()
    try:
        yield
    finally:
        signal.set_wakeup_fd(previous_fd)
        for signum, handler in previous_handlers.items():
            signal.signal(signum, handler)
        writer.send(b"\0")  # not a signal: the watcher returns
        writer.close()


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


def execute(con: Any, query: str) -> Any:
    """Run one statement through `sutro_sql.sql` (subquery form, TEMP tables) and fetch its rows as Arrow."""
    from .sql_layer import sql

    result = sql(con, query)
    return None if result is None else result.fetch_arrow_table()


def returns_rows(statement: Any) -> bool:
    """SELECT-like statements print their rows; DDL and DML (whose result is a count) do not."""
    return statement.type.name in ("SELECT", "EXPLAIN", "PRAGMA", "CALL")


# ---------------------------------------------------------------------------
# query: one statement, results in a format


FORMATS = ("table", "csv", "json", "parquet")


@cli.command(epilog=EXIT_CODE_HELP)
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
        view.add_row(*(Text(_cell(value)) for value in row))
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


def _cell(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, dict | list):
        return json.dumps(value, default=str, ensure_ascii=False)
    return str(value)


# ---------------------------------------------------------------------------
# functions


@cli.group()
def functions() -> None:
    """List, show, run and check Functions.

    \b
    Examples:
      sutro-sql functions list
      sutro-sql functions show ticket-triage
      sutro-sql functions run ticket-triage --input '{"subject": "Refund", "body": "Charged twice"}'
      sutro-sql functions check examples/functions
    """


@functions.command("list")
@pass_state
def functions_list(state: CliState) -> None:
    """List the Functions of the local deployment.

    \b
    Example:
      sutro-sql functions list
    """
    backend = state.backend(workers=False)
    if not hasattr(backend, "functions"):
        raise click.UsageError("listing Functions needs the local deployment; a remote one is called by name")
    rows = []
    for spec in sorted(backend.functions(), key=lambda spec: spec.name):
        outputs = list(spec.labels or {}) or list((spec.output or {}).get("properties", {}))
        rows.append([spec.name, spec.kind, ", ".join(spec.input_names), ", ".join(outputs), spec.engine, spec.revision])
    view = rich_table(["name", "kind", "inputs", "labels / fields", "engine", "revision"], rows)
    console().print(view)


@functions.command("show")
@click.argument("name")
@pass_state
def functions_show(state: CliState, name: str) -> None:
    """Print a Function's spec as YAML (with its revision).

    \b
    Example:
      sutro-sql functions show ticket-extractor
    """
    import yaml

    from .errors import NotFoundError

    spec = state.backend(workers=False).get_function_spec(name)
    if spec is None:
        raise NotFoundError(f"Function {name!r}: a remote deployment does not share its spec; call it by name")
    click.echo(f"# revision: {spec.revision}")
    click.echo(yaml.safe_dump(spec.model_dump(mode="json", exclude_defaults=True), sort_keys=False), nl=False)


@functions.command("run")
@click.argument("name")
@click.option(
    "--input", "input_text", required=True, metavar="JSON|@FILE", help="The input object, or @path to a JSON file."
)
@pass_state
def functions_run(state: CliState, name: str, input_text: str) -> None:
    """Run a Function once, in real time, and print its answer as JSON.

    \b
    Examples:
      sutro-sql functions run lead-qualifier --input '{"query": "Need 50 seats", "region": "NA"}'
      sutro-sql functions run ticket-extractor --input @ticket.json
    """
    from .errors import ValidationError

    if input_text.startswith("@"):
        input_text = Path(input_text[1:]).read_text(encoding="utf-8")
    try:
        data = json.loads(input_text)
    except json.JSONDecodeError as exc:
        raise ValidationError(f"--input is not valid JSON: {exc}") from None
    answer = state.backend().run_function(name, data)
    click.echo(json.dumps(answer, indent=2, default=str, ensure_ascii=False))


@functions.command("publish")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@pass_state
def functions_publish(state: CliState, paths: tuple[Path, ...]) -> None:
    """Validate spec files (or folders of them) and save them into the local deployment's home.

    \b
    Example:
      sutro-sql functions publish examples/functions
    """
    from .functions import load_spec_file, load_specs

    backend = state.backend(workers=False)
    if not hasattr(backend, "publish"):
        raise click.UsageError("publishing needs the local deployment; a remote deployment manages its own Functions")
    specs = [spec for path in paths for spec in (load_specs(path).values() if path.is_dir() else load_spec_file(path))]
    for spec in specs:
        published = backend.publish(spec)
        click.echo(f"published {published.name} (revision {published.revision}) to {backend.home}")


@functions.command("check")
@click.argument("directory", required=False, type=click.Path(exists=True, file_okay=False, path_type=Path))
@pass_state
def functions_check(state: CliState, directory: Path | None) -> None:
    """Validate every Function spec in DIRECTORY (default: <home>/functions).

    Each bad file is reported with the field at fault; exit code 4 if any.

    \b
    Example:
      sutro-sql functions check examples/functions
    """
    from .config import resolve_home
    from .errors import SpecError
    from .functions import SPEC_SUFFIXES, load_spec_file, load_specs

    folder = directory or resolve_home(state.home) / "functions"
    if not folder.is_dir():
        raise SpecError("no such folder", path=str(folder))
    problems = []
    checked = 0
    for path in sorted(p for p in folder.iterdir() if p.suffix in SPEC_SUFFIXES and p.is_file()):
        checked += 1
        try:
            for spec in load_spec_file(path):
                click.echo(f"ok   {path}: {spec.name} ({spec.kind}, revision {spec.revision})")
        except SpecError as exc:
            problems.append(str(exc))
    if not problems:
        try:
            load_specs(folder)  # cross-file checks: duplicate names
        except SpecError as exc:
            problems.append(str(exc))
    for problem in problems:
        click.echo(f"error: {problem}", err=True)
    click.echo(f"{checked} file(s) checked, {len(problems)} error(s)", err=True)
    if problems:
        _exit(ExitCode.BAD_INPUT)


# ---------------------------------------------------------------------------
# jobs


@cli.group()
def jobs() -> None:
    """List, inspect, fetch, cancel and attach to batch jobs.

    \b
    Examples:
      sutro-sql jobs list
      sutro-sql jobs status job-...
      sutro-sql jobs results job-... --output answers.parquet
      sutro-sql jobs attach job-...
    """


JOB_COLUMNS = (
    "job_id",
    "name",
    "model",
    "status",
    "num_rows",
    "rows_done",
    "rows_failed",
    "datetime_created",
    "job_cost",
)


@jobs.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the job objects as JSON.")
@pass_state
def jobs_list(state: CliState, as_json: bool) -> None:
    """List batch jobs, newest first.

    \b
    Example:
      sutro-sql jobs list --json
    """
    listed = state.backend(workers=False).list_jobs()
    if as_json:
        click.echo(json.dumps(listed, default=str))
        return
    view = rich_table(list(JOB_COLUMNS), [[job.get(column) for column in JOB_COLUMNS] for job in listed])
    console().print(view)


@jobs.command("status")
@click.argument("job_id")
@click.option("--json", "as_json", is_flag=True, help="Print the job object as JSON.")
@pass_state
def jobs_status(state: CliState, job_id: str, as_json: bool) -> None:
    """Show a job's status, progress, tokens and cost.

    \b
    Example:
      sutro-sql jobs status job-...
    """
    job = state.backend(workers=False).get_job(job_id)
    if as_json:
        click.echo(json.dumps(job, default=str))
        return
    for key, value in job.items():
        if value is not None:
            click.echo(f"{key}: {_cell(value)}")


@jobs.command("results")
@click.argument("job_id")
@click.option(
    "--output", "-o", type=click.Path(dir_okay=False, path_type=Path), help="Save to .parquet, .csv or .json."
)
@click.option("--format", "fmt", type=click.Choice(FORMATS), default=None, help="Default: from --output, else table.")
@click.option("--include-inputs", is_flag=True, help="Add the input rows (JSON) as a column.")
@pass_state
def jobs_results(state: CliState, job_id: str, output: Path | None, fmt: str | None, include_inputs: bool) -> None:
    """Fetch a finished job's results in input order, answers unpacked into columns
    (as the SDK's get_job_results does), with confidence_score.

    \b
    Example:
      sutro-sql jobs results job-... --output answers.parquet
    """
    from .client import Client

    fmt = output_format(fmt, output)
    frame = Client(backend=state.backend(workers=False)).get_job_results(job_id, include_inputs=include_inputs)
    write_table(frame.to_arrow(), fmt=fmt, output=output)


@jobs.command("cancel")
@click.argument("job_id")
@pass_state
def jobs_cancel(state: CliState, job_id: str) -> None:
    """Ask a job to stop.

    \b
    Example:
      sutro-sql jobs cancel job-...
    """
    backend = state.backend()
    backend.cancel_job(job_id)
    click.echo(f"{job_id}: {backend.get_job_status(job_id)}")


@jobs.command("attach")
@click.argument("job_id")
@pass_state
def jobs_attach(state: CliState, job_id: str) -> None:
    """Follow a job with a progress bar until it ends (exit 8 if it fails or is cancelled).

    \b
    Example:
      sutro-sql jobs attach job-...
    """
    from .client import Client

    job = Client(backend=state.backend()).wait_for_job(job_id, progress=state.progress())
    click.echo(f"{job_id}: {job['status']}, {job.get('num_rows') or 0:,} rows, {job.get('rows_failed') or 0:,} failed")
    if job.get("rows_failed"):
        _exit(ExitCode.PARTIAL_FAILURE)


# ---------------------------------------------------------------------------
# demo and serve


@cli.command()
@click.option(
    "--demo-home", type=click.Path(file_okay=False, path_type=Path), default=Path(".sutro-demo"), show_default=True
)
def demo(demo_home: Path) -> None:
    """Run the quickstart: example Functions on a small table, on the embedded engine (no keys, no network).

    \b
    Example:
      sutro-sql demo
    """
    import runpy

    quickstart = _repo_examples() / "quickstart.py"
    if not quickstart.exists():
        raise click.UsageError(f"the demo needs the repository's examples folder ({quickstart} not found)")
    runpy.run_path(str(quickstart))["main"](demo_home)


def _repo_examples() -> Path:
    return Path(__file__).resolve().parent.parent / "examples"


@cli.command()
@click.option(
    "--home", "serve_home", type=click.Path(file_okay=False), help="Home folder to serve (default: global --home)."
)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8787, show_default=True, type=int)
@click.option(
    "--api-key",
    "serve_api_key",
    envvar=SERVE_API_KEY_ENV,
    required=True,
    help=f"Key clients must send; prefer env {SERVE_API_KEY_ENV}.",
)
@click.option("--ssl-certfile", type=click.Path(dir_okay=False, exists=True))
@click.option("--ssl-keyfile", type=click.Path(dir_okay=False, exists=True))
@pass_state
def serve(
    state: CliState,
    serve_home: str | None,
    host: str,
    port: int,
    serve_api_key: str,
    ssl_certfile: str | None,
    ssl_keyfile: str | None,
) -> None:
    """Serve the local deployment over the v1 HTTP API (the official SDK works against it).

    \b
    Example:
      SUTRO_SQL_SERVE_API_KEY=change-me sutro-sql serve --home ./.sutro --port 8787
    """
    from .server import serve as serve_app

    serve_app(
        home=serve_home or state.home,
        host=host,
        port=port,
        api_key=serve_api_key,
        ssl_certfile=ssl_certfile,
        ssl_keyfile=ssl_keyfile,
    )


def _exit(code: int) -> None:
    click.get_current_context().exit(int(code))


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="sutro-sql")
