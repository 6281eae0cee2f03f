"""`sutro-sql serve`: a Backend (the local deployment) over the v1 HTTP API (sutro-api-v1.md §9).

The routes are a thin layer over the Backend protocol, which mirrors v1 call
for call: parse and check the request, call the backend in a worker thread,
shape the answer exactly as the official SDK reads it. Every error is JSON
`{detail, code, request_id}` with the id echoed in `X-Request-ID`; nothing is
compressed, so the SDK's auxiliary lookups (§1.4) always work.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import secrets
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import anyio.to_thread
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel
from pydantic import ValidationError as PydanticValidationError
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .backends import open_backend
from .backends.base import TERMINAL_STATUSES, Backend
from .errors import (
    ConfigurationError,
    NotFoundError,
    RateLimitError,
    SutroSQLError,
    ValidationError,
)
from .inputs import canonical_json
from .url_inputs import download_url_input, size_text
from .urls import is_loopback_host
from .wire import (
    STREAM_EVENT,
    AuthReply,
    BatchInferenceRequest,
    CancelReply,
    ErrorBody,
    JobCreated,
    JobList,
    JobReply,
    JobResults,
    JobResultsRequest,
    JobStatusReply,
    ListJobsQuery,
    QuotasReply,
    ResultsUrl,
    ResultsUrlQuery,
    RunFunctionRequest,
    RunFunctionResponse,
    field_error,
)

#: Default cap on a request body: one JSON body is held and parsed whole (about 4x its size in
#: memory), so bigger batches go as a file URL (v1 §8 recommends >= 100 MB or a JSON 413).
MAX_BODY_BYTES = 100 << 20
#: Default cap on a file a URL input names.
MAX_DOWNLOAD_BYTES = 2 << 30
#: Same-host redirects a URL input may take.
MAX_STREAMS = 256  # progress streams waiting on their own worker threads at once
KEEP_ALIVE_SECONDS = 75  # idle keep-alive connections are kept this long (nginx's default)
MAX_RUNS = 256  # Function runs answered on worker threads at once (anyio's shared pool holds 40)
PUBLIC_PREFIX = "/v1/artifacts/"  # presigned downloads: the URL's signature is the credential


class _JSON(JSONResponse):
    """Compact JSON; values Arrow hands back (dates, decimals) become strings."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, default=str, ensure_ascii=False, separators=(",", ":")).encode()


def _error_response(
    status: int, detail: str, code: str, request_id: str, headers: dict[str, str] | None = None
) -> Response:
    body = ErrorBody(detail=detail, code=code, request_id=request_id)
    return _JSON(body.model_dump(), status_code=status, headers=headers)


def _reply(answer: BaseModel, *, exclude_unset: bool = False) -> Response:
    """A v1 answer, built through its wire model."""
    return _JSON(answer.model_dump(exclude_unset=exclude_unset))


def _request_id(request: Request) -> str:
    return request.scope.get("state", {}).get("request_id", "rt_unknown")


class _Gate:
    """Pure ASGI middleware: a request id on every response, and the `Key` check on API routes."""

    def __init__(self, app: ASGIApp, api_key: str) -> None:
        self.app = app
        self._expected = f"Key {api_key}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = f"rt_{uuid.uuid4().hex[:16]}"
        scope.setdefault("state", {})["request_id"] = request_id

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
            await send(message)

        path: str = scope["path"]
        if path.startswith("/v1/") and not path.startswith(PUBLIC_PREFIX) and not self._authorized(scope):
            response = _error_response(401, "Invalid or missing API key.", "unauthorized", request_id)
            await response(scope, receive, send_with_id)
            return
        await self.app(scope, receive, send_with_id)

    def _authorized(self, scope: Scope) -> bool:
        for name, value in scope["headers"]:
            if name == b"authorization":
                return hmac.compare_digest(value.strip(), self._expected)
        return False


# -- request parsing ------------------------------------------------------------------------


@dataclass(frozen=True)
class ServerLimits:
    """What a request may make the server do. `allow_local_urls`: download URL inputs from
    loopback, private and link-local addresses too (off: a client could make the server fetch
    from its own network)."""

    max_body_bytes: int = MAX_BODY_BYTES
    max_download_bytes: int = MAX_DOWNLOAD_BYTES
    allow_local_urls: bool = False


