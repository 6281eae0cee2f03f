"""`sutro-sql serve`: the local deployment over the v1 HTTP API."""

from __future__ import annotations

import click

from .. import environment
from .state import CliState, pass_state


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
    required=True,
    help=f"Key clients must send; prefer env {environment.SERVE_API_KEY}.",
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
    from ..server import serve as serve_app

    serve_app(
        home=serve_home or state.home,
        host=host,
        port=port,
        api_key=serve_api_key,
        ssl_certfile=ssl_certfile,
        ssl_keyfile=ssl_keyfile,
    )
