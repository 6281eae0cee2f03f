"""Downloading a job's results artifact to disk, resumably, as the SDK's `download_job_results`.

The deployment hands out presigned URLs (v1 §5.7): a HEAD gives the size and ETag, a GET the
bytes; no auth header is ever sent to them (the URL is the credential). An interrupted download
leaves `<file>.part` (and `<file>.part.etag`); the next call resumes it with a Range request when
the artifact is unchanged (same ETag), else starts over. A short file is never published.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import httpx

from .errors import BackendUnavailableError, ServerError

#: Connect / between-chunks timeouts of artifact requests (the SDK's (10, 120)).
TIMEOUT = httpx.Timeout(120.0, connect=10.0)
CHUNK_BYTES = 8 << 20


def destination_for(filename: str, output_path: str | os.PathLike[str] | None) -> Path:
    """Where the file goes, as the SDK decides: the artifact's name in the current folder, in
    `output_path` when it is a folder (or ends with a separator), else `output_path` itself."""
    if output_path is None:
        return Path(filename)
    text = os.fspath(output_path)
    if text.endswith(("/", os.sep)) or Path(text).is_dir():
        Path(text).mkdir(parents=True, exist_ok=True)
        return Path(text) / filename
    Path(text).parent.mkdir(parents=True, exist_ok=True)
    return Path(text)


def download_artifact(urls: dict[str, Any], destination: Path, *, resume: bool = True) -> Path:
    """Fetch the artifact at `urls` ({"head": ..., "get": ...}) into `destination`."""
    part = destination.with_name(destination.name + ".part")
    etag_file = destination.with_name(destination.name + ".part.etag")
    with httpx.Client(timeout=TIMEOUT, trust_env=True) as http:
        try:
            head = http.head(urls["head"], follow_redirects=False)
            _check(head, "HEAD")
            etag = head.headers.get("etag")
            total = int(head.headers["content-length"])
            start = part.stat().st_size if resume and etag and part.exists() and _stored(etag_file) == etag else 0
            if start > total:
                start = 0
            if start == 0 and part.exists():
                part.unlink()  # a stale partial must never be appended to
            _store(etag_file, etag)
            while start < total:
                headers = {"Range": f"bytes={start}-", "If-Range": etag} if start and etag else None
                with http.stream("GET", urls["get"], headers=headers, follow_redirects=True) as response:
                    _check(response, "GET")
                    if start and response.status_code != 206:
                        start = 0  # the artifact changed (or Range was ignored): this is the whole file
                    if start == 0:
                        etag = response.headers.get("etag", etag)
                        total = int(response.headers.get("content-length", total))
                        _store(etag_file, etag)
                    with open(part, "ab" if start else "wb") as file:
                        for chunk in response.iter_bytes(CHUNK_BYTES):
                            file.write(chunk)
                break
        except httpx.TransportError as exc:  # the URL carries a credential: never put it in the message
            raise BackendUnavailableError(
                f"results download interrupted ({type(exc).__name__}); call download_job_results again to resume"
            ) from None
    size = part.stat().st_size if part.exists() else 0
    if size != total:
        raise ServerError(f"results download incomplete ({size} of {total} bytes); call it again to retry")
    os.replace(part, destination)
    etag_file.unlink(missing_ok=True)
    return destination


def _check(response: httpx.Response, method: str) -> None:
    if response.status_code >= 400:
        raise ServerError(f"results download: {method} of the artifact answered {response.status_code}")


def _stored(path: Path) -> str | None:
    return path.read_text(encoding="utf-8") if path.exists() else None


def _store(path: Path, etag: str | None) -> None:
    if etag:
        path.write_text(etag, encoding="utf-8")
    else:
        path.unlink(missing_ok=True)
