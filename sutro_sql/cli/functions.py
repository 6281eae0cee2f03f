"""`sutro-sql functions`: list, show, run, publish and check Function specs."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ..errors import ExitCode
from .output import console, rich_table
from .state import CliState, exit_with, pass_state


@click.group()
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
    from ..backends.base import ListsFunctions

    backend = state.client(workers=False).backend
    if not isinstance(backend, ListsFunctions):
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

    from ..errors import NotFoundError

    spec = state.client(workers=False).function(name).spec
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
    """Run a Function once, in real time, and print its answer as JSON, with its `provenance`
    (function, revision, engine, job_id, source: engine or cache, escalated).

    \b
    Examples:
      sutro-sql functions run lead-qualifier --input '{"query": "Need 50 seats", "region": "NA"}'
      sutro-sql functions run ticket-extractor --input @ticket.json
    """
    from ..errors import ValidationError

    if input_text.startswith("@"):
        input_text = Path(input_text[1:]).read_text(encoding="utf-8")
    try:
        data = json.loads(input_text)
    except json.JSONDecodeError as exc:
        raise ValidationError(f"--input is not valid JSON: {exc}") from None
    answer = state.client().run_function(name, data)
    shown = {**answer, "provenance": answer.provenance}  # where the answer came from: engine or cache
    click.echo(json.dumps(shown, indent=2, default=str, ensure_ascii=False))


@functions.command("publish")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@pass_state
def functions_publish(state: CliState, paths: tuple[Path, ...]) -> None:
    """Validate spec files (or folders of them) and save them into the local deployment's home.

    \b
    Example:
      sutro-sql functions publish examples/functions
    """
    from ..backends.base import PublishesFunctions
    from ..functions import load_spec_file, load_specs

    backend = state.client(workers=False).backend
    if not isinstance(backend, PublishesFunctions):
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
    from ..config import resolve_home
    from ..errors import SpecError
    from ..functions import load_spec_folder

    folder = directory or resolve_home(state.home) / "functions"
    if not folder.is_dir():
        raise SpecError("no such folder", path=str(folder))
    loaded = load_spec_folder(folder)  # every file, then cross-file checks (duplicate names)
    for read in loaded.files:
        for spec in read.specs:
            click.echo(f"ok   {read.path}: {spec.name} ({spec.kind}, revision {spec.revision})")
    for problem in loaded.errors:
        click.echo(f"error: {problem}", err=True)
    click.echo(f"{len(loaded.files)} file(s) checked, {len(loaded.errors)} error(s)", err=True)
    if loaded.errors:
        exit_with(ExitCode.BAD_INPUT)
