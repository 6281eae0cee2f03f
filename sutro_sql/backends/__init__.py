"""Backends: where Functions run. One protocol (`base.Backend`), two implementations, and
`open_backend`, the one factory every entry point (Client, SQL, dbt plugin, CLI, server) uses."""

from __future__ import annotations

import os

from .. import environment
from ..config import resolve_home
from ..errors import ConfigurationError
from .base import Backend


def open_backend(
    home: str | os.PathLike[str] | None = None,
    api_url: str | None = None,
    api_key: str | None = None,
    *,
    embedded: bool = False,
    functions_dir: str | os.PathLike[str] | None = None,
    start_workers: bool = True,
    max_concurrency: int | None = None,
) -> Backend:
    """The backend the arguments, else the environment, ask for: a URL and a key (arguments beat
    SUTRO_API_URL/SUTRO_API_KEY) -> RemoteBackend; neither -> the embedded LocalBackend in
    `resolve_home(home)`, reading Function specs from `functions_dir` when given.

    `embedded=True` opens the embedded deployment whatever the environment says (what
    `sutro-sql serve` serves). `start_workers=False` opens a local home without batch workers,
    for callers that only read (listing jobs or Functions) and must not pick up other processes'
    abandoned jobs. `max_concurrency`: real-time calls a RemoteBackend keeps in flight."""
    url = None if embedded else api_url or environment.get(environment.API_URL)
    key = None if embedded else api_key or environment.get(environment.API_KEY)
    if url and key:
        from .remote import RemoteBackend

        options = {} if max_concurrency is None else {"max_concurrency": max_concurrency}
        return RemoteBackend(url, key, home=home, **options)
    if url or key:
        given, missing = (
            (environment.API_URL, environment.API_KEY) if url else (environment.API_KEY, environment.API_URL)
        )
        raise ConfigurationError(
            f"A remote deployment needs both {environment.API_URL} and {environment.API_KEY}: {given} is set "
            f"(or passed) but {missing} is not. Set {missing} (or pass it), or unset {given} "
            "to use the embedded local deployment."
        )
    from .local import LocalBackend

    return LocalBackend(resolve_home(home), functions_dir=functions_dir, start_workers=start_workers)


__all__ = ["Backend", "open_backend"]
