"""RemoteBackend: a Sutro deployment over the v1 HTTP API (sutro-api-v1.md), with httpx.

Function runs (the hot path: thousands of small calls) go over small pools of httpx's async
transport on one event-loop thread, at most `max_concurrency` in flight, HTTP/2 where the
server speaks it; a caller hands many inputs at once (`run_function_many`) and waits on the
loop rather than on a thread per call. Control calls (jobs, results, the progress stream) go over one pooled blocking
client. Both have an explicit timeout on every call and the shared retry policy: reads
and `job-results` are retried on 5xx and dropped connections; a Function run
(billed) and a batch submission (creates a job) only on 429 or a refused
connection, when the server surely did nothing. The progress stream is the one
call without a fixed deadline: it may stay open for hours, so it only has an idle
timeout (`stream_idle_timeout`, well above the 10-15 s heartbeat) and is re-opened
when it drops.

Batch submissions carry a content key in the job `description` (a trailing
``[sutro-sql:<key>]`` tag) and look for it with `list-jobs` before submitting,
so a re-run or a crash-and-re-run re-attaches to the job it already started.
Tradeoff: the lookup costs one `list-jobs` call per keyed submission (the
whole unpaginated job list), two processes submitting the same key at the same
instant can both miss each other, and a deployment that caps `list-jobs` can
hide an old job (which then runs again: wasted work, never a wrong answer).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import importlib.util
import json
import tempfile
import threading
import time
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import IO, Any, TypeVar
from urllib.parse import quote, urlsplit

import httpx
import pyarrow as pa
from pydantic import BaseModel
from pydantic import ValidationError as PydanticValidationError

from ..batch_input import iter_row_batches
from ..config import resolve_home
from ..errors import (
    AuthenticationError,
    BackendUnavailableError,
    ConfigurationError,
    ServerError,
    SutroSQLError,
    ValidationError,
    redact,
)
from ..functions import FunctionSpec
from ..http import RETRYABLE_STATUS, RetryPolicy, raise_for_response
from ..urls import resolve_credentials
from ..wire import (
    EVENT_TYPES,
    STREAM_EVENT,
    AuthReply,
    CancelReply,
    JobCreated,
    JobList,
    JobReply,
    JobResults,
    JobStatusReply,
    QuotasReply,
    ResultsUrl,
    RunFunctionResponse,
    field_error,
)
from .base import (
    MAX_JOB_DESCRIPTION,
    RESULT_CHUNK_ROWS,
    TERMINAL_STATUSES,
    BatchInput,
    check_job_description,
    check_job_name,
    sliced_results,
)

CONTENT_TAG = "[sutro-sql:{key}]"
#: Function runs in flight per async client (see `_FunctionRuns`).
RUNS_PER_POOL = 2
#: Offer HTTP/2 (negotiated over TLS; plain HTTP stays 1.1) when its codec is installed.
HTTP2_AVAILABLE = importlib.util.find_spec("h2") is not None
#: Run the event loop on uvloop when it is installed (the [server] extra brings it): less CPU per run.
UVLOOP_AVAILABLE = importlib.util.find_spec("uvloop") is not None
RESULT_COLUMNS = ("inputs", "outputs", "confidence_score", "cumulative_logprobs", "error")
BODY_CHUNK = 1 << 20
SPOOL_IN_MEMORY = 8 << 20

M = TypeVar("M", bound=BaseModel)


class RemoteBackend:
    """The Backend protocol over a deployment's `/v1` API. The key stays inside the HTTP client."""

    def __init__(
        self,
        api_url: str | None = None,
        api_key: str | None = None,
        *,
        home: str | Path | None = None,
        timeout: float = 60.0,
        run_timeout: float = 100.0,
        max_concurrency: int = 16,
        retry: RetryPolicy | None = None,
        stream_idle_timeout: float = 120.0,
        reconnect_seconds: float = 60.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        """`transport`: what carries the requests (default: httpx's pooled HTTP transport); it
        must carry async requests too (`httpx.AsyncBaseTransport`), for Function runs. Tests
        pass one that calls the v1 ASGI app in-process; every request, retry and error mapping
        above it is the same code path as over a socket."""
        url, key = resolve_credentials(api_url, api_key)
        if max_concurrency < 1:
            raise ConfigurationError("max_concurrency must be at least 1")
        if transport is not None and not isinstance(transport, httpx.AsyncBaseTransport):
            raise ConfigurationError("transport: Function runs need an httpx.AsyncBaseTransport as well")
        self._url = url
        self._home = str(resolve_home(home))
        self._retry = retry or RetryPolicy()
        self.max_concurrency = max_concurrency
        self._slots = threading.BoundedSemaphore(max_concurrency)
        self._control_timeout = httpx.Timeout(timeout, connect=min(10.0, timeout))
        self._run_timeout = httpx.Timeout(run_timeout, connect=min(10.0, run_timeout))
        self._stream_timeout = httpx.Timeout(timeout, connect=min(10.0, timeout), read=stream_idle_timeout)
        self._reconnect_seconds = reconnect_seconds
        self._key = key
        self._client = httpx.Client(
            base_url=url + "/",
            headers={"Authorization": f"Key {key}"},
            timeout=self._control_timeout,
            # Streams hold a connection each without a slot: leave them room in the pool.
            limits=httpx.Limits(max_connections=max_concurrency + 8, max_keepalive_connections=max_concurrency + 8),
            trust_env=transport is None,  # proxies from the environment would bypass a given transport
            transport=transport,
        )
        self._transport = transport
        self._runs: _FunctionRuns | None = None
        self._runs_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"RemoteBackend(api_url={self._url!r})"

    @property
    def identity(self) -> str:
        return f"remote:{self._url}"

    @property
    def home(self) -> str:
        return self._home

    @property
    def api_url(self) -> str:
        return self._url

    # -- plumbing ---------------------------------------------------------

    def _request(
        self,
        method: str,
        path: str,
        *,
        what: str,
        idempotent: bool,
        timeout: httpx.Timeout | None = None,
        body_file: IO[bytes] | None = None,
        retries: bool = True,
        **kwargs: Any,
    ) -> httpx.Response:
        """One call under the concurrency bound and the retry policy (one attempt if not
        `retries`); non-2xx raises typed errors. A `body_file` is streamed, and re-read from its
        start on every attempt."""
        kwargs["timeout"] = timeout or self._control_timeout

        def send() -> httpx.Response:
            if body_file is not None:
                body_file.seek(0)
                return self._client.request(method, path, content=_file_chunks(body_file), **kwargs)
            return self._client.request(method, path, **kwargs)

        policy = self._retry if retries else dataclasses.replace(self._retry, max_retries=0)
        with self._slots:
            try:
                response = policy.send(send, idempotent=idempotent, what=what)
                raise_for_response(response, what=what)
            except SutroSQLError as exc:
                raise self._scrubbed(exc) from None
        return response

    def _answer(self, response: httpx.Response, model: type[M], *, what: str) -> M:
        """The body as its wire model; a body that is not JSON, or a field that does not fit the
        v1 contract, is a ServerError naming it (not a KeyError deep inside a caller)."""
        request_id = response.headers.get("x-request-id")
        try:
            body = response.json()
        except (ValueError, UnicodeDecodeError):
            raise ServerError(
                f"{what}: the server sent a malformed JSON body (HTTP {response.status_code})", request_id=request_id
            ) from None
        try:
            return model.model_validate(body)
        except PydanticValidationError as exc:
            raise ServerError(
                f"{what}: the server's answer does not fit the v1 contract: {field_error(exc)}", request_id=request_id
            ) from None

    def _scrubbed(self, exc: SutroSQLError) -> SutroSQLError:
        """The same error with the key masked, should a server ever echo it back."""
        if self._key in exc.detail:
            exc.detail = redact(exc.detail, self._key)
            exc.args = (exc.detail,)
        return exc

    # -- Functions ----------------------------------------------------------

    def run_function(
        self, name: str, input: dict[str, Any] | str, *, confidence_scoring: bool = True
    ) -> dict[str, Any]:
        runs = self._function_runs()
        return runs.call(self._run, runs, name, input, confidence_scoring)

    def run_function_many(
        self, name: str, inputs: list[dict[str, Any] | str], *, confidence_scoring: bool = True
    ) -> list[dict[str, Any] | SutroSQLError]:
        """Every input's run at once on the event loop (at most `max_concurrency` in flight), the
        `RunsFunctionsInBatches` capability: per input its answer or its own error; an error about
        the deployment rather than the input (auth, unknown Function, unreachable) raises."""
        runs = self._function_runs()
        return runs.call(self._run_many, runs, name, inputs, confidence_scoring)

    async def _run_many(
        self, runs: _FunctionRuns, name: str, inputs: list[dict[str, Any] | str], confidence_scoring: bool
    ) -> list[dict[str, Any] | SutroSQLError]:
        outcomes = await asyncio.gather(
            *(self._run(runs, name, x, confidence_scoring) for x in inputs), return_exceptions=True
        )
        for outcome in outcomes:
            if isinstance(outcome, BaseException) and (not isinstance(outcome, SutroSQLError) or outcome.fatal):
                raise outcome
        return outcomes  # type: ignore[return-value]  # only answers and row errors are left

    async def _run(
        self, runs: _FunctionRuns, name: str, input: dict[str, Any] | str, confidence_scoring: bool
    ) -> dict[str, Any]:
        """One Function run, on the loop, under the concurrency bound and the retry policy."""
        if isinstance(input, BaseModel):  # a pydantic model, as the SDK accepts
            input = input.model_dump(mode="json")
        body: dict[str, Any] = {"input": input}
        if not confidence_scoring:  # sent only when false, like the SDK (older deployments)
            body["confidence_scoring"] = False
        what = f"Function {name!r}"
        request = httpx.Request(
            "POST",
            f"{self._url}/functions/{_segment(name)}/run",
            headers={"Authorization": f"Key {self._key}"},
            json=body,
            extensions={"timeout": self._run_timeout.as_dict()},
        )
        async with runs.lane() as transport:
            try:
                response = await self._retry.send_async(
                    lambda: _send_read(transport, request), idempotent=False, what=what
                )
                raise_for_response(response, what=what)
            except SutroSQLError as exc:
                raise self._scrubbed(exc) from None
        return self._answer(response, RunFunctionResponse, what=what).model_dump(exclude_unset=True)

    def _function_runs(self) -> _FunctionRuns:
        """The event loop and async clients of Function runs, started by the first run (a backend
        that only lists jobs never starts a thread)."""
        with self._runs_lock:
            if self._runs is None:
                self._runs = _FunctionRuns(self._run_transport_factory(), self.max_concurrency)
            return self._runs

    def _run_transport_factory(self) -> Callable[[int], httpx.AsyncBaseTransport]:
        """What makes a pool of `n` connections: the given transport (shared), else httpx's own,
        through the environment's proxy for this URL if any (as the control client's
        `trust_env`), all sharing one TLS context (building one costs ~60 ms: the CA bundle)."""
        if self._transport is not None:
            given: Any = self._transport  # checked in __init__: it carries async requests too
            return lambda n: given
        tls = httpx.create_ssl_context()
        proxy = _environment_proxy(self._url)

        def pool(connections: int) -> httpx.AsyncBaseTransport:
            limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
            return httpx.AsyncHTTPTransport(verify=tls, http2=HTTP2_AVAILABLE, limits=limits, proxy=proxy)

        return pool

    def get_function_spec(self, name: str) -> FunctionSpec | None:
        return None  # a deployment's Functions are known by name only

    # -- batch jobs ---------------------------------------------------------

    def submit_batch(
        self,
        name: str,
        data: BatchInput,
        *,
        job_priority: int = 0,
        dry_run: bool = False,
        job_name: str | None = None,
        description: str | None = None,
        id_column: str | None = None,
        content_key: str | None = None,
    ) -> str:
        check_job_name(job_name)
        tag = _content_tag(content_key, dry_run=dry_run) if content_key is not None else None
        description = _tagged_description(description, tag)
        if tag is not None:
            existing = self._job_with_tag(tag)
            if existing is not None:
                return existing
        fields: dict[str, Any] = {
            "model": name,
            "job_priority": job_priority,
            "json_schema": None,
            "system_prompt": None,
            "cost_estimate": bool(dry_run),
            "sampling_params": None,
            "random_seed_per_input": False,
            "truncate_rows": False,
            "name": job_name,
            "description": description,
        }
        if id_column is not None:
            fields["id_column_name"] = id_column
        what = f"batch job for Function {name!r}"
        with tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY) as body:
            size = _write_batch_body(body, fields, data, id_column=id_column)
            response = self._request(
                "POST",
                "batch-inference",
                what=what,
                idempotent=False,
                body_file=body,
                headers={"Content-Type": "application/json", "Content-Length": str(size)},
            )
        if response.status_code != 200:  # the SDK treats any other 2xx as a failure too
            raise ServerError(f"{what}: expected HTTP 200, got {response.status_code}")
        return self._answer(response, JobCreated, what=what).results

    def find_job(self, content_key: str, *, dry_run: bool = False) -> str | None:
        """The live job tagged with `content_key` (the `FindsJobsByContent` capability)."""
        return self._job_with_tag(_content_tag(content_key, dry_run=dry_run))

    def _job_with_tag(self, tag: str) -> str | None:
        for job in self.list_jobs():
            if (job.get("description") or "").endswith(tag) and job.get("status") not in ("FAILED", "CANCELLED"):
                return job["job_id"]
        return None

    def get_job_status(self, job_id: str) -> str:
        what = f"job {job_id}"
        response = self._request("GET", f"job-status/{_segment(job_id)}", what=what, idempotent=True)
        status = self._answer(response, JobStatusReply, what=what).job_status.get(job_id)
        if status is None:
            raise ServerError(f"{what}: the status answer does not name this job")
        return status

    def get_job(self, job_id: str) -> dict[str, Any]:
        what = f"job {job_id}"
        response = self._request("GET", f"jobs/{_segment(job_id)}", what=what, idempotent=True)
        return self._answer(response, JobReply, what=what).job.model_dump()

    def results_download_url(
        self,
        job_id: str,
        *,
        include_inputs: bool = False,
        include_cumulative_logprobs: bool = False,
        expires_in_seconds: int = 3600,
    ) -> dict[str, Any]:
        """v1 §5.7: presigned URLs of the job's results file (the `ServesResultArtifacts` capability)."""
        what = f"results URL of job {job_id}"
        params = {
            "format": "parquet",
            "include_inputs": include_inputs,
            "include_cumulative_logprobs": include_cumulative_logprobs,
            "expires_in_seconds": expires_in_seconds,
        }
        response = self._request(
            "GET", f"jobs/{_segment(job_id)}/results-url", what=what, idempotent=True, params=params
        )
        return self._answer(response, ResultsUrl, what=what).model_dump()

    def stream_job_progress(self, job_id: str) -> Iterator[dict[str, Any]]:
        """Progress events until the job is terminal. A stream that ends or drops early is
        re-opened (the job's status decides); a server that is down or answering 5xx (a restart,
        a deploy) is waited for, up to `reconnect_seconds`."""
        what = f"progress of job {job_id}"
        path = f"stream-job-progress/{_segment(job_id)}"
        attempt, down_since = 0, None
        while True:
            try:
                with self._client.stream("GET", path, timeout=self._stream_timeout) as response:
                    if not response.is_success:
                        response.read()
                        try:
                            raise_for_response(response, what=what)
                        except SutroSQLError as exc:
                            raise self._scrubbed(exc) from None
                    attempt, down_since = 0, None
                    for line in response.iter_lines():
                        event = _event(line, what=what)
                        if event is not None:
                            yield event
                status = self.get_job_status(job_id)
            except (httpx.TransportError, BackendUnavailableError, ServerError) as exc:
                if isinstance(exc, ServerError) and exc.status_code not in RETRYABLE_STATUS:
                    raise
                # The stream failed, but the job may be over: ask before trying again.
                if self._status_now(job_id) in TERMINAL_STATUSES:
                    return
                down_since = down_since or time.monotonic()
                if time.monotonic() - down_since > self._reconnect_seconds:
                    raise BackendUnavailableError(f"{what}: server unreachable ({type(exc).__name__})") from None
                self._retry.sleep(min(2.0, self._retry.backoff(attempt)))
                attempt += 1
                continue
            if status in TERMINAL_STATUSES:
                return
            self._retry.sleep(0.2)  # the stream closed early (a restarting server): open it again

    def _status_now(self, job_id: str) -> str | None:
        """The job's status in one attempt, or None while the server cannot say (down, 5xx)."""
        try:
            response = self._request(
                "GET", f"job-status/{_segment(job_id)}", what=f"job {job_id}", idempotent=True, retries=False
            )
            return self._answer(response, JobStatusReply, what=f"job {job_id}").job_status.get(job_id)
        except (BackendUnavailableError, ServerError):
            return None

    def get_job_results(
        self, job_id: str, *, include_inputs: bool = False, include_cumulative_logprobs: bool = False
    ) -> pa.Table:
        what = f"results of job {job_id}"
        body = {
            "job_id": job_id,
            "include_inputs": include_inputs,
            "include_cumulative_logprobs": include_cumulative_logprobs,
        }
        body["include_errors"] = True  # sutro-sql serve adds per-row errors; other deployments ignore it
        response = self._request("POST", "job-results", what=what, idempotent=True, json=body)
        columns = self._answer(response, JobResults, what=what).results.root
        return _results_table(columns, include_inputs=include_inputs, include_logprobs=include_cumulative_logprobs)

    def iter_job_results(
        self,
        job_id: str,
        *,
        include_inputs: bool = False,
        include_cumulative_logprobs: bool = False,
        chunk_rows: int = RESULT_CHUNK_ROWS,
    ) -> Iterator[pa.RecordBatch]:
        """The v1 results call answers a job in one piece: its table, sliced."""
        table = self.get_job_results(
            job_id, include_inputs=include_inputs, include_cumulative_logprobs=include_cumulative_logprobs
        )
        return sliced_results(table, chunk_rows)

    def cancel_job(self, job_id: str) -> None:
        what = f"cancel job {job_id}"
        response = self._request("GET", f"job-cancel/{_segment(job_id)}", what=what, idempotent=True)
        self._answer(response, CancelReply, what=what)

    def list_jobs(self) -> list[dict[str, Any]]:
        response = self._request("GET", "list-jobs", what="list jobs", idempotent=True)
        return [job.model_dump() for job in self._answer(response, JobList, what="list jobs").jobs]

    def get_quotas(self) -> list[dict[str, Any]]:
        response = self._request("GET", "get-quotas", what="quotas", idempotent=True)
        return [quota.model_dump() for quota in self._answer(response, QuotasReply, what="quotas").quotas]

    def check_auth(self) -> bool:
        try:
            response = self._request("GET", "auth/check", what="auth check", idempotent=True)
        except AuthenticationError:
            return False
        return self._answer(response, AuthReply, what="auth check").authenticated is True

    def close(self) -> None:
        with self._runs_lock:
            runs, self._runs = self._runs, None
        if runs is not None:
            runs.close()
        self._client.close()

    def __enter__(self) -> RemoteBackend:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class _FunctionRuns:
    """An event loop on its own thread, the transports that live on it, and the lanes: a run in
    flight holds one, so there are never more than `max_concurrency`. Threads hand the loop
    coroutines with `call` and wait for the answers.

    Each lane belongs to one of several small connection pools (`RUNS_PER_POOL` lanes each)
    rather than all to one big pool: httpcore's pool scans every connection (and every queued
    request) on every request, so one pool of 64 connections spent 4.7 ms of CPU per run against
    0.65 ms for pools of 2 (and ran at a third of the rate of 8 in flight); a pool here never
    queues. Runs go to the transport itself, not through `httpx.AsyncClient`, whose per-request
    URL merging and cookie handling (unused here) cost another 0.15 ms of CPU per run."""

    def __init__(self, make_pool: Callable[[int], httpx.AsyncBaseTransport], max_concurrency: int) -> None:
        # A daemon thread: an interpreter exiting with a backend never closed is not held up by it.
        self._loop = _new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="sutro-remote-runs", daemon=True)
        self._thread.start()
        pools = -(-max_concurrency // RUNS_PER_POOL)
        self._pools = [make_pool(RUNS_PER_POOL) for _ in range(pools)]
        # LIFO: a light load keeps reusing the same warm connections
        self._lanes: asyncio.LifoQueue[httpx.AsyncBaseTransport] = asyncio.LifoQueue()
        for index in range(max_concurrency):
            self._lanes.put_nowait(self._pools[index % pools])

    @contextlib.asynccontextmanager
    async def lane(self) -> AsyncIterator[httpx.AsyncBaseTransport]:
        """Wait for a free lane; the transport to send on while holding it."""
        pool = await self._lanes.get()
        try:
            yield pool
        finally:
            self._lanes.put_nowait(pool)

    def call(self, fn: Callable[..., Awaitable[Any]], *args: Any) -> Any:
        """Run `fn(*args)` on the loop and wait for its result (or its exception)."""
        return asyncio.run_coroutine_threadsafe(fn(*args), self._loop).result()

    def close(self) -> None:
        """Close the connections (runs still in flight fail), cancel what still waits (for a lane,
        or out a Retry-After), and end the loop: closing never waits for a run to finish."""
        self.call(self._shut_down)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()

    async def _shut_down(self) -> None:
        for pool in dict.fromkeys(self._pools):  # a given transport is shared by every lane
            await pool.aclose()
        others = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        for task in others:
            task.cancel()
        await asyncio.gather(*others, return_exceptions=True)


def _new_event_loop() -> asyncio.AbstractEventLoop:
    if UVLOOP_AVAILABLE:
        import uvloop

        return uvloop.new_event_loop()
    return asyncio.new_event_loop()


async def _send_read(transport: httpx.AsyncBaseTransport, request: httpx.Request) -> httpx.Response:
    """One attempt: the response read whole (a body cut short is this attempt's transport error)."""
    response = await transport.handle_async_request(request)
    response.request = request
    try:
        await response.aread()
    finally:
        await response.aclose()
    return response


def _environment_proxy(url: str) -> str | None:
    """The proxy the environment (HTTPS_PROXY, ALL_PROXY, NO_PROXY, ...) names for `url`, if any."""
    parts = urlsplit(url)
    proxies = urllib.request.getproxies()
    if not proxies or urllib.request.proxy_bypass(parts.hostname or ""):
        return None
    return proxies.get(parts.scheme) or proxies.get("all")


def _segment(value: str) -> str:
    """A path segment: names and job ids are URL-safe already; anything else cannot escape the path."""
    return quote(str(value), safe="")


def _content_tag(content_key: str, *, dry_run: bool) -> str:
    """The description tag of a keyed job; estimates get their own, so a real run never
    re-attaches to a cost estimate of the same rows."""
    return CONTENT_TAG.format(key=f"estimate:{content_key}" if dry_run else content_key)


def _tagged_description(description: str | None, tag: str | None) -> str | None:
    if tag is None:
        check_job_description(description)
        return description
    if len(tag) > MAX_JOB_DESCRIPTION:
        raise ValidationError("content_key is too long to fit in a job description")
    if not description:
        return tag
    room = MAX_JOB_DESCRIPTION - len(tag) - 1
    return f"{description[:room]} {tag}"


def _file_chunks(body: IO[bytes]) -> Iterator[bytes]:
    while chunk := body.read(BODY_CHUNK):
        yield chunk


def _write_batch_body(out: IO[bytes], fields: dict[str, Any], data: BatchInput, *, id_column: str | None) -> int:
    """Write the batch-inference JSON body, rows streamed from `data`; returns the body size.

    An http(s) URL string is sent as the URL (the deployment downloads it); a local
    .csv/.parquet path is read in record batches, never whole.
    """
    if isinstance(data, str) and data.startswith(("http://", "https://")):
        payload = json.dumps({**fields, "inputs": data}).encode()
        out.write(payload)
        return len(payload)
    head = json.dumps(fields)
    out.write(head[:-1].encode() + b', "inputs": [')
    count = 0
    for row in (row for batch in iter_row_batches(data) for row in batch):
        if id_column is not None and isinstance(row, dict) and id_column not in row:
            raise ValidationError(f"id_column: row {count} has no column {id_column!r}")
        if count:
            out.write(b",")
        out.write(json.dumps(row, default=str, ensure_ascii=False).encode())
        count += 1
    out.write(b"]}")
    if count == 0:
        raise ValidationError("inputs: a batch needs at least one row")
    return out.tell()


def _event(line: str, *, what: str) -> dict[str, Any] | None:
    """One NDJSON progress line as its wire model's dict. Blank, non-JSON, untyped and unknown
    `update_type` lines are skipped, as the SDK does; a known event with a bad field is a
    ServerError naming it."""
    if not line.strip():
        return None
    try:
        event = json.loads(line)
    except ValueError:
        return None
    if not isinstance(event, dict) or event.get("update_type") not in EVENT_TYPES:
        return None
    try:
        return STREAM_EVENT.validate_python(event).model_dump()
    except PydanticValidationError as exc:
        raise ServerError(f"{what}: a progress event does not fit the v1 contract: {field_error(exc)}") from None


def _json_text(value: Any) -> str | None:
    return value if value is None or isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _results_table(columns: dict[str, list[Any]], *, include_inputs: bool, include_logprobs: bool) -> pa.Table:
    """v1 result columns (checked by `wire.ResultColumns`) -> [inputs], [id columns], outputs,
    confidence_score, [cumulative_logprobs], error."""
    outputs = [_json_text(v) for v in columns["outputs"]]
    arrays: dict[str, pa.Array] = {}
    if include_inputs and "inputs" in columns:
        arrays["inputs"] = pa.array([_json_text(v) for v in columns["inputs"]], pa.string())
    for name, values in columns.items():
        if name not in RESULT_COLUMNS:
            try:
                arrays[name] = pa.array(values)
            except (pa.ArrowInvalid, pa.ArrowTypeError):
                arrays[name] = pa.array([_json_text(v) for v in values], pa.string())
    arrays["outputs"] = pa.array(outputs, pa.string())
    scores = columns.get("confidence_score") or [None] * len(outputs)
    arrays["confidence_score"] = pa.array([None if s is None else float(s) for s in scores], pa.float64())
    if include_logprobs:
        logprobs = columns.get("cumulative_logprobs") or [None] * len(outputs)
        arrays["cumulative_logprobs"] = pa.array([None if v is None else float(v) for v in logprobs], pa.float64())
    if isinstance(columns.get("error"), list):
        errors = [None if e is None else str(e) for e in columns["error"]]
    else:  # a deployment without per-row errors marks a failed row by a null output
        errors = [None if o is not None else "the deployment returned no answer for this row" for o in outputs]
    arrays["error"] = pa.array(errors, pa.string())
    return pa.table(arrays)
