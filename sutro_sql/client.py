"""The Client: the one door from Python, SQL, dbt and the CLI to wherever Functions run.

Its public methods are the official Sutro SDK's Function surface (`run_function`,
`batch_run_function`, `await_job_completion`, `get_job_results`, `get_job_status`,
`cancel_job`, `list_jobs`), taking the SDK's arguments and meaning what they mean there
(sutro-api-v1.md §6-§7), so code written against `sutro` runs here against a Sutro
deployment (RemoteBackend) or the embedded local one (LocalBackend).

Above the backend it owns what every caller shares: the answer cache (`answer_cache`),
the batch-job ledger that re-attaches a re-run to the job it already started, dedup and
the concurrency of real-time calls (`realtime`), and the counters (`stats`). The SQL
layer keeps only its Arrow-side memory of answers and calls the methods below.

Where it differs from the SDK, on purpose: failures raise typed errors instead of
printing and returning None. A job that ends FAILED or CANCELLED raises
`JobFailedError` naming the failure reason; a wait that runs out raises
`JobTimeoutError`; invalid arguments raise `ValidationError` / `TypeError` before
anything is sent. Identical inputs are answered from the cache (`cache=False` bypasses
it) and identical batches re-attach to their job.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel

from . import environment
from .answer_cache import AnswerCache, answer_keys
from .answers import (
    PROVENANCE_FIELDS,
    SOURCE_JOB,
    answer_json,
    cached_row,
    job_answer_array,
    provenance,
    response_from_row,
    with_fields,
)
from .backends import open_backend
from .backends.base import (
    RESULT_CHUNK_ROWS,
    TERMINAL_STATUSES,
    Backend,
    FindsJobsByContent,
    PublishesFunctions,
    ServesResultArtifacts,
    check_job_description,
    check_job_name,
)
from .batch_input import batch_content_key, batch_source
from .cascade import CascadePlan, CascadeRequest, calibration_digest, cascade_request, open_named_backend, plan_cascade
from .downloads import destination_for, download_artifact
from .errors import ConfigurationError, NotFoundError, ServerError, SutroSQLError, ValidationError
from .functions import FunctionSpec, output_arrow_schema, parse_spec
from .inputs import FunctionRef
from .realtime import Answer, RealtimeCalls
from .staging import checked_stage, stage_rows
from .stats import Stats
from .urls import checked_api_key, moved_to, normalize_api_url
from .waiting import JobWaiter
from .wire import Job

logger = logging.getLogger("sutro_sql.client")
#: Statuses after which a batch with the same content is submitted again rather than re-attached.
RESTARTABLE_STATUSES = frozenset({"FAILED", "CANCELLED"})
#: Default real-time calls in flight per Client.
DEFAULT_MAX_CONCURRENCY = 8


class FunctionRunResult(dict):
    """The v1 run response (a dict, so every field survives) with the SDK's properties, and
    `provenance`: where the answer came from, as the `sutro_run` STRUCT says it (function,
    revision, engine, job_id, source, escalated)."""

    def __init__(self, response: dict[str, Any], provenance: dict[str, Any] | None = None) -> None:
        super().__init__(response)
        self.provenance = provenance or {}

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

    @property
    def escalated(self) -> bool | None:
        """Whether a cascade's stronger Function gave this answer (its `provenance`)."""
        return self.provenance.get("escalated")


@dataclass(frozen=True)
class BatchJob:
    """A batch job as `submit_or_attach` found it: its id, and whether it already existed."""

    job_id: str
    reattached: bool


