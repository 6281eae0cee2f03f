"""The `sutro-sql` command line: warehouse jobs, ad-hoc queries, Functions, jobs and the server.

Built for unattended use: a scheduler runs `sutro-sql run enrich.sql` and reads
the exit code (see `ExitCode`), errors are one line on stderr (tracebacks
only with `--debug`), progress shows on a terminal only, and `--json` prints
one machine-readable summary. The API key is never printed.

This module holds the group and its global options; each command lives in its own module.
"""

from __future__ import annotations

from typing import Any

import click

from .. import environment
from .demo import demo
from .exit_codes import EXIT_CODE_HELP, error_line, exit_code_for, redact
from .functions import functions
from .jobs import jobs
from .query import query
from .scripts import run
from .serve import serve
from .state import CliState


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


@click.group(
    cls=SutroGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog=EXIT_CODE_HELP,
)
@click.option(
    "--home",
    type=click.Path(file_okay=False),
    envvar=environment.HOME,
    help="Local deployment home (Function specs, jobs, answer cache). Default ./.sutro.",
)
@click.option(
    "--api-url", envvar=environment.API_URL, help="A Sutro deployment's URL (env SUTRO_API_URL). Default: local."
)
@click.option(
    "--api-key",
    envvar=environment.API_KEY,
    show_default=False,
    help=f"API key for --api-url; prefer the env var {environment.API_KEY} so it stays off the command line.",
)
@click.option(
    "--max-concurrency",
    type=click.IntRange(min=1),
    default=8,
    show_default=True,
    help="Real-time Function calls in flight at once (sutro_run), also the deployment connection's limit.",
)
@click.option(
    "--cache-mode",
    type=click.Choice(["record", "replay"]),
    envvar=environment.CACHE_MODE,
    default=None,
    help="record (default): answer from the cache, compute and cache the rest; replay: answer from the "
    "cache only, a miss is an error (env SUTRO_SQL_CACHE).",
)
@click.option(
    "--auto-batch/--no-auto-batch",
    envvar=environment.AUTO_BATCH,
    default=True,
    show_default=True,
    help="Turn a sutro_run query over more than --auto-batch-threshold distinct inputs into one batch job "
    f"(env {environment.AUTO_BATCH}=0 turns it off).",
)
@click.option(
    "--auto-batch-threshold",
    type=click.IntRange(min=0),
    default=None,
    help="Distinct sutro_run inputs above which --auto-batch submits one batch job instead of real-time calls "
    "(default: the SQL session's, 1000).",
)
@click.option("--debug", is_flag=True, help="Show tracebacks on errors.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars or summaries; errors still go to stderr.")
@click.version_option(package_name="sutro-sql")
@click.pass_context
def cli(
    ctx: click.Context,
    home: str | None,
    api_url: str | None,
    api_key: str | None,
    max_concurrency: int,
    cache_mode: str | None,
    auto_batch: bool,
    auto_batch_threshold: int | None,
    debug: bool,
    quiet: bool,
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
    state = CliState(
        home=home,
        api_url=api_url,
        api_key=api_key,
        max_concurrency=max_concurrency,
        cache_mode=cache_mode,
        auto_batch=auto_batch,
        auto_batch_threshold=auto_batch_threshold,
        debug=debug,
        quiet=quiet,
    )
    ctx.obj = state
    ctx.call_on_close(state.close)


for _command in (run, query, functions, jobs, demo, serve):
    cli.add_command(_command)


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="sutro-sql")
