"""`sutro-sql demo`: the quickstart on the embedded engine, no keys and no network."""

from __future__ import annotations

from pathlib import Path

import click


@click.command()
@click.option(
    "--demo-home", type=click.Path(file_okay=False, path_type=Path), default=Path(".sutro-demo"), show_default=True
)
def demo(demo_home: Path) -> None:
    """Run the quickstart: example Functions on a small table, on the embedded engine (no keys, no network).

    \b
    Example:
      sutro-sql demo
    """
    from ..demo.quickstart import main as run_quickstart

    run_quickstart(demo_home)