async def _json_body(request: Request, limit: int) -> dict[str, Any]:
    """The body as a JSON object: lenient (NaN/Infinity tokens accepted, as Python's encoder
    writes them for pandas gaps). Past `limit` bytes it is a 413, answered before reading on: at
    once when Content-Length says so, else as soon as the stream crosses it."""
    too_large = _HTTPError(
        413,
        f"Request body exceeds {size_text(limit)}, this server's limit; send a file URL instead.",
        "payload_too_large",
    )
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > limit:
            raise too_large
    try:
        data = json.loads(body) if body else None
    except ValueError as exc:
        raise _HTTPError(400, f"Request body is not valid JSON: {exc}", "invalid_request") from None
    if not isinstance(data, dict):
        raise ValidationError("body: expected a JSON object.", code="invalid_request")
    return data


class _HTTPError(Exception):
    """An error that is about HTTP itself (body size, malformed JSON), not about the backend."""

    def __init__(self, status: int, detail: str, code: str) -> None:
        super().__init__(detail)
        self.status, self.detail, self.code = status, detail, code


M = TypeVar("M", bound=BaseModel)


def _parsed(model: type[M], data: Any) -> M:
    """`data` (a body or the query parameters) as `model`; a bad field is a 422 naming it."""
    try:
        return model.model_validate(data)
    except PydanticValidationError as exc:
        raise ValidationError(f"{field_error(exc)}.") from None


# -- the API --------------------------------------------------------------------------------


