"""`sutro-sql jobs`: list, inspect, fetch, cancel and follow batch jobs."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ..errors import ExitCode
from .output import FORMATS, cell_text, console, output_format, rich_table, write_table
from .state import CliState, exit_with, pass_state


@click.group()
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
    listed = state.client(workers=False).list_jobs()
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
    job = state.client(workers=False).get_job(job_id)
    if as_json:
        click.echo(json.dumps(job, default=str))
        return
    for key, value in job.items():
        if value is not None:
            click.echo(f"{key}: {cell_text(value)}")


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
    fmt = output_format(fmt, output)
    frame = state.client(workers=False).get_job_results(job_id, include_inputs=include_inputs)
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
    client = state.client()
    client.cancel_job(job_id)
    click.echo(f"{job_id}: {client.get_job_status(job_id)}")


@jobs.command("attach")
@click.argument("job_id")
@pass_state
def jobs_attach(state: CliState, job_id: str) -> None:
    """Follow a job with a progress bar until it ends (exit 8 if it fails or is cancelled).

    \b
    Example:
      sutro-sql jobs attach job-...
    """
    job = state.client().wait_for_job(job_id, progress=state.progress())
    click.echo(f"{job_id}: {job['status']}, {job.get('num_rows') or 0:,} rows, {job.get('rows_failed') or 0:,} failed")
    if job.get("rows_failed"):
        exit_with(ExitCode.PARTIAL_FAILURE)
