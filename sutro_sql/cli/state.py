"""What every command shares: the global options, the backend they name, and how a command exits."""

from __future__ import annotations

import dataclasses
from typing import Any

import click


@dataclasses.dataclass
class CliState:
    """One invocation's global options, and the backend they select (opened on first use,
    closed when the command ends)."""

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
            from ..client import default_backend

            self._backend = default_backend(
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


def exit_with(code: int) -> None:
    """End the current command with `code` (click still runs its cleanups, e.g. closing the backend)."""
    click.get_current_context().exit(int(code))