class _API:
    """Route handlers over one backend."""

    def __init__(self, backend: Backend, limits: ServerLimits) -> None:
        self.backend = backend
        self.limits = limits
        self._signing_key = secrets.token_bytes(32)
        self._stream_slots: anyio.CapacityLimiter | None = None
        self._run_slots: anyio.CapacityLimiter | None = None

    async def next_event(self, events: Iterator[dict[str, Any]]) -> dict[str, Any] | None:
        """The next progress event, or None at the end. Waiting for one can block a thread for a
        heartbeat interval, so streams draw on their own threads and never starve the API calls."""
        if self._stream_slots is None:
            self._stream_slots = anyio.CapacityLimiter(MAX_STREAMS)
        return await anyio.to_thread.run_sync(next, events, None, limiter=self._stream_slots)

    async def body(self, request: Request) -> dict[str, Any]:
        return await _json_body(request, self.limits.max_body_bytes)

    async def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return await run_in_threadpool(fn, *args, **kwargs)

    async def run_function(self, request: Request) -> Response:
        """Runs wait on an engine (a model server, a 50 ms deployment), not on this process's CPU:
        they get their own threads, so a client with hundreds in flight is not held to 40."""
        body = _parsed(RunFunctionRequest, await self.body(request))
        canonical_json(body.input)  # a lone surrogate (valid JSON, not Unicode) is a 422, not an engine crash
        name = request.path_params["name"]
        if self._run_slots is None:
            self._run_slots = anyio.CapacityLimiter(MAX_RUNS)
        answer = await anyio.to_thread.run_sync(
            functools.partial(self.backend.run_function, name, body.input, confidence_scoring=body.confidence_scoring),
            limiter=self._run_slots,
        )
        return _reply(RunFunctionResponse.model_validate(answer), exclude_unset=True)

    async def batch_inference(self, request: Request) -> Response:
        body = _parsed(BatchInferenceRequest, await self.body(request))
        for field in ("json_schema", "system_prompt"):
            if getattr(body, field) is not None:
                raise ValidationError(f"{field}: not allowed for a Function job; the Function defines it.")
        options = {
            "job_priority": body.job_priority,
            "dry_run": body.estimate,
            "job_name": body.name,
            "description": body.description,
            "id_column": body.id_column_name,
        }
        if isinstance(body.inputs, list):
            job_id = await self.call(self.backend.submit_batch, body.model, body.inputs, **options)
        else:
            job_id = await self.call(self._submit_from_url, body.model, body.inputs, options)
        return _reply(JobCreated(results=job_id, metadata={"job_id": job_id, "message": "Job created successfully"}))

    def _submit_from_url(self, model: str, url: str, options: dict[str, Any]) -> str:
        """Download the file (as a deployment would), submit it as a local file, then drop it."""
        try:
            url.encode("utf-8")
        except UnicodeEncodeError:  # valid JSON, not Unicode: a 422, not the URL parser's crash
            raise ValidationError("inputs: the URL is not valid Unicode text (it holds a lone surrogate).") from None
        suffix = Path(urlsplit(url).path).suffix.lower()
        if suffix not in (".csv", ".parquet"):
            raise ValidationError("inputs: the URL must name a .csv or .parquet file.")
        folder = Path(self.backend.home) / "downloads"
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / f"{uuid.uuid4().hex}{suffix}"
        try:
            download_url_input(
                url, target, max_bytes=self.limits.max_download_bytes, allow_local=self.limits.allow_local_urls
            )
            return self.backend.submit_batch(model, str(target), **options)
        except ValidationError as exc:  # name the input, never the server's folders
            raise ValidationError(exc.detail.replace(str(target), "inputs (the downloaded file)")) from None
        finally:
            target.unlink(missing_ok=True)

    async def job_status(self, request: Request) -> Response:
        job_id = request.path_params["job_id"]
        status = await self.call(self.backend.get_job_status, job_id)
        return _reply(JobStatusReply(job_status={job_id: status}))

    async def job(self, request: Request) -> Response:
        job = await self.call(self.backend.get_job, request.path_params["job_id"])
        return _reply(JobReply.model_validate({"job": job}))

    async def stream_progress(self, request: Request) -> Response:
        events = await self.call(self.backend.stream_job_progress, request.path_params["job_id"])

        async def lines() -> AsyncIterator[bytes]:
            while (event := await self.next_event(events)) is not None:
                yield STREAM_EVENT.dump_json(STREAM_EVENT.validate_python(event)) + b"\n"
            # The job is terminal: a last heartbeat makes an attached SDK look at the status now
            # instead of polling for it after the stream closes.
            yield b'{"update_type":"heartbeat"}\n'

        return StreamingResponse(lines(), media_type="application/x-ndjson", headers={"Cache-Control": "no-cache"})

    async def job_results(self, request: Request) -> Response:
        body = _parsed(JobResultsRequest, await self.body(request))
        columns = await self._result_columns(
            body.job_id,
            include_inputs=body.include_inputs,
            include_logprobs=body.include_cumulative_logprobs,
            include_errors=body.include_errors,
        )
        message = f"Results retrieved successfully for job {body.job_id}"
        return _reply(JobResults.model_validate({"results": columns, "message": message}))

    async def _result_columns(
        self, job_id: str, *, include_inputs: bool, include_logprobs: bool, include_errors: bool
    ) -> dict[str, list[Any]]:
        """v1 §5.6 columns in row order: [inputs], [id column], outputs, confidence_score,
        [cumulative_logprobs], [error]. Optional columns only when asked (the SDK keeps extras)."""
        table: pa.Table = await self.call(
            self.backend.get_job_results,
            job_id,
            include_inputs=include_inputs,
            include_cumulative_logprobs=include_logprobs,
        )
        columns = {name: table.column(name).to_pylist() for name in table.column_names if name != "error"}
        if not include_inputs:
            columns.pop("inputs", None)
        if include_errors and "error" in table.column_names:
            columns["error"] = table.column("error").to_pylist()
        return columns

    async def results_url(self, request: Request) -> Response:
        job_id = request.path_params["job_id"]
        query = _parsed(ResultsUrlQuery, dict(request.query_params))
        if query.format != "parquet":
            raise _HTTPError(400, f"format: only 'parquet' is supported, got {query.format!r}.", "unsupported_format")
        include_inputs, include_logprobs = query.include_inputs, query.include_cumulative_logprobs
        expires_in = query.expires_in_seconds
        filename = f"sutro-results~{job_id}~inputs={int(include_inputs)}~logprobs={int(include_logprobs)}.parquet"
        path = Path(self.backend.home) / "artifacts" / filename
        if not path.exists():  # results are immutable: build once per (job, flags), then reuse
            columns = await self._result_columns(
                job_id, include_inputs=include_inputs, include_logprobs=include_logprobs, include_errors=False
            )
            await self.call(_write_parquet, columns, path)
        else:
            await self.call(self.backend.get_job_status, job_id)  # unknown job -> 404 even if cached
        expires = int(time.time()) + expires_in
        url = str(
            request.url_for("artifact", filename=filename).include_query_params(
                expires=expires, signature=self._sign(filename, expires)
            )
        )
        return _reply(
            ResultsUrl.model_validate(
                {
                    "job_id": job_id,
                    "format": "parquet",
                    "include_inputs": include_inputs,
                    "include_cumulative_logprobs": include_logprobs,
                    "expires_in_seconds": expires_in,
                    "artifact": {
                        "bucket": "local",
                        "key": f"artifacts/{filename}",
                        "filename": filename,
                        "size_bytes": path.stat().st_size,
                    },
                    "urls": {"get": url, "head": url},
                }
            )
        )

    def _sign(self, filename: str, expires: int) -> str:
        return hmac.new(self._signing_key, f"{filename}|{expires}".encode(), hashlib.sha256).hexdigest()

    async def artifact(self, request: Request) -> Response:
        filename = request.path_params["filename"]
        try:
            expires = int(request.query_params.get("expires", ""))
        except ValueError:
            expires = 0
        signature = request.query_params.get("signature", "")
        if expires < time.time() or not hmac.compare_digest(signature, self._sign(filename, expires)):
            return _error_response(
                403, "The download link is invalid or has expired.", "forbidden", _request_id(request)
            )
        path = Path(self.backend.home) / "artifacts" / filename
        if "/" in filename or not path.is_file():
            raise NotFoundError("No such artifact.", code="not_found")
        return FileResponse(path, media_type="application/vnd.apache.parquet", filename=filename)

    async def cancel(self, request: Request) -> Response:
        job_id = request.path_params["job_id"]
        status = await self.call(self.backend.get_job_status, job_id)
        if status in TERMINAL_STATUSES:
            message = f"Job {job_id} could not be cancelled because it has already completed ({status})."
            return _reply(CancelReply(cancelled=False, message=message))
        await self.call(self.backend.cancel_job, job_id)
        return _reply(CancelReply(cancelled=True, message=f"Job {job_id} has been successfully cancelled"))

    async def list_jobs(self, request: Request) -> Response:
        query = _parsed(ListJobsQuery, dict(request.query_params))
        jobs = await self.call(self.backend.list_jobs)
        if query.limit is None:
            return _reply(JobList.model_validate({"message": "Jobs retrieved successfully.", "jobs": jobs}))
        end = query.cursor + query.limit
        page = {"jobs": jobs[query.cursor : end], "next_cursor": str(end) if end < len(jobs) else None}
        return _reply(JobList.model_validate(page), exclude_unset=True)

    async def quotas(self, request: Request) -> Response:
        return _reply(QuotasReply.model_validate({"quotas": await self.call(self.backend.get_quotas)}))

    async def auth_check(self, request: Request) -> Response:
        return _reply(AuthReply(authenticated=True))


