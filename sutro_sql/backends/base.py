"""The Backend protocol: the one seam between sutro-sql and wherever Functions run.

It mirrors the v1 HTTP API (../shared/sutro-api-v1.md) call for call, with the
same payload shapes, so RemoteBackend is a thin httpx client, the v1 server is
a thin layer over LocalBackend, and everything above (Client, SQL, dbt, CLI)
works the same on both. Errors are the typed exceptions of `sutro_sql.errors`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, Protocol, runtime_checkable

import pyarrow as pa

from ..errors import SutroSQLError, ValidationError
from ..functions import FunctionSpec

#: Job statuses on the wire (v1 §4.1), uppercase.
TERMINAL_STATUSES = frozenset({"SUCCEEDED", "FAILED", "CANCELLED"})
JOB_STATUSES = ("UNKNOWN", "QUEUED", "STARTING", "RUNNING", "SUCCEEDED", "CANCELLING", "CANCELLED", "FAILED")
#: Rows per record batch of a job's streamed results (`Backend.iter_job_results`).
RESULT_CHUNK_ROWS = 8_192
#: Longest job name and job description a batch submission may carry (v1 §5.2), in characters.
MAX_JOB_NAME = 45
MAX_JOB_DESCRIPTION = 512


def check_job_name(job_name: str | None) -> None:
    """The v1 bound on a job name, checked the same way by every backend."""
    if job_name is not None and len(job_name) > MAX_JOB_NAME:
        raise ValidationError(f"name: job names are at most {MAX_JOB_NAME} characters, got {len(job_name)}")


def check_job_priority(job_priority: int | None) -> int:
    """The v1 job priorities (0: prototyping, 1: production); None means 0."""
    if job_priority is None:
        return 0
    if isinstance(job_priority, bool) or job_priority not in (0, 1):
        raise ValidationError(f"job_priority: must be 0 or 1, got {job_priority!r}")
    return job_priority


def check_job_description(description: str | None) -> None:
    """The v1 bound on a job description, checked the same way by every backend."""
    if description is not None and len(description) > MAX_JOB_DESCRIPTION:
        raise ValidationError(f"description: at most {MAX_JOB_DESCRIPTION} characters, got {len(description)}")


#: A batch input: rows as dicts (a list, or any iterable of them, streamed), or
#: an Arrow RecordBatchReader / Table whose columns are the Function's inputs,
#: or a local .csv/.parquet path.
BatchInput = Iterable[dict[str, Any]] | pa.RecordBatchReader | pa.Table | str


@runtime_checkable
class Backend(Protocol):
    """Where Functions run. Every method may raise a `SutroSQLError` subclass."""

    @property
    def identity(self) -> str:
        """Stable, secret-free id of this deployment, for cache keys (e.g. "local",
        "remote:https://host/v1"). Two backends with the same identity share cached answers."""
        ...

    @property
    def home(self) -> str:
        """Folder where client-side state (the answer cache) lives for this backend."""
        ...

    def run_function(
        self, name: str, input: dict[str, Any] | str, *, confidence_scoring: bool = True
    ) -> dict[str, Any]:
        """v1 §5.1: one real-time answer, the v1 response dict (request_id, function{name, revision},
        output, confidence, usage{input_tokens, output_tokens, cost_usd}; classification adds
        response, predictions (sorted), rationale; extraction adds rationale)."""
        ...

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
        """v1 §5.2: create a batch job for Function `name`; returns the job id.

        `id_column`: a column of the input rows carried into the results under its own name.
        `content_key`: a caller-computed hash of (Function, input rows). If a job with this key
        exists on this backend and is not FAILED/CANCELLED, return its id and submit nothing;
        this is what makes `sutro_batch` idempotent across re-runs and crashes."""
        ...

    def get_job_status(self, job_id: str) -> str:
        """v1 §5.3: the uppercase status."""
        ...

    def get_job(self, job_id: str) -> dict[str, Any]:
        """v1 §5.4: the job object (§4.2 fields: job_id, status, model, job_priority, num_rows,
        datetime_created, datetime_started, datetime_completed, name, description, input_tokens,
        output_tokens, job_cost, cost_estimate, failure_reason, run_type, plus `rows_done`,
        `rows_failed`)."""
        ...

    def stream_job_progress(self, job_id: str) -> Iterator[dict[str, Any]]:
        """v1 §5.5: progress events ({"update_type": "progress"|"tokens"|"heartbeat", "result": ...})
        until the job is terminal, then the iterator ends."""
        ...

    def get_job_results(
        self, job_id: str, *, include_inputs: bool = False, include_cumulative_logprobs: bool = False
    ) -> pa.Table:
        """v1 §5.6 as an Arrow table in input row order: [inputs (JSON text, if asked)],
        [<id column>], `outputs` (JSON text of the answer; null for failed rows), `confidence_score`
        (double), [`cumulative_logprobs` (double, if asked; null where the engine has none)],
        `error` (string, null for good rows). Raises ConflictError unless SUCCEEDED."""
        ...

    def iter_job_results(
        self,
        job_id: str,
        *,
        include_inputs: bool = False,
        include_cumulative_logprobs: bool = False,
        chunk_rows: int = RESULT_CHUNK_ROWS,
    ) -> Iterator[pa.RecordBatch]:
        """`get_job_results` as record batches of up to `chunk_rows` rows, in input row order, so a
        caller never holds a whole job (the local deployment reads its store chunk by chunk; a
        deployment without a streamed results call may slice the whole table). Raises before the
        first batch as `get_job_results` does."""
        ...

    def cancel_job(self, job_id: str) -> None:
        """v1 §5.8: ask the job to stop (CANCELLING -> CANCELLED)."""
        ...

    def list_jobs(self) -> list[dict[str, Any]]:
        """v1 §5.9: job objects, newest first."""
        ...

    def get_quotas(self) -> list[dict[str, Any]]:
        """v1 §5.10: [{row_quota, token_quota}, ...] indexed by priority."""
        ...

    def check_auth(self) -> bool:
        """v1 §5.11."""
        ...

    def get_function_spec(self, name: str) -> FunctionSpec | None:
        """The spec of a Function when the backend knows it (local), else None (remote: only the
        name is known; callers then infer output columns from the answers). Unknown Function on a
        local backend -> NotFoundError."""
        ...

    def close(self) -> None:
        """Release connections, worker threads and files."""
        ...


# ---------------------------------------------------------------------------
# Capabilities beyond the v1 API: a backend has them or not (check with isinstance, never hasattr).


def sliced_results(table: pa.Table, chunk_rows: int) -> Iterator[pa.RecordBatch]:
    """A whole results table as `iter_job_results` hands it out: the adapter of a backend whose
    deployment answers a job's results in one piece."""
    return iter(table.to_batches(max_chunksize=chunk_rows))


