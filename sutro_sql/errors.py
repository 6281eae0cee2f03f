"""One exception hierarchy for every layer (SQL, client, backends, engines).

Each error carries what a user needs to act: the server's `detail`, a stable
snake_case `code` (the v1 API's codes, sutro-api-v1.md §3.2) and the
`request_id` to quote in a bug report. Never put an API key in a message.

Each class also says, once, how every layer treats it: `http_status` (what
`sutro-sql serve` answers), `received_statuses` (which HTTP statuses a client turns
into it), `exit_code` (what the CLI exits with) and `fatal` (about the deployment,
not the row: it fails a query even under ``on_error := 'null'``). The server's,
the HTTP clients', the CLI's and the SQL layer's tables all derive from these.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """What a scheduler can act on; documented in `sutro-sql --help` and the README."""

    OK = 0
    INTERNAL = 1
    USAGE = 2
    BAD_SQL = 3
    BAD_INPUT = 4
    BACKEND_UNAVAILABLE = 5
    PARTIAL_FAILURE = 6
    UNAUTHORIZED = 7
    JOB_FAILED = 8
    INTERRUPTED = 130
    TERMINATED = 143


def redact(text: str, *secrets: str | None) -> str:
    """`text` with every non-empty secret replaced by ``***``: the last guard before a message
    that might echo a key (a server's detail, a reply body) reaches a user or a log."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


class SutroSQLError(Exception):
    """Base of every error sutro-sql raises on purpose."""

    code: str = "error"
    http_status: int = 500
    received_statuses: tuple[int, ...] = ()
    exit_code: ExitCode = ExitCode.BAD_INPUT
    fatal: bool = False

    def __init__(
        self,
        detail: str,
        *,
        code: str | None = None,
        request_id: str | None = None,
        status_code: int | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        if code is not None:
            self.code = code
        self.request_id = request_id
        self.status_code = status_code

    def __str__(self) -> str:
        suffix = f" (request_id={self.request_id})" if self.request_id else ""
        return f"{self.detail}{suffix}"

    def response_status(self) -> int:
        """The HTTP status a server answers with: the one the error came with, else its class's."""
        return self.status_code or self.http_status

    @property
    def about_the_row(self) -> bool:
        """True when the input row is what failed (bad input), not the deployment."""
        return self.exit_code is ExitCode.BAD_INPUT


class ConfigurationError(SutroSQLError):
    """Bad settings: URL, key, home folder, engine configuration."""

    code = "configuration_error"
    http_status = 503
    received_statuses = (410,)
    fatal = True


class SpecError(ConfigurationError):
    """A Function spec that cannot be loaded; names the file and the field."""

    code = "invalid_spec"

    def __init__(self, detail: str, *, path: str | None = None, field: str | None = None) -> None:
        where = ": ".join(part for part in (path, field) if part)
        super().__init__(f"{where}: {detail}" if where else detail)
        self.path = path
        self.field = field


class ValidationError(SutroSQLError):
    """Invalid input for a Function or a request (HTTP 422 / 400)."""

    code = "invalid_input"
    http_status = 422
    received_statuses = (400, 413, 422)


class NotFoundError(SutroSQLError):
    """Unknown Function or job (HTTP 404)."""

    code = "not_found"
    http_status = 404
    received_statuses = (404,)
    fatal = True


class ConflictError(SutroSQLError):
    """The resource is not in a state that allows the call, e.g. results of a running job (409)."""

    code = "job_not_succeeded"
    http_status = 409
    received_statuses = (409,)


class RateLimitError(SutroSQLError):
    """HTTP 429; `retry_after` is the server's Retry-After in seconds, if any."""

    code = "rate_limited"
    http_status = 429
    received_statuses = (429,)
    exit_code = ExitCode.BACKEND_UNAVAILABLE

    def __init__(self, detail: str, *, retry_after: float | None = None, **kwargs) -> None:
        super().__init__(detail, **kwargs)
        self.retry_after = retry_after


class AuthenticationError(SutroSQLError):
    """HTTP 401/403: missing, wrong or revoked key."""

    code = "unauthorized"
    http_status = 401
    received_statuses = (401, 403)
    exit_code = ExitCode.UNAUTHORIZED
    fatal = True


class ServerError(SutroSQLError):
    """HTTP 5xx or a malformed answer from a server."""

    code = "internal_error"
    exit_code = ExitCode.BACKEND_UNAVAILABLE

    def response_status(self) -> int:
        """A provider's failure relayed by a server is a bad gateway; the server's own is a 500."""
        return self.status_code or (500 if self.code == "internal_error" else 502)

    @property
    def about_the_row(self) -> bool:
        """A model provider refusing one input (`provider_error`) is that row's failure; any other
        server error is an outage."""
        return self.code == "provider_error"


class BackendUnavailableError(SutroSQLError):
    """The backend could not be reached (connection refused, DNS, timeouts after retries)."""

    code = "backend_unavailable"
    http_status = 503
    exit_code = ExitCode.BACKEND_UNAVAILABLE
    fatal = True


class JobFailedError(SutroSQLError):
    """A batch job ended FAILED or CANCELLED while a caller waited for its results."""

    code = "job_failed"
    http_status = 409
    exit_code = ExitCode.JOB_FAILED


class QueryError(SutroSQLError):
    """A SQL query sutro-sql refuses to run (not a single read query, bad id_column, ...)."""

    code = "invalid_query"
    http_status = 400
    exit_code = ExitCode.BAD_SQL
    fatal = True


class FunctionCallError(SutroSQLError):
    """A Function call for one row failed; names the Function, the row and the backend's detail."""

    code = "function_call_failed"
    http_status = 422


class CacheMissError(SutroSQLError):
    """Replay mode (SUTRO_SQL_CACHE=replay): the answer cache has no answer for this input, and
    replay computes nothing. A row's failure: `on_error := 'null'` gives it NULL and goes on."""

    code = "not_in_cache"
    http_status = 409


class JobTimeoutError(SutroSQLError, TimeoutError):
    """A wait for a batch job ran out of time; the job itself keeps running."""

    code = "timeout"
    http_status = 504


def error_class_for_status(status: int) -> type[SutroSQLError]:
    """The error a non-2xx HTTP status becomes on the client side (5xx: ServerError)."""
    if status >= 500:
        return ServerError
    for cls in _RECEIVING_CLASSES:
        if status in cls.received_statuses:
            return cls
    return SutroSQLError


def _subclasses(cls: type[SutroSQLError]) -> list[type[SutroSQLError]]:
    return [cls, *(sub for child in cls.__subclasses__() for sub in _subclasses(child))]


#: Every class that some status turns into, most derived first.
_RECEIVING_CLASSES = [cls for cls in reversed(_subclasses(SutroSQLError)) if "received_statuses" in vars(cls)]