def _write_parquet(columns: dict[str, list[Any]], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(f".{uuid.uuid4().hex}.partial")
    pq.write_table(pa.table({name: pa.array(values) for name, values in columns.items()}), partial)
    partial.replace(path)


def _routes(api: _API) -> list[Route]:
    """Each v1 path, with and without a trailing slash (the docs show both; no redirects)."""
    table: list[tuple[str, Callable[[Request], Awaitable[Response]], list[str], str | None]] = [
        ("/v1/functions/{name}/run", api.run_function, ["POST"], None),
        ("/v1/batch-inference", api.batch_inference, ["POST"], None),
        ("/v1/job-status/{job_id}", api.job_status, ["GET"], None),
        ("/v1/jobs/{job_id}", api.job, ["GET"], None),
        ("/v1/stream-job-progress/{job_id}", api.stream_progress, ["GET"], None),
        ("/v1/job-results", api.job_results, ["POST"], None),
        ("/v1/jobs/{job_id}/results-url", api.results_url, ["GET"], None),
        ("/v1/artifacts/{filename}", api.artifact, ["GET", "HEAD"], "artifact"),
        ("/v1/job-cancel/{job_id}", api.cancel, ["GET", "POST"], None),
        ("/v1/list-jobs", api.list_jobs, ["GET"], None),
        ("/v1/get-quotas", api.quotas, ["GET"], None),
        ("/v1/auth/check", api.auth_check, ["GET"], None),
    ]
    routes = []
    for path, endpoint, methods, name in table:
        routes.append(Route(path, endpoint, methods=methods, name=name))
        routes.append(Route(path + "/", endpoint, methods=methods))
    return routes


def create_app(backend: Backend, api_key: str, limits: ServerLimits | None = None) -> ASGIApp:
    """The v1 API over `backend`, for clients sending `Authorization: Key <api_key>`, within
    `limits` (default: `ServerLimits()`)."""
    if not api_key:
        raise ConfigurationError("sutro-sql serve needs a non-empty API key.")
    api = _API(backend, limits or ServerLimits())

    async def on_sutro_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, SutroSQLError)
        status = exc.response_status()
        headers = None
        if isinstance(exc, RateLimitError) and exc.retry_after is not None:
            headers = {"Retry-After": f"{exc.retry_after:g}"}
        return _error_response(status, exc.detail, exc.code, _request_id(request), headers)

    async def on_http_error(request: Request, exc: Exception) -> Response:
        if isinstance(exc, _HTTPError):
            return _error_response(exc.status, exc.detail, exc.code, _request_id(request))
        assert isinstance(exc, HTTPException)
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "invalid_request")
        detail = f"{exc.detail}: {request.method} {request.url.path}"
        return _error_response(exc.status_code, detail, code, _request_id(request), exc.headers)

    async def on_crash(request: Request, exc: Exception) -> Response:
        return _error_response(500, f"Internal error ({type(exc).__name__}).", "internal_error", _request_id(request))

    app = Starlette(
        routes=_routes(api),
        exception_handlers={
            SutroSQLError: on_sutro_error,
            _HTTPError: on_http_error,
            HTTPException: on_http_error,
            Exception: on_crash,
        },
    )
    return _Gate(app, api_key)


