"""One exception hierarchy for every layer (SQL, client, backends, engines).

Each error carries what a user needs to act: the server's `detail`, a stable
snake_case `code` (the v1 API's codes, sutro-api-v1.md §3.2) and the
`request_id` to quote in a bug report. Never put an API key in a message.
"""

from __future__ import annotations


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


class ConfigurationError(SutroSQLError):
    """Bad settings: URL, key, home folder, engine configuration."""

    code = "configuration_error"


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


class NotFoundError(SutroSQLError):
    """Unknown Function or job (HTTP 404)."""

    code = "not_found"


class ConflictError(SutroSQLError):
    """The resource is not in a state that allows the call, e.g. results of a running job (409)."""

    code = "job_not_succeeded"


class RateLimitError(SutroSQLError):
    """HTTP 429; `retry_after` is the server's Retry-After in seconds, if any."""

    code = "rate_limited"

    def __init__(self, detail: str, *, retry_after: float | None = None, **kwargs) -> None:
        super().__init__(detail, **kwargs)
        self.retry_after = retry_after


class AuthenticationError(SutroSQLError):
    """HTTP 401/403: missing, wrong or revoked key."""

    code = "unauthorized"


class ServerError(SutroSQLError):
    """HTTP 5xx or a malformed answer from a server."""

    code = "internal_error"


class BackendUnavailableError(SutroSQLError):
    """The backend could not be reached (connection refused, DNS, timeouts after retries)."""

    code = "backend_unavailable"


class JobFailedError(SutroSQLError):
    """A batch job ended FAILED or CANCELLED while a caller waited for its results."""

    code = "job_failed"


class QueryError(SutroSQLError):
    """A SQL query sutro-sql refuses to run (not a single read query, bad id_column, ...)."""

    code = "invalid_query"


class FunctionCallError(SutroSQLError):
    """A Function call for one row failed; names the Function, the row and the backend's detail."""

    code = "function_call_failed"


class JobTimeoutError(SutroSQLError, TimeoutError):
    """A wait for a batch job ran out of time; the job itself keeps running."""

    code = "timeout"
