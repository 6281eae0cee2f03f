"""The Client: the official Sutro SDK's Function surface over any Backend.

`run_function`, `batch_run_function`, `await_job_completion`,
`get_job_results`, `get_job_status`, `cancel_job` and `list_jobs` take the
SDK's arguments and mean what they mean there (sutro-api-v1.md §6-§7), so
code written against `sutro` runs here against a Sutro deployment
(RemoteBackend) or the embedded local one (LocalBackend).

Where it differs from the SDK, on purpose: failures raise typed errors
instead of printing and returning None. A job that ends FAILED or CANCELLED
raises `JobFailedError` naming the failure reason; a wait that runs out
raises `JobTimeoutError`; invalid arguments raise `ValidationError` /
`TypeError` before anything is sent.
"""

from __future__ import annotations

import functools
import inspect
import logging
import os
import queue
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
from pydantic import BaseModel

from . import environment
from .backends.base import MAX_JOB_DESCRIPTION, MAX_JOB_NAME, TERMINAL_STATUSES, Backend
from .config import resolve_home
from .errors import (
    BackendUnavailableError,
    ConfigurationError,
    JobFailedError,
    JobTimeoutError,
    NotFoundError,
    ServerError,
    ValidationError,
)
from .functions import FunctionSpec, output_arrow_schema, parse_spec
from .progress import ProgressBar
from .results import job_results_frame

BATCH_FILE_SUFFIXES = (".csv", ".parquet")

logger = logging.getLogger("sutro_sql.client")


def default_backend(
    home: str | os.PathLike[str] | None = None,
    api_url: str | None = None,
    api_key: str | None = None,
    *,
    start_workers: bool = True,
) -> Backend:
    """The backend the environment asks for: explicit arguments beat SUTRO_API_URL/SUTRO_API_KEY;
    a URL and a key -> RemoteBackend; neither -> the embedded LocalBackend in `resolve_home(home)`.

    `start_workers=False` opens a local home without batch workers, for callers that only read
    (listing jobs or Functions) and must not pick up other processes' abandoned jobs."""
    url = api_url or environment.get(environment.API_URL)
    key = api_key or environment.get(environment.API_KEY)
    if url and key:
        from .backends.remote import RemoteBackend

        return RemoteBackend(url, key, home=home)
    if url or key:
        given, missing = (
            (environment.API_URL, environment.API_KEY) if url else (environment.API_KEY, environment.API_URL)
        )
        raise ConfigurationError(
            f"A remote deployment needs both {environment.API_URL} and {environment.API_KEY}: {given} is set "
            f"(or passed) but {missing} is not. Set {missing} (or pass it), or unset {given} "
            "to use the embedded local deployment."
        )
    from .backends.local import LocalBackend

    return LocalBackend(resolve_home(home), start_workers=start_workers)


class FunctionRunResult(dict):
    """The v1 run response (a dict, so every field survives) with the SDK's properties."""

    @property
    def output(self) -> Any:
        return self.get("output")

    @property
    def confidence(self) -> float | None:
        return self.get("confidence")

    @property
    def usage(self) -> dict[str, Any]:
        return self.get("usage") or {}

    @property
    def request_id(self) -> str | None:
        return self.get("request_id")

    @property
    def function(self) -> dict[str, Any]:
        return self.get("function") or {}


