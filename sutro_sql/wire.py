"""The v1 wire shapes (sutro-api-v1.md), one pydantic model each: the one home of the contract.

`sutro-sql serve` parses every request body through them and builds every answer
through them; RemoteBackend validates every answer through them; LocalBackend
builds its job object through `Job`. So the server and both backends agree on
one shape, and a bad field is named where it enters, never a KeyError later.

Requests are lenient as §9.16 asks: null for an optional field means its
default, unknown fields are ignored, booleans accept `True`/`true`/`1` alike
(the SDK's `requests` writes `True`). Answers from a deployment are read
leniently too (extra fields are kept), but a field that is there must have
its type. `field_error` turns a pydantic failure into one line naming the field.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, RootModel, TypeAdapter, field_validator
from pydantic import ValidationError as PydanticValidationError
from pydantic_core import PydanticUseDefault

from .backends.base import JOB_STATUSES, MAX_JOB_DESCRIPTION, MAX_JOB_NAME, check_job_priority
from .errors import ValidationError as SutroValidationError

#: Job statuses on the wire (v1 §4.1), uppercase.
JobStatus = Literal[JOB_STATUSES]

_TRUE, _FALSE = ("true", "1"), ("false", "0")


def _lenient_bool(value: Any) -> Any:
    """null -> the field's default; `True`/`true`/`1` and `False`/`false`/`0` in any case."""
    if value is None:
        raise PydanticUseDefault()
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in _TRUE + _FALSE:
            return lowered in _TRUE
    if isinstance(value, int) and not isinstance(value, bool) and value in (0, 1):
        return bool(value)
    return value


#: A boolean as the SDK and httpx write it (JSON or query string); null means the default.
LenientBool = Annotated[bool, BeforeValidator(_lenient_bool)]


class Request(BaseModel):
    """A request body (or query): unknown fields ignored, the known ones checked."""

    model_config = ConfigDict(extra="ignore")


class Answer(BaseModel):
    """An answer body: fields a deployment adds beyond the spec are kept, as the SDK keeps them."""

    model_config = ConfigDict(extra="allow")


# -- errors (§3.1) --------------------------------------------------------------------------


class ErrorBody(Answer):
    """Every non-2xx answer. `detail` is always a string (never FastAPI's list)."""

    detail: str
    code: str
    request_id: str


# -- jobs (§4.2, §5.3, §5.4, §5.8, §5.9) ------------------------------------------------------


class FailureReason(Answer):
    message: str
    additional_context: Any = None


class Job(Answer):
    """The §4.2 job object, plus sutro-sql's `rows_done` (answered or failed) and `rows_failed`,
    and the local deployment's details (`function_revision`, `estimated_*_tokens`, `id_column`).
    Only `job_id` and `status` must be present when read; sutro-sql serve sends every field."""

    job_id: str
    status: JobStatus
    model: str | None = None
    function_revision: str | None = None
    system_prompt: str | None = None
    job_priority: int | None = None
    datetime_created: str | None = None
    datetime_started: str | None = None
    datetime_completed: str | None = None
    json_schema: dict[str, Any] | None = None
    sampling_params: dict[str, Any] | None = None
    name: str | None = None
    description: str | None = None
    dataset_id: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    job_cost: float | None = None
    num_rows: int | None = None
    failure_reason: FailureReason | None = None
    cost_estimate: float | None = None
    estimated_input_tokens: int | None = None
    estimated_output_tokens: int | None = None
    run_type: str | None = None
    rows_done: int | None = None
    rows_failed: int | None = None
    id_column: str | None = None


class JobReply(Answer):
    """`GET jobs/{id}`."""

    job: Job


class JobStatusReply(Answer):
    """`GET job-status/{id}`: the status keyed by the job id from the path."""

    job_status: dict[str, JobStatus]


class JobList(Answer):
    """`GET list-jobs`, newest first; `next_cursor` only when paginated."""

    jobs: list[Job]
    message: str | None = None
    next_cursor: str | None = None


class ListJobsQuery(Request):
    """`GET list-jobs` query: pages only when `limit` is given; `cursor` is an offset."""

    limit: int | None = Field(default=None, ge=1, le=100)
    cursor: int = Field(default=0, ge=0)

    @field_validator("cursor", mode="before")
    @classmethod
    def _cursor(cls, value: Any) -> Any:
        return value or 0


class CancelReply(Answer):
    """`GET|POST job-cancel/{id}`."""

    cancelled: bool
    message: str | None = None


class JobCreated(Answer):
    """`POST batch-inference` (exactly HTTP 200): `results` is the job id."""

    results: str = Field(min_length=1)
    metadata: dict[str, Any] | None = None


# -- Function runs (§5.1) -------------------------------------------------------------------


class RunFunctionRequest(Request):
    """`POST functions/{name}/run`."""

    input: dict[str, Any] | str
    confidence_scoring: LenientBool = True

    @field_validator("input", mode="before")
    @classmethod
    def _input(cls, value: Any) -> Any:
        if not isinstance(value, (dict, str)):
            raise ValueError(f"expected an object or a string, got {type(value).__name__}")
        return value


class FunctionRef(Answer):
    name: str
    model: str | None = None
    model_source: str | None = None


class Usage(Answer):
    input_tokens: int | None = None
    output_tokens: int | None = None
    cost_usd: float | None = None


class Prediction(Answer):
    label: str
    confidence: float


class RunFunctionResponse(Answer):
    """The §5.1 union answer: `request_id`, `function`, `output`, `confidence`, `usage` always;
    classification adds `response` and `predictions` (most likely first), both add `rationale`.
    Dump it with `exclude_unset=True` so the fields a Function kind lacks stay absent."""

    request_id: str | None = None
    function: FunctionRef | None = None
    output: Any = None
    confidence: float | None = Field(default=None, ge=0.0, le=1.0)
    usage: Usage = Field(default_factory=Usage)
    response: Any = None
    predictions: list[Prediction] | None = None
    rationale: str | None = None


