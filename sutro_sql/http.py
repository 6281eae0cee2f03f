"""HTTP plumbing shared by every httpx caller (RemoteBackend, the openai engine).

One policy for the network's bad days: 429 -> wait Retry-After and try again;
5xx / 524 and dropped connections -> bounded retries with jittered backoff,
but only for idempotent calls (a Function run is billed, a batch submission
creates a job: those are retried only when the server surely did nothing,
i.e. 429 or a refused connection). Error bodies become typed exceptions.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx

from .errors import BackendUnavailableError, RateLimitError, error_class_for_status

RETRYABLE_STATUS = frozenset({500, 502, 503, 504, 524})
#: Transport failures the policy decides about (others propagate as they are).
RETRIED_TRANSPORT_ERRORS = (httpx.ConnectError, httpx.TimeoutException, httpx.RemoteProtocolError, httpx.ReadError)


@dataclass
class RetryPolicy:
    """How hard to try. `sleep` (the blocking loop's) is injectable so tests can measure waits."""

    max_retries: int = 4
    backoff_base: float = 0.5
    backoff_max: float = 20.0
    max_retry_after: float = 120.0
    sleep: Callable[[float], None] = time.sleep

    def backoff(self, attempt: int) -> float:
        """Full-jitter exponential backoff: uniform(0, min(max, base * 2**attempt))."""
        return random.uniform(0, min(self.backoff_max, self.backoff_base * 2**attempt))

    def send(self, send: Callable[[], httpx.Response], *, idempotent: bool, what: str) -> httpx.Response:
        """Call `send` until it gives a final answer; return it (the caller maps errors).

        Raises BackendUnavailableError when the server cannot be reached after retries.
        """
        attempt = 0
        while True:
            try:
                response = send()
            except RETRIED_TRANSPORT_ERRORS as exc:
                wait = self.retry_wait(exc, attempt, idempotent=idempotent, what=what)
            else:
                wait = self.retry_wait(response, attempt, idempotent=idempotent, what=what)
                if wait is None:
                    return response
                response.close()
            self.sleep(wait)
            attempt += 1

    async def send_async(
        self, send: Callable[[], Awaitable[httpx.Response]], *, idempotent: bool, what: str
    ) -> httpx.Response:
        """`send` for an async client: the same decisions (`retry_wait`), waiting on the event loop."""
        attempt = 0
        while True:
            try:
                response = await send()
            except RETRIED_TRANSPORT_ERRORS as exc:
                wait = self.retry_wait(exc, attempt, idempotent=idempotent, what=what)
            else:
                wait = self.retry_wait(response, attempt, idempotent=idempotent, what=what)
                if wait is None:
                    return response
                await response.aclose()
            await asyncio.sleep(wait)
            attempt += 1

    def retry_wait(
        self, outcome: httpx.Response | httpx.TransportError, attempt: int, *, idempotent: bool, what: str
    ) -> float | None:
        """The policy itself, for both loops: seconds to wait before attempt `attempt + 1`, or None
        when `outcome` (a response) is the final answer. A transport error that may not be tried
        again raises BackendUnavailableError."""
        if isinstance(outcome, httpx.ConnectError):  # nothing reached the server: always safe to retry
            if attempt >= self.max_retries:
                raise BackendUnavailableError(f"{what}: cannot connect ({type(outcome).__name__})") from None
            return self.backoff(attempt)
        if isinstance(outcome, httpx.TransportError):
            if not idempotent or attempt >= self.max_retries:
                raise BackendUnavailableError(f"{what}: {_transport_error_text(outcome)}") from None
            return self.backoff(attempt)
        if outcome.status_code == 429 and attempt < self.max_retries:
            wait = retry_after_seconds(outcome)
            return min(self.max_retry_after, wait if wait is not None else self.backoff(attempt))
        if outcome.status_code in RETRYABLE_STATUS and idempotent and attempt < self.max_retries:
            return self.backoff(attempt)
        return None


def _transport_error_text(exc: Exception) -> str:
    if isinstance(exc, httpx.TimeoutException):
        return f"timed out ({type(exc).__name__})"
    return f"connection lost ({type(exc).__name__})"


def retry_after_seconds(response: httpx.Response) -> float | None:
    """Retry-After in seconds (the numeric form; HTTP dates are ignored, as the SDK does)."""
    value = response.headers.get("retry-after")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def error_fields(response: httpx.Response) -> tuple[str, str | None, str | None]:
    """(detail, code, request_id) from a v1 error body, an OpenAI error body, or plain text."""
    request_id = response.headers.get("x-request-id")
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError, ValueError):
        text = response.text.strip()[:300] if response.content else ""
        return (text or f"HTTP {response.status_code}", None, request_id)
    if isinstance(body, dict):
        if isinstance(body.get("error"), dict):  # OpenAI style
            err = body["error"]
            return (str(err.get("message") or err), err.get("code") or err.get("type"), request_id)
        detail = body.get("detail", body.get("message", body))
        if not isinstance(detail, str):
            detail = json.dumps(detail)
        return (detail, body.get("code"), body.get("request_id") or request_id)
    return (str(body)[:300], None, request_id)


def raise_for_response(response: httpx.Response, *, what: str) -> None:
    """Turn a non-2xx response into the matching typed exception."""
    if response.is_success:
        return
    detail, code, request_id = error_fields(response)
    status = response.status_code
    kwargs = {"code": code, "request_id": request_id, "status_code": status}
    message = f"{what}: {detail}"
    cls = error_class_for_status(status)
    if cls is RateLimitError:
        raise RateLimitError(message, retry_after=retry_after_seconds(response), **kwargs)
    raise cls(message, **kwargs)