class Client:
    """The SDK's Function surface over one Backend (the environment's default when none is given).

    `progress`: None shows bars on a terminal only (see `sutro_sql.progress`), True/False force.
    A Client that built its own backend closes it in `close()`.
    """

    #: Seconds between status polls once a progress stream has ended without a final status.
    poll_interval: float = 1.0

    def __init__(
        self,
        backend: Backend | None = None,
        *,
        home: str | os.PathLike[str] | None = None,
        api_url: str | None = None,
        api_key: str | None = None,
        progress: bool | None = None,
    ) -> None:
        if backend is not None and (home is not None or api_url or api_key):
            raise ConfigurationError("Pass either a backend or home/api_url/api_key to Client, not both.")
        self._owns_backend = backend is None
        self.backend: Backend = backend if backend is not None else default_backend(home, api_url, api_key)
        self.progress = progress
        self._output_columns: dict[str, str] = {}  # job id -> output_column given at submission

    def close(self) -> None:
        if self._owns_backend:
            self.backend.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- real time -----------------------------------------------------------------------------

    def run_function(
        self, name: str, input_data: dict[str, Any] | str | BaseModel, *, confidence_scoring: bool = True
    ) -> FunctionRunResult:
        """Run Function `name` once (v1 §5.1). `input_data`: a dict, a string (one-input Functions)
        or a pydantic model (sent as `model_dump(mode="json")`)."""
        if isinstance(input_data, BaseModel):
            input_data = input_data.model_dump(mode="json")
        if not isinstance(input_data, (dict, str)):
            raise TypeError(f"input_data must be a dict, a str or a pydantic model, not {type(input_data).__name__}")
        answer = self.backend.run_function(name, input_data, confidence_scoring=confidence_scoring)
        return FunctionRunResult(answer)

    # -- batch ---------------------------------------------------------------------------------

    def batch_run_function(
        self,
        name: str,
        data: Any,
        job_priority: int | None = 0,
        output_column: str = "inference_result",
        dry_run: bool = False,
        stay_attached: bool = False,
        job_name: str | None = None,
        description: str | None = None,
        id_column: str | None = None,
    ) -> str:
        """Submit a batch job running Function `name` over `data`; returns the job id.

        `data`: a list of row dicts, a pandas or polars DataFrame, a pyarrow Table or
        RecordBatchReader, or a local .csv/.parquet path (files and Arrow stream to the backend).
        `dry_run=True` waits for the cost estimate, prints ``$<cost>`` to stderr and returns the
        estimate job's id. `stay_attached=True` shows a progress bar and waits for the job.
        `id_column` names an input column carried into the results under its own name.
        `output_column` is remembered for `await_job_completion(job_id)`: it names the answer
        column when the answers are not JSON objects (objects unpack into one column per field).
        Unlike the SDK, an attached job that fails raises JobFailedError instead of returning None.
        """
        if job_name is not None and len(job_name) > MAX_JOB_NAME:
            raise ValidationError(f"Job name cannot exceed {MAX_JOB_NAME} characters (got {len(job_name)}).")
        if description is not None and len(description) > MAX_JOB_DESCRIPTION:
            raise ValidationError(
                f"Job description cannot exceed {MAX_JOB_DESCRIPTION} characters (got {len(description)})."
            )
        rows = batch_input(data, id_column=id_column)
        job_id = self.backend.submit_batch(
            name,
            rows,
            job_priority=0 if job_priority is None else job_priority,
            dry_run=dry_run,
            job_name=job_name,
            description=description,
            id_column=id_column,
        )
        self._output_columns[job_id] = output_column
        if dry_run:
            job = self.wait_for_job(job_id, progress=False)
            print(f"Cost estimates retrieved for job {job_id}: ${job.get('cost_estimate')}", file=sys.stderr)
        elif stay_attached:
            try:
                self.wait_for_job(job_id)
            except KeyboardInterrupt:
                print(
                    f"Detached from job {job_id}; it keeps running. Reattach with wait_for_job({job_id!r}).",
                    file=sys.stderr,
                )
                raise
        return job_id

    def wait_for_job(
        self, job_id: str, *, timeout: float | None = None, progress: bool | None = None
    ) -> dict[str, Any]:
        """Wait until the job is SUCCEEDED and return its final job object, showing a progress bar
        fed by the backend's progress stream. Raises JobFailedError on FAILED/CANCELLED and
        JobTimeoutError when `timeout` seconds pass first (the job keeps running)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        job = self.backend.get_job(job_id)
        enabled = self.progress if progress is None else progress
        label = job.get("name") or job.get("model") or job_id
        with ProgressBar(job.get("num_rows"), label, enabled=enabled) as bar:
            bar.update(job.get("rows_done") or 0)
            if job["status"] not in TERMINAL_STATUSES:
                self._follow_progress(job_id, bar, deadline)
                job = self._poll_until_terminal(job_id, deadline)
                bar.update(job.get("rows_done") or bar.done)
        if job["status"] != "SUCCEEDED":
            reason = (job.get("failure_reason") or {}).get("message") or "no reason given"
            raise JobFailedError(f"Job {job_id} ended {job['status']}: {reason}")
        return job

    def _follow_progress(self, job_id: str, bar: ProgressBar, deadline: float | None) -> None:
        """Feed the bar from the progress stream until it ends, the job is terminal, or time runs out.
        A broken stream only costs the bar its updates: the caller goes on polling the status."""
        done = bar.done
        try:
            for event in _events_until(self.backend.stream_job_progress(job_id), deadline, job_id):
                kind, result = event.get("update_type"), event.get("result")
                if kind == "progress" and isinstance(result, int):
                    done = result
                    bar.update(done)
                elif kind == "tokens" and isinstance(result, dict):
                    bar.update(done, input_tokens=result.get("input_tokens"), output_tokens=result.get("output_tokens"))
                elif kind == "heartbeat" and self.backend.get_job_status(job_id) in TERMINAL_STATUSES:
                    return
        except (BackendUnavailableError, ServerError) as exc:
            logger.warning("progress stream of job %s broke (%s); polling its status instead", job_id, exc)

    def _poll_until_terminal(self, job_id: str, deadline: float | None) -> dict[str, Any]:
        """A stream that ends does not prove the job ended (v1 §5.5): confirm with get_job."""
        while True:
            job = self.backend.get_job(job_id)
            if job["status"] in TERMINAL_STATUSES:
                return job
            if deadline is not None and time.monotonic() >= deadline:
                raise _timeout(job_id)
            pause = self.poll_interval if deadline is None else min(self.poll_interval, deadline - time.monotonic())
            time.sleep(max(pause, 0.0))

    def await_job_completion(
        self,
        job_id: str,
        timeout: float | None = 7200,
        obtain_results: bool = True,
        output_column: str | None = None,
        is_cost_estimate: bool = False,
        unwrap_reasoning: bool = False,
    ) -> Any:
        """Wait for the job (SDK §7.5) and return its results as a polars DataFrame, or None
        when `obtain_results=False`. Unlike the SDK, FAILED/CANCELLED raise JobFailedError
        (naming the failure reason) and a timeout raises JobTimeoutError instead of returning None.
        `is_cost_estimate` is accepted for the SDK's signature and, as there, changes nothing."""
        self.wait_for_job(job_id, timeout=timeout)
        if not obtain_results:
            return None
        return self.get_job_results(
            job_id, output_column=output_column or self._output_column(job_id), unwrap_reasoning=unwrap_reasoning
        )

    def get_job_results(
        self,
        job_id: str,
        include_inputs: bool = False,
        include_cumulative_logprobs: bool = False,
        with_original_df: Any = None,
        output_column: str = "inference_result",
        disable_cache: bool = False,
        unpack_json: bool = True,
        unwrap_reasoning: bool = False,
    ) -> Any:
        """The results of a SUCCEEDED job in input order, shaped as the SDK shapes them (§7.8),
        with the SDK's parameters in its order: JSON answers unpacked into columns added at the
        end, after `confidence_score`; joined onto `with_original_df` when given (pandas in,
        pandas out; otherwise polars). `unwrap_reasoning` flattens legacy
        ``{"content": {...}, "reasoning_content": ...}`` answers. `disable_cache` is accepted for
        the SDK's signature: this client keeps no results cache, so every call reads the backend."""
        raw = self.backend.get_job_results(
            job_id, include_inputs=include_inputs, include_cumulative_logprobs=include_cumulative_logprobs
        )
        return job_results_frame(
            raw,
            include_inputs=include_inputs,
            include_cumulative_logprobs=include_cumulative_logprobs,
            output_column=output_column,
            unpack_json=unpack_json,
            unwrap_reasoning=unwrap_reasoning,
            with_original_df=with_original_df,
            output_schema=self._output_schema(job_id) if unpack_json else None,
        )

    def get_job_status(self, job_id: str) -> str:
        return self.backend.get_job_status(job_id)

    def get_job(self, job_id: str) -> dict[str, Any]:
        return self.backend.get_job(job_id)

    def cancel_job(self, job_id: str) -> None:
        """Ask the job to stop; it moves to CANCELLING, then CANCELLED."""
        self.backend.cancel_job(job_id)

    def list_jobs(self) -> list[dict[str, Any]]:
        """Job objects, newest first."""
        return self.backend.list_jobs()

    def get_quotas(self) -> list[dict[str, Any]]:
        return self.backend.get_quotas()

    def publish_function(self, spec: FunctionSpec | dict[str, Any]) -> FunctionSpec:
        """Publish a local Function (a FunctionSpec or its mapping) to the embedded deployment."""
        publish = getattr(self.backend, "publish", None)
        if publish is None:
            raise ConfigurationError(
                "publish_function works on the embedded local deployment only; Functions on a "
                "Sutro deployment are published in Sutro itself."
            )
        return publish(spec if isinstance(spec, FunctionSpec) else parse_spec(spec))

    def _output_column(self, job_id: str) -> str:
        return self._output_columns.get(job_id, "inference_result")

    def _output_schema(self, job_id: str) -> pa.Schema | None:
        """Typed output columns when the backend knows the job's Function and it is an extractor."""
        name = self.backend.get_job(job_id).get("model")
        if not name:
            return None
        try:
            spec = self.backend.get_function_spec(name)
        except NotFoundError:  # the Function was removed since the job ran
            return None
        return output_arrow_schema(spec) if spec is not None and spec.kind == "extraction" else None


