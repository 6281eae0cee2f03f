"""What every command shares: the global options, the Client they open, and how a command exits."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from ..client import Client


@dataclasses.dataclass
class CliState:
    """One invocation's global options, and the Client over the backend they select (opened on
    first use, closed when the command ends): every command reaches the backend through it."""

    home: str | None
    api_url: str | None
    api_key: str | None = dataclasses.field(repr=False)
    max_concurrency: int
    debug: bool
    quiet: bool
    cache_mode: str | None = None
    auto_batch: bool = True
    auto_batch_threshold: int | None = None  # None: the SQL session's default
    _client: Client | None = None

    def client(self, *, workers: bool = True) -> Client:
        """The Client of the global options (remote if an API URL is set, else the local home).
        Commands that only read pass `workers=False`, so they never run other processes' jobs."""
        if self._client is None:
            from ..backends import open_backend
            from ..client import Client

            backend = open_backend(
                self.home, self.api_url, self.api_key, start_workers=workers, max_concurrency=self.max_concurrency
            )
            self._client = Client(
                backend=backend,
                progress=self.progress(),
                max_concurrency=self.max_concurrency,
                cache_mode=self.cache_mode,
            )
        return self._client

    def progress(self) -> bool | None:
        """None lets the progress bar decide (on a TTY only); --quiet turns it off."""
        return False if self.quiet else None

    def close(self) -> None:
        if self._client is not None:
            backend = self._client.backend
            self._client.close()
            backend.close()


pass_state = click.make_pass_decorator(CliState)


def exit_with(code: int) -> None:
    """End the current command with `code` (click still runs its cleanups, e.g. closing the backend)."""
    click.get_current_context().exit(int(code))