# -- batch jobs (§5.2) ----------------------------------------------------------------------


class BatchInferenceRequest(Request):
    """`POST batch-inference`, every field the SDK sends (null where unset)."""

    model: str = Field(min_length=1)
    inputs: list[Any] | str
    job_priority: int = 0
    json_schema: dict[str, Any] | None = None
    system_prompt: str | None = None
    cost_estimate: LenientBool = False
    dryrun: LenientBool = False
    dry_run: LenientBool = False
    sampling_params: dict[str, Any] | None = None
    random_seed_per_input: LenientBool = False
    truncate_rows: LenientBool = False
    name: str | None = Field(default=None, max_length=MAX_JOB_NAME)
    description: str | None = Field(default=None, max_length=MAX_JOB_DESCRIPTION)
    column_name: str | None = None
    id_column_name: str | None = None

    @field_validator("job_priority", mode="before")
    @classmethod
    def _priority(cls, value: Any) -> Any:
        try:
            return check_job_priority(value)
        except SutroValidationError as exc:
            raise ValueError(exc.detail.removeprefix("job_priority: ")) from None

    @field_validator("inputs", mode="before")
    @classmethod
    def _inputs(cls, value: Any) -> Any:
        if not isinstance(value, (list, str)):
            raise ValueError(f"expected a list of rows or a file URL, got {type(value).__name__}")
        if isinstance(value, str):
            if value.startswith("dataset-"):
                raise ValueError("datasets have been removed; send rows or a file URL")
            if not value.startswith(("http://", "https://")):
                raise ValueError("expected a list of rows or an http(s) URL of a .csv/.parquet file")
        elif not value:
            raise ValueError("expected a non-empty list of rows")
        return value

    @property
    def estimate(self) -> bool:
        """A cost-estimate (dry-run) job, under any of its three spellings."""
        return self.cost_estimate or self.dryrun or self.dry_run


# -- results (§5.6) -------------------------------------------------------------------------


class JobResultsRequest(Request):
    """`POST job-results`. `include_errors` is sutro-sql's: per-row errors as an `error` column."""

    job_id: str = Field(min_length=1)
    include_inputs: LenientBool = False
    include_cumulative_logprobs: LenientBool = False
    include_errors: LenientBool = False


class ResultColumns(RootModel[dict[str, list[Any]]]):
    """Equal-length columns in input row order; `outputs` always among them."""

    @field_validator("root")
    @classmethod
    def _columns(cls, columns: dict[str, list[Any]]) -> dict[str, list[Any]]:
        if "outputs" not in columns:
            raise ValueError("results are not columns with an `outputs` list")
        lengths = {name: len(values) for name, values in columns.items()}
        if len(set(lengths.values())) != 1:
            raise ValueError(f"result columns have unequal lengths {lengths}")
        return columns


class JobResults(Answer):
    results: ResultColumns
    message: str | None = None


# -- results downloads (§5.7) ---------------------------------------------------------------

#: Longest lifetime of a presigned results URL, in seconds (7 days).
MAX_EXPIRES_SECONDS = 604_800


class ResultsUrlQuery(Request):
    """`GET jobs/{id}/results-url` query (the SDK sends all four, booleans as `True`/`False`)."""

    format: str = "parquet"
    include_inputs: LenientBool = False
    include_cumulative_logprobs: LenientBool = False
    expires_in_seconds: int = Field(default=3600, ge=1, le=MAX_EXPIRES_SECONDS)


class Artifact(Answer):
    bucket: str
    key: str
    filename: str
    size_bytes: int


class ArtifactUrls(Answer):
    """Presigned: the URL carries the credential, no auth header is sent."""

    get: str
    head: str


class ResultsUrl(Answer):
    job_id: str
    format: Literal["parquet"]
    include_inputs: bool
    include_cumulative_logprobs: bool
    expires_in_seconds: int
    artifact: Artifact
    urls: ArtifactUrls


# -- the progress stream (§5.5) -------------------------------------------------------------


class TokenCounts(Answer):
    input_tokens: int
    output_tokens: int
    total_tokens_processed_per_second: float = 0.0


class ProgressEvent(Answer):
    """Cumulative rows completed, never decreasing."""

    update_type: Literal["progress"]
    result: int = Field(ge=0)


class TokensEvent(Answer):
    update_type: Literal["tokens"]
    result: TokenCounts


class HeartbeatEvent(Answer):
    update_type: Literal["heartbeat"]


#: One NDJSON line of `stream-job-progress`.
StreamEvent = Annotated[ProgressEvent | TokensEvent | HeartbeatEvent, Field(discriminator="update_type")]
STREAM_EVENT = TypeAdapter(StreamEvent)
#: The `update_type`s this contract defines; a client skips any other, as the SDK does.
EVENT_TYPES = frozenset({"progress", "tokens", "heartbeat"})


# -- quotas and auth (§5.10, §5.11) ---------------------------------------------------------


class Quota(Answer):
    row_quota: int
    token_quota: int


class QuotasReply(Answer):
    """Indexed by job priority."""

    quotas: list[Quota]


class AuthReply(Answer):
    authenticated: bool


# -- parsing --------------------------------------------------------------------------------


def field_error(exc: PydanticValidationError) -> str:
    """The first problem as one line naming the field: ``name: String should have at most 45
    characters``. (pydantic's own text is several lines and a list.)"""
    first = exc.errors(include_url=False)[0]
    where = ".".join(str(part) for part in first["loc"] if part != "root") or "body"
    message = first["msg"].removeprefix("Value error, ")
    return f"{where}: {message}"