def serve(
    *,
    home: str | Path | None = None,
    host: str = "127.0.0.1",
    port: int = 8787,
    api_key: str,
    ssl_certfile: str | None = None,
    ssl_keyfile: str | None = None,
    backend: Backend | None = None,
    max_body_bytes: int = MAX_BODY_BYTES,
    max_download_bytes: int = MAX_DOWNLOAD_BYTES,
    allow_local_urls: bool = False,
) -> None:
    """Serve `backend` (default: the LocalBackend of `home`) until interrupted, within the
    limits given (see `ServerLimits`).

    Plain HTTP only on a loopback host: anywhere else the key would cross a network in clear,
    so both `ssl_certfile` and `ssl_keyfile` are required.
    """
    import uvicorn

    if not api_key:
        raise ConfigurationError("sutro-sql serve needs an API key (--api-key or SUTRO_SQL_SERVE_API_KEY).")
    if (ssl_certfile is None) != (ssl_keyfile is None):
        raise ConfigurationError("HTTPS needs both ssl_certfile and ssl_keyfile.")
    if not is_loopback_host(host) and ssl_certfile is None:
        raise ConfigurationError(
            f"Refusing to serve plain HTTP on {host!r}: bind 127.0.0.1/localhost, or pass ssl_certfile and ssl_keyfile."
        )
    owned = backend is None
    if backend is None:
        backend = open_backend(home, embedded=True)
    scheme = "https" if ssl_certfile else "http"
    shown_host = f"[{host}]" if ":" in host else host
    print(f"sutro-sql: serving {backend.identity} at {scheme}://{shown_host}:{port}/v1", file=sys.stderr, flush=True)
    try:
        uvicorn.run(
            create_app(backend, api_key, ServerLimits(max_body_bytes, max_download_bytes, allow_local_urls)),
            host=host,
            port=port,
            ssl_certfile=ssl_certfile,
            ssl_keyfile=ssl_keyfile,
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=5,
            # longer than a client keeps an idle connection (httpx: 5 s, uvicorn's default too):
            # otherwise both close at once and a call sent on the closing connection is lost
            timeout_keep_alive=KEEP_ALIVE_SECONDS,
        )
    finally:
        if owned:
            backend.close()
