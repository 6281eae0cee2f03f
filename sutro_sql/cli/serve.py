"""`sutro-sql serve`: the local deployment over the v1 HTTP API.

The key clients must send comes from the environment or a file: a command-line argument is
readable by every local user (`ps`, /proc/PID/cmdline), so `--api-key` still works but warns.
"""

from __future__ import annotations

from pathlib import Path

import click
from click.core import ParameterSource

from .. import environment
from .state import CliState, pass_state

KEY_ON_COMMAND_LINE_WARNING = (
    "warning: --api-key on the command line is visible to every local user (ps, /proc/PID/cmdline); "
    f"set {environment.SERVE_API_KEY} or use --api-key-file instead"
)


@click.command()
@click.option(
    "--home", "serve_home", type=click.Path(file_okay=False), help="Home folder to serve (default: global --home)."
)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8787, show_default=True, type=int)
@click.option(
    "--api-key",
    "serve_api_key",
    envvar=environment.SERVE_API_KEY,
    help=f"Key clients must send; prefer env {environment.SERVE_API_KEY} or --api-key-file "
    "(a command-line value is visible to other local users).",
)
@click.option(
    "--api-key-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Read the key clients must send from this file (surrounding whitespace and newline dropped).",
)
@click.option(
    "--allow-local-urls",
    is_flag=True,
    help="Let batch jobs read URL inputs from loopback and private addresses (refused by default).",
)
@click.option(
    "--max-body-mb",
    type=click.IntRange(min=1),
    default=100,
    show_default=True,
    help="Largest request body accepted, in MiB; bigger ones get a JSON 413 (send big inputs as URLs).",
)
@click.option("--ssl-certfile", type=click.Path(dir_okay=False, exists=True))
@click.option("--ssl-keyfile", type=click.Path(dir_okay=False, exists=True))
@pass_state
@click.pass_context
def serve(
    ctx: click.Context,
    state: CliState,
    serve_home: str | None,
    host: str,
    port: int,
    serve_api_key: str | None,
    api_key_file: Path | None,
    allow_local_urls: bool,
    max_body_mb: int,
    ssl_certfile: str | None,
    ssl_keyfile: str | None,
) -> None:
    """Serve the local deployment over the v1 HTTP API (the official SDK works against it).

    \b
    Examples:
      SUTRO_SQL_SERVE_API_KEY=change-me sutro-sql serve --home ./.sutro --port 8787
      sutro-sql serve --home ./.sutro --api-key-file /run/secrets/sutro-serve-key
    """
    from ..server import serve as serve_app

    key_on_command_line = ctx.get_parameter_source("serve_api_key") is ParameterSource.COMMANDLINE
    if api_key_file is not None:
        if key_on_command_line:
            raise click.UsageError("give --api-key or --api-key-file, not both")
        serve_api_key = read_key_file(api_key_file)
    elif key_on_command_line:
        click.echo(KEY_ON_COMMAND_LINE_WARNING, err=True)
    if not serve_api_key:
        raise click.UsageError(
            f"serve needs the key clients must send: set {environment.SERVE_API_KEY}, "
            "or pass --api-key-file PATH (or --api-key KEY)"
        )
    serve_app(
        home=serve_home or state.home,
        host=host,
        port=port,
        api_key=serve_api_key,
        ssl_certfile=ssl_certfile,
        ssl_keyfile=ssl_keyfile,
        allow_local_urls=allow_local_urls,
        max_body_bytes=max_body_mb << 20,
    )


def read_key_file(path: Path) -> str:
    """The key in `path`, without its trailing newline; an unreadable or empty file is a usage
    error that names the file, never its content."""
    try:
        key = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise click.BadParameter(f"cannot read {path}: {type(exc).__name__}", param_hint="--api-key-file") from None
    if not key:
        raise click.BadParameter(f"{path} is empty", param_hint="--api-key-file")
    return key