def batch_input(data: Any, *, id_column: str | None = None) -> Any:
    """What `batch_run_function` hands the backend: DataFrames become Arrow tables, paths and
    Arrow pass through (the backend streams them), lists of rows pass as they are."""
    if isinstance(data, os.PathLike):
        data = os.fspath(data)
    if isinstance(data, str):
        return _batch_file(data, id_column)
    pandas = sys.modules.get("pandas")
    polars = sys.modules.get("polars")
    if pandas is not None and isinstance(data, pandas.DataFrame):
        data = pa.Table.from_pandas(data, preserve_index=False)
    elif polars is not None and isinstance(data, polars.DataFrame):
        data = data.to_arrow()
    if isinstance(data, (pa.Table, pa.RecordBatchReader)):
        _check_id_column(id_column, data.schema.names, "the data")
        return data
    if isinstance(data, (list, tuple)):
        return data
    raise TypeError(
        "data must be a list of dicts, a pandas or polars DataFrame, a pyarrow Table, or a path to "
        f"a .csv/.parquet file, not {type(data).__name__}"
    )


def _batch_file(path: str, id_column: str | None) -> str:
    if path.startswith(("http://", "https://")):
        return path  # a URL: the deployment downloads it (v1 §5.2)
    suffix = Path(path).suffix.lower()
    if suffix not in BATCH_FILE_SUFFIXES:
        raise ValidationError(f"{path}: batch input files must be .csv or .parquet.")
    if not Path(path).is_file():
        raise ValidationError(f"{path}: no such file.")
    if id_column is not None and suffix == ".parquet":
        import pyarrow.parquet as pq

        _check_id_column(id_column, pq.read_schema(path).names, path)
    return path