@runtime_checkable
class ListsFunctions(Protocol):
    """A backend that can enumerate its Functions (the local deployment; a remote one is called by name)."""

    def functions(self) -> list[FunctionSpec]:
        """Every Function whose spec loads, in name order."""
        ...


@runtime_checkable
class RunsFunctionsInBatches(Protocol):
    """A backend that answers several real-time inputs in one call (the local deployment: its
    engines encode a batch at once), so `sutro_run` hands it a vector's new inputs together."""

    def run_function_many(
        self, name: str, inputs: list[dict[str, Any] | str], *, confidence_scoring: bool = True
    ) -> list[dict[str, Any] | SutroSQLError]:
        """Per input, in order, its v1 run response, or the error of that input alone (a bad
        input, a row the engine refused); an error of the whole call (an unknown Function, a
        broken engine) raises."""
        ...


@runtime_checkable
class FindsJobsByContent(Protocol):
    """A backend that can say which live job holds a content key, without submitting anything:
    how a client whose own ledger does not know the job (another machine, a cleared cache)
    still counts it as re-attached rather than submitted."""

    def find_job(self, content_key: str, *, dry_run: bool = False) -> str | None:
        """The job (not FAILED or CANCELLED) submitted with `content_key`, if any."""
        ...


@runtime_checkable
class ServesResultArtifacts(Protocol):
    """A backend whose deployment hands out presigned URLs of a job's results file (v1 §5.7)."""

    def results_download_url(
        self,
        job_id: str,
        *,
        include_inputs: bool = False,
        include_cumulative_logprobs: bool = False,
        expires_in_seconds: int = 3600,
    ) -> dict[str, Any]:
        """The v1 results-url answer: job_id, format, the flags, artifact{filename, size_bytes, ...},
        urls{get, head}."""
        ...


@runtime_checkable
class PublishesFunctions(Protocol):
    """A backend that stores Function specs given to it (the local deployment's home)."""

    @property
    def home(self) -> str: ...

    def publish(self, spec: FunctionSpec | dict[str, Any]) -> FunctionSpec:
        """Validate and save `spec`, returning it as loaded back."""
        ...
