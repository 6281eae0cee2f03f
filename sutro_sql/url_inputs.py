"""A batch's URL input, fetched by the server that runs the job (v1 §5.2: big inputs travel as
URLs). A server that fetches what a client names can be pointed at itself or at its network, so
every hop must resolve to public addresses (unless allowed), redirects stay on the same host,
and the body is capped in bytes; every refusal names the `inputs` field.
"""

from __future__ import annotations

import ipaddress
import socket
from pathlib import Path

import httpx

from .errors import ValidationError

#: Redirects followed (on the same host) before a URL input is refused.
MAX_REDIRECTS = 5


def size_text(count: int) -> str:
    """A byte count as a limit is stated in messages."""
    return f"{count / (1 << 20):g} MB" if count >= 1 << 20 else f"{count} bytes"


def download_url_input(url: str, target: Path, *, max_bytes: int, allow_local: bool) -> None:
    """Stream `url` into `target`, bounded in time and to `max_bytes`. Each hop's host must resolve
    to public addresses only (unless `allow_local`), and redirects stay on the same host.
    Failures name the `inputs` field. (The address is checked before connecting; a DNS answer
    that changes between the check and the connection is not caught.)"""
    timeout = httpx.Timeout(60.0, connect=10.0)
    with httpx.Client(timeout=timeout, follow_redirects=False) as client:
        for _ in range(MAX_REDIRECTS + 1):
            _check_url_host(url, allow_local)
            try:
                with client.stream("GET", url) as response:
                    if response.is_redirect:
                        url = _same_host_redirect(url, response)
                        continue
                    _save(response, target, max_bytes)
                    return
            except httpx.HTTPError as exc:
                raise ValidationError(f"inputs: cannot download the file ({type(exc).__name__}).") from None
    raise ValidationError(f"inputs: the file URL redirects more than {MAX_REDIRECTS} times.")


def _check_url_host(url: str, allow_local: bool) -> None:
    """Refuse a URL whose host is, or resolves to, a loopback, private or link-local address."""
    parsed = httpx.URL(url)
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ValidationError("inputs: expected an http(s) URL of a .csv/.parquet file.")
    try:
        infos = socket.getaddrinfo(parsed.host, parsed.port or 443, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise ValidationError(f"inputs: cannot resolve the host {parsed.host!r} of the file URL.") from None
    if allow_local:
        return
    for *_, address in infos:
        ip = ipaddress.ip_address(address[0].split("%", 1)[0])
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        if not ip.is_global:
            raise ValidationError(
                f"inputs: the file URL's host {parsed.host!r} is a loopback, private or link-local address ({ip}); "
                "this server does not download from those (serve with --allow-local-urls to allow it)."
            )


def _same_host_redirect(url: str, response: httpx.Response) -> str:
    target = response.url.join(response.headers.get("location", ""))
    if (target.host or "").lower() != (httpx.URL(url).host or "").lower():
        raise ValidationError(f"inputs: the file URL redirects to another host ({target.host!r}); refused.")
    return str(target)


def _save(response: httpx.Response, target: Path, max_bytes: int) -> None:
    if not response.is_success:
        raise ValidationError(f"inputs: downloading the file failed with HTTP {response.status_code}.")
    too_large = ValidationError(f"inputs: the file is larger than {size_text(max_bytes)}, this server's limit.")
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise too_large
    written = 0
    with target.open("wb") as out:
        for chunk in response.iter_bytes():
            written += len(chunk)
            if written > max_bytes:
                raise too_large
            out.write(chunk)
