"""The official SDK's module-level functions (`sutro.run_function(...)` after `import sutro as so`),
acting on one default Client built from the environment on first use."""

from __future__ import annotations

import functools
import inspect
import threading
import warnings
from collections.abc import Callable
from typing import Any

from .client import Client
from .urls import checked_api_key, moved_to

_default_client: Client | None = None
_default_lock = threading.Lock()
#: `set_api_url` / `set_api_key` given before the default client exists.
_settings: dict[str, str | None] = {}


def get_default_client() -> Client:
    """The Client the module-level functions use, built on first use from `set_api_url` /
    `set_api_key` if they were called, else from the environment."""
    global _default_client
    with _default_lock:
        if _default_client is None:
            _default_client = Client(api_key=_settings.get("api_key"), api_url=_settings.get("api_url"))
        return _default_client


def set_api_url(api_url: str) -> None:
    """Use the Sutro deployment at `api_url`; clears the API key, as the SDK does (see
    `Client.set_api_url`). Nothing is opened until the next call."""
    with _default_lock:
        if _default_client is not None:
            _default_client.set_api_url(api_url)
            return
        url, key = moved_to(api_url, _settings.get("api_url"), _settings.get("api_key"))
        _settings.update(api_url=url, api_key=key)


def set_base_url(base_url: str) -> None:
    """Deprecated alias of `set_api_url`, as in the SDK."""
    warnings.warn("set_base_url() is deprecated; use set_api_url() instead.", DeprecationWarning, stacklevel=2)
    set_api_url(base_url)


def set_api_key(api_key: str) -> None:
    """Use `api_key` for the deployment of `set_api_url` (else SUTRO_API_URL)."""
    with _default_lock:
        if _default_client is not None:
            _default_client.set_api_key(api_key)
            return
        _settings["api_key"] = checked_api_key(api_key)


def set_default_client(client: Client | None) -> None:
    """Replace (or, with None, forget) the default client and the settings given for it; the
    old client is not closed."""
    global _default_client
    with _default_lock:
        _default_client = client
        _settings.clear()


def _on_default_client(method: Callable[..., Any]) -> Callable[..., Any]:
    """A module-level twin of a Client method, acting on the default client, same signature."""

    @functools.wraps(method)
    def call(*args: Any, **kwargs: Any) -> Any:
        return method(get_default_client(), *args, **kwargs)

    signature = inspect.signature(method)
    call.__signature__ = signature.replace(parameters=list(signature.parameters.values())[1:])  # type: ignore[attr-defined]
    return call


try_authentication = _on_default_client(Client.try_authentication)
run_function = _on_default_client(Client.run_function)
batch_run_function = _on_default_client(Client.batch_run_function)
await_job_completion = _on_default_client(Client.await_job_completion)
get_job_results = _on_default_client(Client.get_job_results)
get_job_status = _on_default_client(Client.get_job_status)
cancel_job = _on_default_client(Client.cancel_job)
list_jobs = _on_default_client(Client.list_jobs)
get_quotas = _on_default_client(Client.get_quotas)
attach = _on_default_client(Client.attach)
results_download_url = _on_default_client(Client.results_download_url)
download_job_results = _on_default_client(Client.download_job_results)
wait_for_job = _on_default_client(Client.wait_for_job)
publish_function = _on_default_client(Client.publish_function)