class Client:
    """The SDK's Function surface, and the shared middle layer, over one Backend.

    `api_key` / `api_url` (as `sutro.Sutro(api_key, api_url)`), or `home`, pick the backend
    through `open_backend` (the environment's default when none is given); or pass
    `backend=` directly. `progress`: None shows bars on a terminal only (see
    `sutro_sql.progress`), True/False force. `max_concurrency`: real-time calls in flight.
    `cache=False` turns the answer cache off for every call. A Client that built its own
    backend closes it in `close()`.
    """

    #: How long a looked-up Function spec is reused before asking the backend again (seconds).
    spec_ttl: float = 2.0
    #: Rows per chunk of a batch job's answers read from the backend (`job_answer_batches`).
    result_chunk_rows: int = RESULT_CHUNK_ROWS

    def __init__(
        self,
        api_key: str | None = None,
        api_url: str | None = None,
        *,
        backend: Backend | None = None,
        home: str | os.PathLike[str] | None = None,
        progress: bool | None = None,
        max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
        cache: bool = True,
        cache_mode: str | None = None,
    ) -> None:
        if api_key is not None and not isinstance(api_key, str):
            raise TypeError(f"api_key must be a string, not {type(api_key).__name__} (pass a backend as backend=...)")
        if backend is not None and (home is not None or api_url or api_key):
            raise ConfigurationError("Pass either a backend or home/api_url/api_key to Client, not both.")
        if max_concurrency < 1:
            raise ValueError("max_concurrency must be at least 1")
        self._owns_backend = backend is None
        # the normalized URL, so `set_api_url` with the same deployment keeps the key
        self._home, self._api_url, self._api_key = home, normalize_api_url(api_url) if api_url else None, api_key
        self.progress = progress
        self.max_concurrency = max_concurrency
        self.cache_enabled = cache
        self.cache_mode = cache_mode_from(cache_mode)
        self.stats = Stats()
        self._backend: Backend | None = None
        self._poll_interval = 1.0
        self._unconfigured: ConfigurationError | None = None
        self._use(
            backend if backend is not None else open_backend(home, api_url, api_key, max_concurrency=max_concurrency)
        )
        self._functions: dict[str, tuple[FunctionRef, float]] = {}
        self._submissions: dict[str, threading.Lock] = {}  # content key -> its submission lock
        self._submissions_lock = threading.Lock()
        self._output_columns: dict[str, str] = {}  # job id -> output_column given at submission
        self._peers: dict[str, Client] = {}  # backend alias -> the Client of `alias:<function>` names
        self._peer_backends: list[Backend] = []  # the peers' backends this Client opened, closed with it
        self._cascade_lock = threading.Lock()  # DuckDB threads may meet a new alias, or a new plan, at once
        self._plans: dict[tuple[Any, ...], CascadePlan] = {}  # calibration -> the cascade plan it gave

    def _use(self, backend: Backend | None) -> None:
        """Point everything that talks to a backend (the call pool, the waiter, the cache) at
        `backend`; None leaves the Client unconfigured until `set_api_key`."""
        if self._backend is not None:
            self._calls.close()
            if self._owns_backend:
                self._backend.close()
        self._backend = backend
        self._functions = {}
        if backend is not None:
            self.answers = AnswerCache.open(backend.home)
            replay = self.cache_mode == "replay"
            self._calls = RealtimeCalls(backend, self.answers, self.stats, self.max_concurrency, replay=replay)
            self._waiter = JobWaiter(backend, self._poll_interval)

    @property
    def backend(self) -> Backend:
        """Where this Client's Functions run."""
        if self._backend is None:
            raise self._unconfigured or ConfigurationError("this Client is closed")
        return self._backend

    def close(self) -> None:
        for peer in self._peers.values():
            peer.close()
        for backend in self._peer_backends:
            backend.close()
        self._peers, self._peer_backends = {}, []
        self._use(None)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def reset_stats(self) -> None:
        """Start new counters (an object taken from `stats` before keeps its values)."""
        self.stats = self._calls.stats = Stats()
        for peer in self._peers.values():
            peer.stats = peer._calls.stats = self.stats

    @property
    def poll_interval(self) -> float:
        """Seconds between status polls once a progress stream has ended without a final status."""
        return self._poll_interval

    @poll_interval.setter
    def poll_interval(self, seconds: float) -> None:
        self._poll_interval = self._waiter.poll_interval = seconds

    # -- the deployment (the SDK's settings) -----------------------------------------------------

    def set_api_url(self, api_url: str) -> None:
        """Use the Sutro deployment at `api_url` (its origin or its /v1 prefix). As in the SDK,
        moving to another deployment clears the API key, so it is never sent elsewhere: call
        `set_api_key` with a key of the new deployment before the next call."""
        self._check_owns_backend("set_api_url")
        self._api_url, self._api_key = moved_to(api_url, self._api_url, self._api_key)
        self._reopen()

    def set_base_url(self, base_url: str) -> None:
        """Deprecated alias of `set_api_url`, as in the SDK."""
        warnings.warn("set_base_url() is deprecated; use set_api_url() instead.", DeprecationWarning, stacklevel=2)
        self.set_api_url(base_url)

    def set_api_key(self, api_key: str) -> None:
        """Use `api_key` for the deployment (set by `set_api_url`, else SUTRO_API_URL)."""
        self._check_owns_backend("set_api_key")
        self._api_key = checked_api_key(api_key)
        self._reopen()

    def try_authentication(self, api_key: str) -> dict[str, Any] | None:
        """Check `api_key` against this Client's deployment without keeping it: the deployment's
        answer (``{"authenticated": true}``), or None when it refuses the key, as in the SDK.
        The embedded deployment has no keys: every key is accepted."""
        from .backends.remote import RemoteBackend

        backend = self.backend
        if not isinstance(backend, RemoteBackend):
            return {"authenticated": True}
        with RemoteBackend(backend.api_url, api_key, home=backend.home) as candidate:
            return {"authenticated": True} if candidate.check_auth() else None

    def _check_owns_backend(self, method: str) -> None:
        if not self._owns_backend:
            raise ConfigurationError(f"{method}: this Client was given a backend object; make a new Client instead.")

    def _reopen(self) -> None:
        """The backend for the current URL and key; until both are known, calls raise saying so."""
        try:
            backend = open_backend(self._home, self._api_url, self._api_key, max_concurrency=self.max_concurrency)
        except ConfigurationError as exc:
            self._use(None)
            self._unconfigured = exc
            return
        self._use(backend)

    # -- other backends (`alias:<function>`) ---------------------------------------------------------

    def add_backend(self, alias: str, backend: Backend) -> None:
        """Name another backend: `alias:<function>` (a cascade's `escalate_to`, `run_function`)
        then runs there, through a Client that shares this one's settings and counters. Without
        this, `remote:` means the deployment at SUTRO_API_URL with SUTRO_API_KEY and `embedded:`
        the embedded one (see `sutro_sql.cascade`)."""
        with self._cascade_lock:
            self._add_peer(alias, backend)

    def route(self, name: str) -> tuple[Client, str]:
        """The Client a Function name runs on, and the name there: `alias:function` goes to the
        backend called `alias`, a plain name stays here."""
        alias, colon, bare = name.partition(":")
        if not colon:
            return self, name
        with self._cascade_lock:
            peer = self._peers.get(alias)
            if peer is None:
                backend = open_named_backend(alias, self._home, self.max_concurrency)
                self._peer_backends.append(backend)
                peer = self._add_peer(alias, backend)
        return peer, bare

    def _add_peer(self, alias: str, backend: Backend) -> Client:
        peer = Client(
            backend=backend,
            progress=self.progress,
            max_concurrency=self.max_concurrency,
            cache=self.cache_enabled,
            cache_mode=self.cache_mode,
        )
        peer.stats = peer._calls.stats = self.stats
        self._peers[alias] = peer
        return peer

    def function(self, name: str) -> FunctionRef:
        """Function `name` as this backend knows it (its spec, when local); reused for `spec_ttl`
        seconds, so editing a spec file takes effect within that time."""
        now = time.monotonic()
        known = self._functions.get(name)
        if known is not None and now - known[1] < self.spec_ttl:
            return known[0]
        try:
            spec = self.backend.get_function_spec(name)
        except NotFoundError as exc:
            raise NotFoundError(f"unknown Function {name!r} on backend {self.backend.identity}: {exc.detail}") from None
        # a Function without a spec runs on a remote deployment: identity is "remote:<its URL>"
        deployment = None if spec is not None else self.backend.identity.removeprefix("remote:")
        ref = FunctionRef(name, spec, deployment)
        self._functions[name] = (ref, now)
        return ref

    # -- real time -----------------------------------------------------------------------------

    def run_function(
        self,
        name: str,
        input_data: dict[str, Any] | str | BaseModel,
        langsmith_metadata: dict[str, Any] | None = None,
        langsmith_tags: list[str] | None = None,
        timeout_seconds: float | None = None,
        confidence_scoring: bool = True,
        *,
        cache: bool = True,
        escalate_to: str | None = None,
        escalate_below: float | None = None,
        target_accuracy: float | None = None,
        calibration: list[tuple[dict[str, Any] | str, Any]] | None = None,
    ) -> FunctionRunResult:
        """Run Function `name` once (v1 §5.1), with the SDK's parameters in its order.
        `input_data`: a dict, a string (one-input Functions) or a pydantic model (sent as
        `model_dump(mode="json")`). An input answered before (same Function revision, same
        converted input) comes from the answer cache, unless `cache=False`. `langsmith_metadata`
        / `langsmith_tags` feed the SDK's client-side LangSmith tracing, which the v1 API does not
        carry: accepted and ignored. `timeout_seconds` is the SDK's read timeout for this call
        (a deployment's own deadline is 90 s); the backend's configured timeout applies.

        A cascade (`sutro_sql.cascade`): with `escalate_to` and `escalate_below` (or the
        Function spec's `cascade:`), an answer less confident than the threshold is replaced by
        the answer of Function `escalate_to` (`alias:name` for one on another backend), and the
        result says `escalated`. `target_accuracy` picks the threshold from `calibration`
        ((input, reviewed label) pairs; else the spec's examples), see `plan_cascade`."""
        _ignored_tracing(langsmith_metadata, langsmith_tags, timeout_seconds)
        peer, bare = self.route(name)
        request = cascade_request(
            peer.function(bare), escalate_to, escalate_below, target_accuracy, None, "run_function"
        )
        first = self._run_once(name, input_data, confidence_scoring, cache)
        if request is None:
            return first
        below = self.cascade_threshold(name, request, calibration)
        kept = first.get("confidence") is not None and first["confidence"] >= below
        result = first if kept else self._run_once(request.to, input_data, confidence_scoring, cache)
        result.provenance = {**result.provenance, "escalated": not kept}
        self.stats.count(rows_escalated=int(not kept))
        return result

    def cascade_threshold(
        self,
        name: str,
        request: CascadeRequest,
        calibration: list[tuple[dict[str, Any] | str, Any]] | None = None,
    ) -> float:
        """The threshold of a cascade from Function `name`: the one given, else the one its
        target picks on `calibration` (else the spec's reviewed examples)."""
        if request.below is not None:
            return request.below
        assert request.target_accuracy is not None  # cascade_request gives one or the other
        return self.plan_cascade(name, request.to, request.target_accuracy, calibration).threshold

    def plan_cascade(
        self,
        name: str,
        escalate_to: str,
        target_accuracy: float,
        calibration: list[tuple[dict[str, Any] | str, Any]] | None = None,
        *,
        check_strong: bool = False,
    ) -> CascadePlan:
        """The threshold a target picks for the cascade `name` -> `escalate_to`, from calibration
        rows ((input, reviewed label) pairs; default: the spec's reviewed examples, which the
        engine learned from, so held-out rows give the honest figure). Computed once per
        calibration set and printed on stderr (see `sutro_sql.cascade` for the bound).
        `check_strong`: also answer the escalated calibration rows with `escalate_to`, and bound
        the whole cascade's accuracy (the threshold is chosen the same way)."""
        peer, bare = self.route(name)
        ref = peer.function(bare)
        if calibration is None:
            if ref.spec is None or not ref.spec.examples:
                raise ValidationError(
                    f"Function {name!r}: target_accuracy needs calibration rows (calibrate_on), and the Function "
                    "has no reviewed examples to use instead"
                )
            calibration = [(example.input, example.output) for example in ref.spec.examples]
        digest = calibration_digest([(ref.canonical(value)[1], label) for value, label in calibration])
        key = (peer.backend.identity, name, ref.revision, escalate_to, target_accuracy, digest, check_strong)
        strong = None
        if check_strong:
            strong_client, strong_name = self.route(escalate_to)
            strong = (strong_client, strong_client.function(strong_name))
        with self._cascade_lock:  # computed and printed once, however many threads ask
            plan = self._plans.get(key)
            if plan is None:
                plan = plan_cascade(peer, ref, escalate_to, target_accuracy, calibration, strong=strong)
                self._plans[key] = plan
                print(plan.describe(), file=sys.stderr)
        return plan

    def _run_once(
        self, name: str, input_data: dict[str, Any] | str | BaseModel, confidence_scoring: bool, cache: bool
    ) -> FunctionRunResult:
        """One Function's answer, on the backend its name points at."""
        peer, bare = self.route(name)
        if peer is not self:
            return peer._run_once(bare, input_data, confidence_scoring, cache)
        if isinstance(input_data, BaseModel):
            input_data = input_data.model_dump(mode="json")
        if not isinstance(input_data, (dict, str)):
            raise TypeError(f"input_data must be a dict, a str or a pydantic model, not {type(input_data).__name__}")
        ref = self.function(name)
        payload, canonical = ref.canonical(input_data)
        answer = self._calls.answer(
            ref, {canonical: payload}, use_cache=self.cache_enabled and cache, confidence_scoring=confidence_scoring
        )[canonical]
        if isinstance(answer, SutroSQLError):
            raise answer
        if answer.cached:
            self.stats.count(cache_hits=1)
        response = answer.response if answer.response is not None else response_from_row(ref, answer.row)
        return FunctionRunResult(response, {name: answer.row.get(name) for name in PROVENANCE_FIELDS})

    def answer_inputs(
        self, ref: FunctionRef, payloads: dict[str, Any], *, cache: bool = True, epoch: int | None = None
    ) -> dict[str, Answer | SutroSQLError]:
        """Real-time answers for many distinct inputs (canonical text -> what to send): cached ones
        from the cache, the rest called concurrently; a row-level failure is returned as its error,
        a fatal one raises. What `sutro_run` uses for the inputs its memory does not hold; `epoch`
        names its statement, so answers computed for it are not reported as cached."""
        return self._calls.answer(ref, payloads, use_cache=self.cache_enabled and cache, epoch=epoch)

    def reads_cache(self, cache: bool = True) -> bool:
        """Whether answers are looked up in the cache: when it is on (here and for the call), and
        always in replay mode, where it is the only source of answers."""
        return self.cache_mode == "replay" or (self.cache_enabled and cache)

    def cached_answers(self, ref: FunctionRef, canonicals: list[str], *, cache: bool = True) -> list[dict | None]:
        """Per canonical input its cached `sutro_run` value, or None (all None unless `reads_cache`)."""
        if not self.reads_cache(cache):
            return [None] * len(canonicals)
        keys = answer_keys(self.backend.identity, ref.name, ref.revision, canonicals)
        stored = self.answers.get_many(keys)
        return [None if key not in stored else cached_row(ref, stored[key]) for key in keys]

    def remember_answer_array(self, ref: FunctionRef, canonicals: pa.Array, answers: pa.StructArray) -> None:
        """Cache a chunk of a batch job's good answers (`canonicals[i]` answered by `answers[i]`),
        in one transaction, their JSON written by one vectorized call."""
        if self.cache_enabled and len(answers):
            keys = answer_keys(self.backend.identity, ref.name, ref.revision, canonicals.to_pylist())
            self.answers.put_many(list(zip(keys, answer_json(answers), strict=True)))

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
        langsmith_metadata: dict[str, Any] | None = None,
        langsmith_tags: list[str] | None = None,
        id_column: str | None = None,
        *,
        cache: bool = True,
        stage: str | None = None,
    ) -> str:
        """Submit a batch job running Function `name` over `data`; returns the job id.

        `data`: a list of row dicts, a pandas or polars DataFrame, a pyarrow Table or
        RecordBatchReader, or a local .csv/.parquet path (files and Arrow stream to the backend).
        `dry_run=True` waits for the cost estimate, prints ``$<cost>`` to stderr and returns the
        estimate job's id. `stay_attached=True` shows a progress bar and waits for the job.
        `id_column` names an input column carried into the results under its own name.
        `output_column` is remembered for `await_job_completion(job_id)`: it names the answer
        column when the answers are not JSON objects (objects unpack into one column per field).
        The same Function revision over the same data re-attaches to the job already submitted
        (unless it FAILED or was CANCELLED), as `sutro_batch` does; `cache=False` always submits.
        `langsmith_metadata` / `langsmith_tags` are accepted and ignored, as in `run_function`.
        `stage="s3://bucket/prefix"` sends the rows as a Parquet file staged there (credentials from
        the AWS variables; see `sutro_sql.staging`) instead of in the request: for inputs too big
        for one request. A re-attached job stages nothing; the embedded deployment ignores it.
        Unlike the SDK, an attached job that fails raises JobFailedError instead of returning None.
        """
        _ignored_tracing(langsmith_metadata, langsmith_tags)
        check_job_name(job_name)
        check_job_description(description)
        checked_stage(stage)
        ref = self.function(name)
        rows = batch_source(data, id_column=id_column)
        key = batch_content_key(ref, rows, id_column=id_column, dry_run=dry_run) if cache else None
        job = self.submit_or_attach(
            ref,
            rows,
            content_key=key,
            job_priority=0 if job_priority is None else job_priority,
            dry_run=dry_run,
            job_name=job_name,
            description=description,
            id_column=id_column,
            stage=stage,
        )
        self._output_columns[job.job_id] = output_column
        if dry_run:
            estimate = self.wait_for_job(job.job_id, progress=False)
            print(f"Cost estimates retrieved for job {job.job_id}: ${estimate.get('cost_estimate')}", file=sys.stderr)
        elif stay_attached:
            try:
                self.wait_for_job(job.job_id)
            except KeyboardInterrupt:
                print(
                    f"Detached from job {job.job_id}; it keeps running. Reattach with wait_for_job({job.job_id!r}).",
                    file=sys.stderr,
                )
                raise
        return job.job_id

    def submit_or_attach(
        self,
        ref: FunctionRef,
        rows: Any,
        *,
        content_key: str | None,
        job_priority: int = 0,
        dry_run: bool = False,
        job_name: str | None = None,
        description: str | None = None,
        id_column: str | None = None,
        stage: str | None = None,
    ) -> BatchJob:
        """The job for `rows`: the one this content already has on this backend (found in the
        ledger, or by the backend from `content_key`), else a new one, recorded in the ledger.
        Never resubmits blindly: a re-run, or a re-run after a crash, re-attaches; two threads
        submitting the same content at once get one job, submitted once. `stage`: an S3 location
        the rows are staged under (named by `content_key`) for a remote deployment, the job then
        carrying their URL; the embedded deployment reads the rows directly."""
        if self.cache_mode == "replay":
            raise ConfigurationError(
                f"Function {ref.name!r}: {environment.CACHE_MODE}=replay answers from the cache only and submits no "
                "batch job; record the answers first (the default mode), or answer these rows from the cache."
            )
        with self._submission_lock(content_key):
            known = self._known_job(content_key, dry_run) if content_key is not None else None
            if known is not None:
                self.stats.count(jobs_reattached=1)
                return BatchJob(known, True)
            if stage is not None and self._stages_inputs():
                rows = stage_rows(rows, stage, name=content_key)
            job_id = self.backend.submit_batch(
                ref.name,
                rows,
                job_priority=job_priority,
                dry_run=dry_run,
                job_name=job_name,
                description=description,
                id_column=id_column,
                content_key=content_key,
            )
            if content_key is not None:
                self.answers.record_job(self.backend.identity, content_key, job_id)
            self.stats.count(jobs_submitted=1)
            return BatchJob(job_id, False)

    def _stages_inputs(self) -> bool:
        """Whether `stage` applies: a remote deployment downloads staged rows; the embedded one
        reads them where they are, so the same statement runs on both."""
        from .backends.remote import RemoteBackend

        return isinstance(self.backend, RemoteBackend)

    def _submission_lock(self, content_key: str | None) -> threading.Lock:
        """One lock per content key (a fresh one for content without a key: nothing to share)."""
        if content_key is None:
            return threading.Lock()
        with self._submissions_lock:
            return self._submissions.setdefault(content_key, threading.Lock())

    def run_batch_job(
        self, ref: FunctionRef, rows: Any, *, content_key: str, progress: bool | None = None, **options: Any
    ) -> Job:
        """`submit_or_attach`, then wait (with a progress bar, see `wait_for_job`) and count the
        usage this wait saw: all of a job this Client submitted, and what a re-attached job did
        after re-attaching (a resumed job's remaining rows are paid for by this run)."""
        job = self.submit_or_attach(ref, rows, content_key=content_key, **options)
        before = self._waiter.job(job.job_id) if job.reattached else Job(job_id=job.job_id, status="QUEUED")
        final = self._waiter.wait(job.job_id, progress=self.progress if progress is None else progress)
        if not options.get("dry_run"):
            self.stats.count(
                input_tokens=(final.input_tokens or 0) - (before.input_tokens or 0),
                output_tokens=(final.output_tokens or 0) - (before.output_tokens or 0),
                cost_usd=(final.job_cost or 0.0) - (before.job_cost or 0.0),
            )
        return final

    def job_answer_batches(self, ref: FunctionRef, job_id: str, expected_rows: int) -> Iterator[pa.StructArray]:
        """A SUCCEEDED job's answers as `sutro_run` values (failed rows carry `error`), in input
        order, a chunk at a time as the backend streams them (`Backend.iter_job_results`)."""
        made = provenance(ref, SOURCE_JOB, job_id)
        if made["revision"] is None:  # a remote Function: its job names the revision it ran
            made["revision"] = self._waiter.job(job_id).function_revision
        seen = 0
        for batch in self.backend.iter_job_results(job_id, chunk_rows=self.result_chunk_rows):
            seen += batch.num_rows
            if seen > expected_rows:
                raise ServerError(f"job {job_id} returned more result rows than its {expected_rows} input rows")
            yield with_fields(job_answer_array(ref.kind, batch), made)
        if seen != expected_rows:
            raise ServerError(f"job {job_id} returned {seen} result rows for {expected_rows} input rows")

    def _known_job(self, content_key: str, dry_run: bool) -> str | None:
        """The job this content already has on this backend, unless it failed or was cancelled:
        from the ledger, else from the backend itself when it can tell (then recorded)."""
        job_id = self.answers.find_job(self.backend.identity, content_key)
        if job_id is None:
            found = (
                self.backend.find_job(content_key, dry_run=dry_run)
                if isinstance(self.backend, FindsJobsByContent)
                else None
            )
            if found is not None:
                self.answers.record_job(self.backend.identity, content_key, found)
            return found
        try:
            status = self.backend.get_job_status(job_id)
        except NotFoundError:
            return None
        return None if status in RESTARTABLE_STATUSES else job_id

    def wait_for_job(
        self, job_id: str, *, timeout: float | None = None, progress: bool | None = None
    ) -> dict[str, Any]:
        """Wait until the job is SUCCEEDED and return its final job object, showing a progress bar
        fed by the backend's progress stream. Raises JobFailedError on FAILED/CANCELLED and
        JobTimeoutError when `timeout` seconds pass first (the job keeps running)."""
        progress = self.progress if progress is None else progress
        return self._waiter.wait(job_id, timeout=timeout, progress=progress).model_dump()

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
        from .results import job_results_frame  # polars (~25 MB) only for callers who ask for a DataFrame

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

    def cancel_job(self, job_id: str) -> dict[str, Any]:
        """Ask the job to stop (it moves to CANCELLING, then CANCELLED); returns what the SDK
        returns: ``{"cancelled": bool, "message": str}``, not cancelled when it had already ended."""
        status = self.backend.get_job_status(job_id)
        if status in TERMINAL_STATUSES:
            message = f"Job {job_id} could not be cancelled because it has already completed ({status})."
            return {"cancelled": False, "message": message}
        self.backend.cancel_job(job_id)
        return {"cancelled": True, "message": f"Job {job_id} has been successfully cancelled"}

    def results_download_url(
        self,
        job_id: str,
        include_inputs: bool = False,
        include_cumulative_logprobs: bool = False,
        expires_in_seconds: int = 3600,
    ) -> dict[str, Any]:
        """Presigned URLs of the job's results as one Parquet file (v1 §5.7), to hand the download
        to another system. Only a Sutro deployment (or `sutro-sql serve`) has them: the embedded
        deployment raises ConfigurationError; use `download_job_results` there."""
        backend = self.backend
        if not isinstance(backend, ServesResultArtifacts):
            raise ConfigurationError(
                "results_download_url needs a Sutro deployment (or sutro-sql serve); on the embedded "
                "deployment, download_job_results writes the Parquet file directly."
            )
        return backend.results_download_url(
            job_id,
            include_inputs=include_inputs,
            include_cumulative_logprobs=include_cumulative_logprobs,
            expires_in_seconds=expires_in_seconds,
        )

    def download_job_results(
        self,
        job_id: str,
        output_path: str | os.PathLike[str] | None = None,
        include_inputs: bool = False,
        include_cumulative_logprobs: bool = False,
        resume: bool = True,
        expires_in_seconds: int = 3600,
    ) -> str:
        """Save a SUCCEEDED job's results as a Parquet file (the raw result columns, as the SDK
        saves them) and return its path: `output_path` as a file, or a folder to put the
        artifact's own name in (default: the current folder). From a deployment the file comes
        through its presigned URLs and an interrupted download resumes (`resume`); the embedded
        deployment writes it directly. Failures raise, and leave the partial file to resume."""
        backend = self.backend
        if isinstance(backend, ServesResultArtifacts):
            answer = self.results_download_url(job_id, include_inputs, include_cumulative_logprobs, expires_in_seconds)
            target = destination_for(answer["artifact"]["filename"], output_path)
            return str(download_artifact(answer["urls"], target, resume=resume))
        flags = f"inputs={int(include_inputs)}~logprobs={int(include_cumulative_logprobs)}"
        target = destination_for(f"sutro-results~{job_id}~{flags}.parquet", output_path)
        table = backend.get_job_results(
            job_id, include_inputs=include_inputs, include_cumulative_logprobs=include_cumulative_logprobs
        )
        partial = target.with_name(target.name + ".part")
        pq.write_table(table, partial)
        os.replace(partial, target)
        return str(target)

    def attach(self, job_id: str) -> None:
        """Follow a job's progress with a bar until it ends (the SDK's `attach`); a job that
        ends FAILED or CANCELLED raises JobFailedError naming the reason."""
        self.wait_for_job(job_id, progress=True if self.progress is None else self.progress)

    def list_jobs(self) -> list[dict[str, Any]]:
        """Job objects, newest first."""
        return self.backend.list_jobs()

    def get_quotas(self) -> list[dict[str, Any]]:
        return self.backend.get_quotas()

    def publish_function(self, spec: FunctionSpec | dict[str, Any]) -> FunctionSpec:
        """Publish a local Function (a FunctionSpec or its mapping) to the embedded deployment."""
        backend = self.backend
        if not isinstance(backend, PublishesFunctions):
            raise ConfigurationError(
                "publish_function works on the embedded local deployment only; Functions on a "
                "Sutro deployment are published in Sutro itself."
            )
        self._functions.pop(spec.name if isinstance(spec, FunctionSpec) else str(spec.get("name")), None)
        return backend.publish(spec if isinstance(spec, FunctionSpec) else parse_spec(spec))

    def _output_column(self, job_id: str) -> str:
        return self._output_columns.get(job_id, "inference_result")

    def _output_schema(self, job_id: str) -> pa.Schema | None:
        """Typed output columns when the backend knows the job's Function and it is an extractor."""
        name = self._waiter.job(job_id).model
        if not name:
            return None
        try:
            spec = self.backend.get_function_spec(name)
        except NotFoundError:  # the Function was removed since the job ran
            return None
        return output_arrow_schema(spec) if spec is not None and spec.kind == "extraction" else None


#: What the answer cache does: "record" (answer from it, compute and store the rest) or "replay".
CACHE_MODES = ("record", "replay")


def cache_mode_from(cache_mode: str | None) -> str:
    """The explicit mode, else SUTRO_SQL_CACHE, else "record"; anything else is refused by name."""
    mode = (cache_mode or environment.get(environment.CACHE_MODE) or "record").strip().lower()
    if mode not in CACHE_MODES:
        raise ConfigurationError(
            f"cache mode must be one of {', '.join(CACHE_MODES)} ({environment.CACHE_MODE}), got {mode!r}"
        )
    return mode


def _ignored_tracing(metadata: Any, tags: Any, timeout_seconds: float | None = None) -> None:
    if metadata is not None or tags is not None or timeout_seconds is not None:
        logger.debug(
            "langsmith_metadata, langsmith_tags and timeout_seconds are accepted for the SDK's signature and ignored"
        )
