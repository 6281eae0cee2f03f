"""One chat completion over HTTP, whatever the OpenAI-compatible server accepts.

vLLM, llama.cpp server, Ollama and OpenAI all speak ``POST /v1/chat/completions`` but differ
in the optional parameters they take, so a request the server refuses with 400 is re-sent with
fewer of them (see ``_VARIANTS``); the first shape that works is remembered for the client's
life. Retries and the mapping of error replies are `sutro_sql.http`'s, shared with
RemoteBackend. Transport failures (unreachable, 401, 5xx or 429 after retries, a body that is
not a chat completion) raise: they hit every row. A server refusing one row (too long, ...)
is that row's `RowFailure`.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass
from typing import Any

import httpx

from ...errors import AuthenticationError, ServerError, SutroSQLError, redact
from ...functions import FunctionSpec
from ...http import RetryPolicy, error_fields, raise_for_response
from ..base import RowFailure

#: Alternatives per token the server is asked for (OpenAI's maximum).
TOP_LOGPROBS = 20

# Request shapes, most capable first. On a 400 the client tries the next shape, since
# servers reject parameters they do not know (OpenAI refuses `guided_choice`; vLLM refuses
# `guided_choice` together with a json_schema `response_format`; some servers lack logprobs).
# Constraining the answer matters more than confidence, so logprobs go last.
_VARIANTS: dict[str, tuple[frozenset[str], ...]] = {
    "classification": tuple(
        frozenset(features)
        for features in (
            ("guided_choice", "response_format", "logprobs"),
            ("response_format", "logprobs"),
            ("guided_choice", "logprobs"),
            ("response_format",),
            ("guided_choice",),
            ("logprobs",),
            (),
        )
    ),
    "extraction": tuple(
        frozenset(features) for features in (("response_format", "logprobs"), ("response_format",), ("logprobs",), ())
    ),
}


def chat_completions_url(base_url: str) -> str:
    """The endpoint for a base URL given with or without ``/v1`` (or as the full endpoint)."""
    url = base_url.strip().rstrip("/").removesuffix("/chat/completions").rstrip("/")
    if not url.endswith("/v1"):
        url += "/v1"
    return url + "/chat/completions"


@dataclass(frozen=True)
class Completion:
    """The reply text, its tokens' log-probabilities (when the server gave them) and its usage."""

    content: str
    tokens: list[dict[str, Any]] | None  # logprobs.content
    input_tokens: int
    output_tokens: int


def request_body(
    model: str, spec: FunctionSpec, messages: list[dict[str, str]], features: frozenset[str]
) -> dict[str, Any]:
    """The JSON body of one request shape: the answer constrained as far as `features` allow."""
    body: dict[str, Any] = {"model": model, "messages": messages, "temperature": 0}
    schema_name = re.sub(r"[^A-Za-z0-9_-]", "_", spec.name)[:64]
    if spec.kind == "classification":
        labels = list(spec.labels or {})
        if "guided_choice" in features:
            body["guided_choice"] = labels
        if "response_format" in features:
            # label before rationale: the decision is one clean token position for the logprobs
            schema = {
                "type": "object",
                "properties": {"label": {"type": "string", "enum": labels}, "rationale": {"type": "string"}},
                "required": ["label", "rationale"],
                "additionalProperties": False,
            }
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": schema_name, "schema": schema, "strict": True},
            }
    elif "response_format" in features:
        # not strict: a Function's schema need not meet OpenAI's strict-mode rules; we validate anyway
        body["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": schema_name, "schema": answer_schema(spec), "strict": False},
        }
    if "logprobs" in features:
        body["logprobs"] = True
        body["top_logprobs"] = TOP_LOGPROBS
    return body


def answer_schema(spec: FunctionSpec) -> dict[str, Any]:
    """An extraction's reply: the Function's output under "answer", then the model's rationale."""
    return {
        "type": "object",
        "properties": {"answer": spec.output or {}, "rationale": {"type": "string"}},
        "required": ["answer", "rationale"],
        "additionalProperties": False,
    }


class ChatClient:
    """Chat completions at one URL with one model. `name` prefixes every error message; the
    API key (read by the caller) is redacted from them. Safe to share between threads."""

    def __init__(
        self,
        model: str,
        url: str,
        *,
        name: str,
        api_key: str | None,
        api_key_env: str,
        retry: RetryPolicy,
        timeout: float,
        max_connections: int,
    ) -> None:
        self.model = model
        self.url = url
        self.name = name
        self._key = api_key
        self._key_env = api_key_env
        self._retry = retry
        self._http = httpx.Client(
            headers={"Authorization": f"Bearer {api_key}"} if api_key else {},
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
        )
        self._first_variant = dict.fromkeys(_VARIANTS, 0)
        self._lock = threading.Lock()

    @property
    def is_closed(self) -> bool:
        return self._http.is_closed

    def close(self) -> None:
        self._http.close()

    def complete(self, spec: FunctionSpec, messages: list[dict[str, str]]) -> Completion | RowFailure:
        """One chat completion, stepping down the request shapes the server refuses."""
        variants = _VARIANTS[spec.kind]
        first = index = self._first_variant[spec.kind]
        while True:
            body = request_body(self.model, spec, messages, variants[index])
            # Chat completions at temperature 0 change nothing on the server, so they are
            # safe to retry after a 5xx or a dropped connection (at worst we pay twice).
            response = self._retry.send(
                lambda body=body: self._http.post(self.url, json=body), idempotent=True, what=self.name
            )
            if response.status_code in (400, 422) and index + 1 < len(variants):
                response.close()
                index += 1
                continue
            if response.status_code in (400, 413, 422):  # the server refuses this row (too long, ...)
                detail = error_fields(response)[0]
                return RowFailure(redact(f"{self.name}: the server refused the row: {detail}", self._key))
            self._raise_for_response(response)
            if index > first:  # remember the shape that works (only after a success)
                with self._lock:
                    self._first_variant[spec.kind] = max(self._first_variant[spec.kind], index)
            return self._completion(response)

    def _raise_for_response(self, response: httpx.Response) -> None:
        try:
            raise_for_response(response, what=f"{self.name} at {self.url}")
        except SutroSQLError as exc:
            detail = redact(exc.detail, self._key)
            if isinstance(exc, AuthenticationError):
                state = "set" if self._key else "not set"
                detail += f" (the key is read from the env var {self._key_env}, which is {state})"
            exc.detail = detail
            exc.args = (detail,)
            raise exc from None

    def _completion(self, response: httpx.Response) -> Completion:
        """Read a chat completion; anything else means this is not a compatible server."""
        try:
            body = response.json()
            choice = body["choices"][0]
            content = choice["message"].get("content") or ""
        except (ValueError, KeyError, IndexError, TypeError, AttributeError):
            snippet = redact(response.text[:200], self._key)
            raise ServerError(
                f"{self.name}: the reply from {self.url} is not a chat completion "
                f"(is base_url an OpenAI-compatible API?): {snippet!r}",
                status_code=response.status_code,
            ) from None
        logprobs = choice.get("logprobs") if isinstance(choice, dict) else None
        tokens = logprobs.get("content") if isinstance(logprobs, dict) else None
        usage = body.get("usage") if isinstance(body.get("usage"), dict) else {}
        return Completion(
            content=content if isinstance(content, str) else json.dumps(content),
            tokens=tokens if isinstance(tokens, list) and tokens else None,
            input_tokens=int(usage.get("prompt_tokens") or 0),
            output_tokens=int(usage.get("completion_tokens") or 0),
        )
