"""LocalBackend: the embedded deployment (specs on disk, a SQLite job store, a worker pool, engines).

Real-time calls go straight from the cached spec to the engine and never touch
SQLite. Batch jobs live in `<home>/jobs.sqlite3` and survive crashes: any
process opened with `start_workers=True` over the same home finishes jobs
whose worker died, computing only their unfinished rows.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
import weakref
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

from ...batch_input import iter_input_batches
from ...config import HomeConfig, load_object, resolve_home
from ...engines.base import Engine, RowFailure
from ...errors import ConfigurationError, ConflictError, NotFoundError, ServerError, SutroSQLError, ValidationError
from ...functions import FunctionSpec, parse_spec
from ...sql_text import json_object, query_arrow, quote
from ...wire import Job
from ..base import (
    RESULT_CHUNK_ROWS,
    TERMINAL_STATUSES,
    BatchInput,
    check_job_description,
    check_job_name,
    check_job_priority,
)
from .answers import realtime_response, usage_tokens
from .estimate import DryRunTokens, cost_usd
from .registry import FunctionRegistry
from .store import JobStore
from .worker import WorkerPool, WorkerSettings, answer_rows, parse_json_texts

#: Columns of job results that an id column may not shadow.
RESERVED_RESULT_COLUMNS = frozenset({"inputs", "outputs", "confidence_score", "error"})
#: How long a half-written submission stays reserved without progress before it counts as abandoned.
CREATION_LEASE_SECONDS = 120.0
#: v1 §5.10 quotas, indexed by priority. Informational: the local deployment does not enforce them.
QUOTAS = ({"row_quota": 1_000, "token_quota": 1_000_000}, {"row_quota": 10_000_000, "token_quota": 10_000_000_000})

_shared_embedded_engine: Engine | None = None
_shared_engine_lock = threading.Lock()


class LocalBackend:
    """The embedded local deployment over a home folder (see the module docstring)."""

    #: Seconds between store polls while streaming progress.
    progress_poll_interval: float = 0.05
    #: Seconds of silence after which the progress stream sends a heartbeat.
    heartbeat_interval: float = 10.0
    #: Rows per store read when `get_job_results` assembles a whole job.
    result_chunk_rows: int = RESULT_CHUNK_ROWS

    def __init__(
        self,
        home: str | Path | None = None,
        *,
        engine: Engine | None = None,
        functions_dir: str | Path | None = None,
        workers: int | None = None,
        start_workers: bool = True,
    ) -> None:
        self._home = resolve_home(home)
        self._home.mkdir(parents=True, exist_ok=True)
        self.config = HomeConfig.load(self._home)
        self.registry = FunctionRegistry(Path(functions_dir) if functions_dir else self._home / "functions")
        self._engine = engine
        self._engines: dict[str, Engine] = {}
        self._engines_lock = threading.Lock()
        self.store = JobStore(self._home / "jobs.sqlite3")
        self.store.purge_abandoned_creations()
        #: Worker knobs (chunk_size, lease_seconds, poll_interval, ...), read at use time.
        self.settings = WorkerSettings(price_per_1k_tokens=self.config.price_per_1k_tokens)
        self._pool = WorkerPool(self.store, self.engine_for, self.settings, workers or self.config.workers)
        # Runs at close() or, if the caller never closes, at interpreter exit: workers hand their
        # jobs back between chunks (bounded wait), so the next process resumes them at once.
        self._shutdown = weakref.finalize(self, _shutdown, self._pool, self.store)
        if start_workers:
            self.start_workers()

    # -- identity ----------------------------------------------------------------------------

    @property
    def identity(self) -> str:
        """The constant "local", without the home's path: the answer cache and the job ledger live inside the
        home, so they are this deployment's wherever its folder is, and a cache committed with a
        project replays from any checkout (a path here would make every key miss in CI)."""
        return "local"

    @property
    def home(self) -> str:
        return str(self._home)

    def check_auth(self) -> bool:
        return True

    def get_quotas(self) -> list[dict[str, Any]]:
        return [dict(quota) for quota in QUOTAS]

    # -- Functions and engines ---------------------------------------------------------------

    def functions(self) -> list[FunctionSpec]:
        return self.registry.all()

    def get_function_spec(self, name: str) -> FunctionSpec:
        return self.registry.get(name).spec

    def publish(self, spec: FunctionSpec | dict[str, Any]) -> FunctionSpec:
        """Save a Function into the functions folder (replacing one of the same name)."""
        return self.registry.publish(spec if isinstance(spec, FunctionSpec) else parse_spec(spec))

    def engine_for(self, spec: FunctionSpec) -> Engine:
        """The engine answering `spec`: the one given to the constructor, else `HomeConfig.engine`
        ("module:attr" factory), else by `spec.engine` (embedded, or openai:<model>)."""
        if self._engine is not None:
            return self._engine
        key = self.config.engine or spec.engine
        engine = self._engines.get(key)
        if engine is None:
            with self._engines_lock:
                engine = self._engines.get(key) or self._make_engine(key)
                self._engines[key] = engine
        return engine

    def _make_engine(self, key: str) -> Engine:
        try:
            if self.config.engine:
                return load_object(key)()
            if key == "embedded":
                return _embedded_engine()
            from ...engines.openai import OpenAIEngine

            return OpenAIEngine(key.split(":", 1)[1], settings=self.config.openai)
        except ImportError as exc:
            raise ConfigurationError(f"engine {key!r} is not available: {exc}") from None

    # -- real time ---------------------------------------------------------------------------

    def run_function(
        self, name: str, input: dict[str, Any] | str, *, confidence_scoring: bool = True
    ) -> dict[str, Any]:
        (answer,) = self.run_function_many(name, [input], confidence_scoring=confidence_scoring)
        if isinstance(answer, SutroSQLError):
            raise answer
        return answer

    def run_function_many(
        self, name: str, inputs: list[dict[str, Any] | str], *, confidence_scoring: bool = True
    ) -> list[dict[str, Any] | SutroSQLError]:
        """Real-time answers for several inputs in one engine call (the `RunsFunctionsInBatches`
        capability: the embedded engine encodes them as one batch). Per input its v1 response, or
        its own error; an unknown Function or a failing engine raises for all."""
        request_ids = [f"rt_{uuid.uuid4().hex}" for _ in inputs]
        function = self.registry.get(name)
        spec = function.spec
        results: list[dict[str, Any] | SutroSQLError] = []
        rows: dict[int, dict[str, str]] = {}
        for index, value in enumerate(inputs):
            try:
                rows[index] = spec.convert_input(value)
            except ValidationError as exc:
                results.append(ValidationError(exc.detail, request_id=request_ids[index]))
                continue
            results.append({})  # filled below
        engine = self.engine_for(spec)
        try:
            answers = answer_rows(engine, spec, list(rows.values())) if rows else []
        except SutroSQLError:
            raise
        except Exception as exc:
            raise ServerError(
                f"engine {engine.name!r} failed: {exc}", code="provider_error", request_id=request_ids[0]
            ) from exc
        for (index, row), answer in zip(rows.items(), answers, strict=True):
            if isinstance(answer, RowFailure):
                results[index] = ServerError(answer.message, code="provider_error", request_id=request_ids[index])
                continue
            input_tokens, output_tokens = usage_tokens(answer, row)
            results[index] = realtime_response(
                spec,
                function.revision,
                engine.name,
                answer,
                request_id=request_ids[index],
                input_tokens=input_tokens,
                output_tokens=output_tokens,
                cost_usd=cost_usd(input_tokens, output_tokens, self.config.price_per_1k_tokens),
                confidence_scoring=confidence_scoring,
            )
        return results

    # -- batch -------------------------------------------------------------------------------

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
        """Create a job (see the Backend protocol). Every row is validated here: a bad row raises
        ValidationError naming the row (0-based) and the field, and no job is created."""
        priority = check_job_priority(job_priority)
        check_job_name(job_name)
        check_job_description(description)
        if id_column in RESERVED_RESULT_COLUMNS:
            raise ValidationError(f"id_column {id_column!r} clashes with a results column; rename it.")
        function = self.registry.get(name)
        spec = function.spec
        estimate = DryRunTokens(spec, self.engine_for(spec)) if dry_run else None
        job_id = f"job-{uuid.uuid4()}"
        existing = self.store.begin_job(
            job_id=job_id,
            function=spec.name,
            revision=function.revision,
            spec_json=spec.model_dump_json(),
            run_type="ESTIMATE" if dry_run else "FULL",
            priority=priority,
            name=job_name,
            description=description,
            id_column=id_column,
            content_key=content_key,
            owner=self._pool.owner,
            lease_seconds=CREATION_LEASE_SECONDS,
        )
        if existing is not None:
            return existing
        try:
            num_rows = self._write_rows(job_id, spec, data, id_column, estimate)
            if estimate is not None:
                tokens = (estimate.input_tokens, estimate.output_tokens)
                cost = cost_usd(*tokens, self.config.price_per_1k_tokens)
                self.store.complete_estimate(job_id, num_rows, *tokens, cost)
            else:
                self.store.open_job(job_id, num_rows)
        except BaseException:
            self.store.discard_job(job_id)
            raise
        self._pool.wake()
        return job_id

    def _write_rows(
        self, job_id: str, spec: FunctionSpec, data: BatchInput, id_column: str | None, estimate: DryRunTokens | None
    ) -> int:
        """Validate and convert every row, then store it, or for a dry run count it into
        `estimate`; returns the number of rows. Arrow batches whose inputs are text are converted
        a whole batch at a time (`_text_rows`), anything else row by row."""
        index = 0
        for batch in iter_input_batches(data):
            texts = _text_rows(spec, batch, id_column) if estimate is None else None
            if texts is not None:
                pending = list(zip(range(index, index + len(texts[0])), *texts, strict=True))
                index += len(pending)
                self.store.add_rows(job_id, pending, CREATION_LEASE_SECONDS)
                continue
            pending = []
            for row in batch.to_pylist() if isinstance(batch, pa.RecordBatch) else batch:
                try:
                    converted = spec.convert_input(row)
                except ValidationError as exc:
                    raise ValidationError(f"Input row {index} (0-based): {exc.detail}") from None
                id_value = None
                if id_column is not None:
                    if not isinstance(row, dict) or id_column not in row:
                        raise ValidationError(f"Input row {index} (0-based): missing id column {id_column!r}.")
                    id_value = json.dumps(row[id_column], default=_id_json)
                if estimate is not None:
                    estimate.add(converted)
                else:
                    pending.append((index, json.dumps(converted, ensure_ascii=False, separators=(",", ":")), id_value))
                index += 1
            if pending:
                self.store.add_rows(job_id, pending, CREATION_LEASE_SECONDS)
        if index == 0:
            raise ValidationError("The batch input has no rows.")
        return index

    def _job_row(self, job_id: str) -> dict[str, Any]:
        row = self.store.get(job_id)
        if row is None:
            raise NotFoundError(f"Job {job_id!r} not found.", code="job_not_found")
        return row

    def find_job(self, content_key: str, *, dry_run: bool = False) -> str | None:
        """The live job submitted with `content_key` (the `FindsJobsByContent` capability)."""
        return self.store.live_job(content_key, "ESTIMATE" if dry_run else "FULL")

    def get_job_status(self, job_id: str) -> str:
        return self._job_row(job_id)["status"]

    def get_job(self, job_id: str) -> dict[str, Any]:
        return _job_object(self._job_row(job_id))

    def list_jobs(self) -> list[dict[str, Any]]:
        return [_job_object(row) for row in self.store.list()]

    def cancel_job(self, job_id: str) -> None:
        if self.store.request_cancel(job_id) is None:
            raise NotFoundError(f"Job {job_id!r} not found.", code="job_not_found")

    def get_job_results(
        self, job_id: str, *, include_inputs: bool = False, include_cumulative_logprobs: bool = False
    ) -> pa.Table:
        """Columns: [inputs (the converted row as JSON text)], [<id column>], outputs (JSON text,
        see answers.py; null for failed rows), confidence_score, [cumulative_logprobs: null, as
        local engines report calibrated confidence instead], error. Input row order."""
        batches = list(
            self.iter_job_results(
                job_id,
                include_inputs=include_inputs,
                include_cumulative_logprobs=include_cumulative_logprobs,
                chunk_rows=self.result_chunk_rows,
            )
        )
        tables = [pa.Table.from_batches([batch]) for batch in batches]
        try:
            return pa.concat_tables(tables, promote_options="permissive")
        except (pa.ArrowInvalid, pa.ArrowTypeError):  # the chunks' ids have no common type: ids as text
            id_column = self._job_row(job_id)["id_column"]
            return pa.concat_tables([_with_text_ids(table, id_column) for table in tables])

    def iter_job_results(
        self,
        job_id: str,
        *,
        include_inputs: bool = False,
        include_cumulative_logprobs: bool = False,
        chunk_rows: int = RESULT_CHUNK_ROWS,
    ) -> Iterator[pa.RecordBatch]:
        """`get_job_results` in record batches of up to `chunk_rows` rows, read from the store
        chunk by chunk (the id column's type is inferred per chunk)."""
        job = self._job_row(job_id)
        if job["status"] != "SUCCEEDED":
            raise ConflictError(
                f"Job {job_id} is {job['status']}; results can only be read once it has SUCCEEDED.",
                code="job_not_succeeded",
            )
        if job["run_type"] == "ESTIMATE":
            raise ConflictError(f"Job {job_id} is a cost estimate (dry run); it has no results.", code="no_results")
        return self._result_batches(job_id, job["id_column"], include_inputs, include_cumulative_logprobs, chunk_rows)

    def _result_batches(
        self, job_id: str, id_column: str | None, include_inputs: bool, include_logprobs: bool, chunk_rows: int
    ) -> Iterator[pa.RecordBatch]:
        after = -1
        while rows := self.store.result_rows(job_id, after, chunk_rows, inputs=include_inputs):
            after = rows[-1][0]
            _, inputs, ids, outputs, confidences, errors, _ = zip(*rows, strict=True)
            columns: dict[str, pa.Array] = {}
            if include_inputs:
                columns["inputs"] = pa.array(inputs, pa.string())
            if id_column:
                columns[id_column] = _id_array(parse_json_texts(ids))
            columns["outputs"] = pa.array(outputs, pa.string())
            columns["confidence_score"] = pa.array(confidences, pa.float64())
            if include_logprobs:
                columns["cumulative_logprobs"] = pa.nulls(len(rows), pa.float64())
            columns["error"] = pa.array(errors, pa.string())
            yield pa.RecordBatch.from_pydict(columns)

    def stream_job_progress(self, job_id: str) -> Iterator[dict[str, Any]]:
        """Progress and tokens events when they change, a heartbeat after `heartbeat_interval`
        seconds of silence; ends once the job is terminal, after its final progress."""
        self._job_row(job_id)  # unknown job -> NotFoundError now, not at the first next()
        return self._progress_events(job_id)

    def _progress_events(self, job_id: str) -> Iterator[dict[str, Any]]:
        last: tuple[int, int, int] | None = None
        last_sent = time.monotonic()
        while True:
            job = self._job_row(job_id)
            current = (job["rows_done"], job["input_tokens"], job["output_tokens"])
            if current != last:
                elapsed = time.time() - job["started"] if job["started"] else 0.0
                rate = (current[1] + current[2]) / elapsed if elapsed > 0 else 0.0
                yield {"update_type": "progress", "result": current[0]}
                yield {
                    "update_type": "tokens",
                    "result": {
                        "input_tokens": current[1],
                        "output_tokens": current[2],
                        "total_tokens_processed_per_second": round(rate, 3),
                    },
                }
                last, last_sent = current, time.monotonic()
            if job["status"] in TERMINAL_STATUSES:
                return
            if time.monotonic() - last_sent >= self.heartbeat_interval:
                yield {"update_type": "heartbeat"}
                last_sent = time.monotonic()
            time.sleep(self.progress_poll_interval)

    # -- life cycle --------------------------------------------------------------------------

    def start_workers(self) -> None:
        """Start this process's worker threads (done by the constructor unless start_workers=False)."""
        self._pool.start()

    def close(self) -> None:
        """Stop the workers (each hands its job back between chunks), close the store, then close
        the engines this backend made (not one passed in, nor the process-wide embedded engine)."""
        self._shutdown()
        with self._engines_lock:
            engines, self._engines = list(self._engines.values()), {}
        for engine in engines:
            if engine is not _shared_embedded_engine and callable(getattr(engine, "close", None)):
                engine.close()

    def __enter__(self) -> LocalBackend:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _shutdown(pool: WorkerPool, store: JobStore) -> None:
    pool.stop(timeout=5.0)
    store.close()


def _embedded_engine() -> Engine:
    """One EmbeddedEngine per process: its model is loaded once and shared by every backend."""
    global _shared_embedded_engine
    with _shared_engine_lock:
        if _shared_embedded_engine is None:
            from ...engines.embedded import EmbeddedEngine

            _shared_embedded_engine = EmbeddedEngine()
        return _shared_embedded_engine


def _iso(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _job_object(row: dict[str, Any]) -> dict[str, Any]:
    """The v1 §4.2 job object (`wire.Job`), plus rows_done (answered or failed), rows_failed and
    local details."""
    job = {
        "job_id": row["job_id"],
        "status": row["status"],
        "model": row["function"],
        "function_revision": row["revision"],
        "system_prompt": None,
        "job_priority": row["priority"],
        "datetime_created": _iso(row["created"]),
        "datetime_started": _iso(row["started"]),
        "datetime_completed": _iso(row["completed"]),
        "json_schema": None,
        "sampling_params": None,
        "name": row["name"],
        "description": row["description"],
        "dataset_id": None,
        "input_tokens": row["input_tokens"],
        "output_tokens": row["output_tokens"],
        "job_cost": row["job_cost"],
        "num_rows": row["num_rows"],
        "failure_reason": json.loads(row["failure_reason"]) if row["failure_reason"] else None,
        "cost_estimate": row["cost_estimate"],
        "estimated_input_tokens": row["estimated_input_tokens"],
        "estimated_output_tokens": row["estimated_output_tokens"],
        "run_type": row["run_type"],
        "rows_done": row["rows_done"],
        "rows_failed": row["rows_failed"],
        "id_column": row["id_column"],
    }
    return Job.model_validate(job).model_dump()


def _id_json(value: Any) -> Any:
    """Id values JSON cannot hold: numpy scalars as their Python value, anything else as text."""
    return value.tolist() if hasattr(value, "tolist") else str(value)


def _text_rows(
    spec: FunctionSpec, batch: pa.RecordBatch | list[Any], id_column: str | None
) -> tuple[list[str], list[str | None]] | None:
    """A record batch's (input JSON, id JSON) per row, converted at once by DuckDB (null -> "",
    as `FunctionSpec.convert_input` converts text) when every input it has is text and the id
    column, if any, is an integer or text; None for anything else (converted row by row)."""
    if not isinstance(batch, pa.RecordBatch):
        return None
    schema = batch.schema
    text = (pa.types.is_string, pa.types.is_large_string)
    for field in spec.inputs:
        if field.name in schema.names:
            if not any(check(schema.field(field.name).type) for check in text):
                return None
        elif field.required:
            return None  # the row-by-row path names the missing field
    if id_column is not None and (
        id_column not in schema.names
        or not any(check(schema.field(id_column).type) for check in (*text, pa.types.is_integer))
    ):
        return None
    if len({name.lower() for name in spec.input_names}) < len(spec.inputs):
        return None  # DuckDB's STRUCT keys ignore case
    values = json_object(
        [(f.name, f"coalesce({quote(f.name)}, '')" if f.name in schema.names else "''") for f in spec.inputs]
    )
    ids = f"coalesce(CAST(to_json({quote(id_column)}) AS VARCHAR), 'null')" if id_column else "NULL::VARCHAR"
    converted = query_arrow(f"SELECT {values}, {ids} FROM batch", batch=pa.Table.from_batches([batch]))
    return converted.column(0).to_pylist(), converted.column(1).to_pylist()


def _with_text_ids(table: pa.Table, id_column: str) -> pa.Table:
    index = table.schema.get_field_index(id_column)
    values = table.column(index).to_pylist()
    return table.set_column(index, id_column, pa.array([None if v is None else str(v) for v in values], pa.string()))


def _id_array(values: list[Any]) -> pa.Array:
    """Id values with their own type when they share one, else as text."""
    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return pa.array([None if value is None else str(value) for value in values], pa.string())
