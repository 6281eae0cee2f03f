"""Which deployment to talk to, with which key: the official SDK's rules (v1 §1.1, §1.2).

Reproducing them exactly means a URL and key that work with `sutro` work
here, and a configuration the SDK refuses (plain http to a LAN host, a stray
path that could leak the key to another service) is refused here too.
"""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

from . import environment
from .errors import ConfigurationError

DIRECT_TENSOR_FACTORY_API_ERROR = (
    "Direct Sutro Batch API access is no longer supported by the Sutro SDK. "
    "Upgrade the sutro package, then set SUTRO_API_URL to your Sutro "
    "single-tenant deployment URL and use an API key from that deployment's "
    "API Keys panel."
)
RETIRED_HOSTS = ("api.sutro.sh", "serve.sutro.sh", "api.materialized.dev")
RETIRED_HOST_SUFFIX = "--tensor-factory-fastapi-app.modal.run"


def sdk_config_file() -> Path:
    """The official SDK's saved login (``sutro login``)."""
    return Path.home() / ".sutro" / "config.json"


def is_loopback_host(host: str | None) -> bool:
    """`localhost` (any case) or an address in 127.0.0.0/8 or ::1."""
    if not host:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _canonical_host(host: str) -> str:
    """The host a request would really reach: percent-decoded, IDNA-encoded, lowercase."""
    host = unquote(host).lower().rstrip(".")
    try:
        return host.encode("idna").decode("ascii")
    except UnicodeError:
        return host


def _is_retired_host(host: str) -> bool:
    host = _canonical_host(host)
    return host.endswith(RETIRED_HOST_SUFFIX) or any(host == h or host.endswith(f".{h}") for h in RETIRED_HOSTS)


def normalize_api_url(api_url: str) -> str:
    """`<scheme>://<netloc>/v1` from an origin or an origin + /v1; ConfigurationError otherwise."""
    value = (api_url or "").strip() if isinstance(api_url, str) else ""
    if not value:
        raise ConfigurationError("Sutro API URL cannot be empty. Set SUTRO_API_URL to your Sutro deployment URL.")
    parsed = urlsplit(value)
    if parsed.scheme not in {"http", "https"} or not parsed.netloc or not parsed.hostname:
        raise ConfigurationError("Sutro API URL must be an absolute HTTP(S) Sutro deployment URL.")
    if parsed.username is not None or parsed.password is not None:
        raise ConfigurationError("Sutro API URL must not contain embedded credentials.")
    if parsed.query or parsed.fragment:
        raise ConfigurationError("Sutro API URL must not contain a query string or fragment.")
    if _is_retired_host(parsed.hostname):
        raise ConfigurationError(DIRECT_TENSOR_FACTORY_API_ERROR)
    if parsed.scheme == "http" and not is_loopback_host(parsed.hostname):
        raise ConfigurationError(
            "Sutro API URL must use HTTPS unless the deployment is on localhost or a loopback address."
        )
    path = parsed.path.rstrip("/")
    if path not in {"", "/v1"}:
        raise ConfigurationError("Sutro API URL must be a Sutro deployment origin or end at its /v1 API prefix.")
    return urlunsplit((parsed.scheme, parsed.netloc, "/v1", "", ""))


def moved_to(api_url: str, current_url: str | None, current_key: str | None) -> tuple[str, str | None]:
    """(url, key) after moving to `api_url`: the key is kept only for the same deployment (the
    normalized URLs equal), so a key is never sent to another one, as in the SDK."""
    url = normalize_api_url(api_url)
    return url, current_key if url == current_url else None


def checked_api_key(api_key: object) -> str:
    """A key given to `set_api_key`: non-empty text, stripped."""
    key = _nonempty(api_key)
    if key is None:
        raise ConfigurationError("set_api_key needs a non-empty API key.")
    return key


def _nonempty(value: object) -> str | None:
    return value.strip() or None if isinstance(value, str) else None


def _fallback_pair(*, environment_only: bool) -> tuple[str | None, str | None]:
    """(url, key) from the environment if either variable is set, else from the SDK config file."""
    if environment_only or environment.is_set(environment.API_URL) or environment.is_set(environment.API_KEY):
        url = environment.get(environment.API_URL)
        return (normalize_api_url(url) if url else None, environment.get(environment.API_KEY))
    path = sdk_config_file()
    if not path.is_file():
        return (None, None)
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise ConfigurationError(f"{path}: cannot read the saved Sutro login") from None
    if not isinstance(config, dict):
        return (None, None)
    url = _nonempty(config.get("api_url")) or _nonempty(config.get("base_url"))
    return (normalize_api_url(url) if url else None, _nonempty(config.get("api_key")))


def resolve_credentials(api_url: str | None = None, api_key: str | None = None) -> tuple[str, str]:
    """(normalized url, key), paired as the SDK pairs them.

    Explicit arguments win. An explicit key may pair with the environment URL
    but never with the config file's; an explicit URL reuses a fallback key only
    when both normalize to the same string. Missing either -> ConfigurationError.
    """
    explicit_url = normalize_api_url(api_url) if api_url is not None else None
    explicit_key = _nonempty(api_key)
    if explicit_url and explicit_key:
        url, key = explicit_url, explicit_key
    else:
        fallback_url, fallback_key = _fallback_pair(environment_only=explicit_key is not None)
        if explicit_url is None:
            url, key = fallback_url, explicit_key or fallback_key
        else:
            url, key = explicit_url, (fallback_key if explicit_url == fallback_url else None)
    if url is None:
        raise ConfigurationError(
            "Sutro API URL is not configured. Set SUTRO_API_URL to your Sutro deployment URL "
            "(for example, https://sutro.example.com)."
        )
    if key is None:
        raise ConfigurationError(
            f"Sutro API key is not configured for {url}. Create a key in the deployment's API Keys panel "
            "and set SUTRO_API_KEY."
        )
    return url, key
