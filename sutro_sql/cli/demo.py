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
    import runpy

    quickstart = _repo_examples() / "quickstart.py"
    if not quickstart.exists():
        raise click.UsageError(f"the demo needs the repository's examples folder ({quickstart} not found)")
    runpy.run_path(str(quickstart))["main"](demo_home)


def _repo_examples() -> Path:
    return Path(__file__).resolve().parent.parent.parent / "examples"