def _check_id_column(id_column: str | None, columns: list[str], where: str) -> None:
    if id_column is not None and id_column not in columns:
        raise ValidationError(f"id_column {id_column!r} is not a column of {where} (columns: {columns}).")


def _events_until(events: Iterator[dict[str, Any]], deadline: float | None, job_id: str) -> Iterator[dict[str, Any]]:
    """Yield stream events, but give up at `deadline` even while the stream is silent.

    The stream is read on a daemon thread so a quiet stream cannot block past the deadline;
    an error raised by the stream is re-raised here."""
    if deadline is None:
        yield from events
        return
    inbox: queue.Queue[tuple[str, Any]] = queue.Queue()

    def pump() -> None:
        try:
            for event in events:
                inbox.put(("event", event))
            inbox.put(("end", None))
        except BaseException as exc:  # handed to the waiting thread
            inbox.put(("error", exc))

    threading.Thread(target=pump, name=f"sutro-progress-{job_id}", daemon=True).start()
    while True:
        try:
            kind, value = inbox.get(timeout=max(deadline - time.monotonic(), 0.0))
        except queue.Empty:
            raise _timeout(job_id) from None
        if kind == "end":
            return
        if kind == "error":
            raise value
        yield value


def _timeout(job_id: str) -> JobTimeoutError:
    return JobTimeoutError(f"Timed out waiting for job {job_id}; it keeps running (see get_job_status).")


# -- module-level functions on a lazily created default client ------------------------------------

_default_client: Client | None = None
_default_lock = threading.Lock()


def get_default_client() -> Client:
    """The Client the module-level functions use, built from the environment on first use."""
    global _default_client
    with _default_lock:
        if _default_client is None:
            _default_client = Client()
        return _default_client


def set_default_client(client: Client | None) -> None:
    """Replace (or, with None, forget) the default client; the old one is not closed."""
    global _default_client
    with _default_lock:
        _default_client = client


def _on_default_client(method: Callable[..., Any]) -> Callable[..., Any]:
    """A module-level twin of a Client method, acting on the default client, same signature."""

    @functools.wraps(method)
    def call(*args: Any, **kwargs: Any) -> Any:
        return method(get_default_client(), *args, **kwargs)

    signature = inspect.signature(method)
    call.__signature__ = signature.replace(parameters=list(signature.parameters.values())[1:])  # type: ignore[attr-defined]
    return call


run_function = _on_default_client(Client.run_function)
batch_run_function = _on_default_client(Client.batch_run_function)
await_job_completion = _on_default_client(Client.await_job_completion)
get_job_results = _on_default_client(Client.get_job_results)
get_job_status = _on_default_client(Client.get_job_status)
cancel_job = _on_default_client(Client.cancel_job)
list_jobs = _on_default_client(Client.list_jobs)
wait_for_job = _on_default_client(Client.wait_for_job)
publish_function = _on_default_client(Client.publish_function)
