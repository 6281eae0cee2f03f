"""A loopback HTTP server that speaks the OpenAI chat completions protocol, for tests.

No model server runs here, so this stands in for vLLM / llama.cpp / Ollama / OpenAI:
``POST /v1/chat/completions`` with ``messages``, ``response_format`` (json_schema),
vLLM's ``guided_choice``, ``logprobs`` + ``top_logprobs`` and ``usage``. Its answers are
a pure function of the request, so tests can predict them:

- classification (labels from ``guided_choice`` or the ``label`` enum of the schema): the
  first label named in the last user turn wins (``_`` may be a space), else a hash picks one;
  it gets ``top_prob`` (0.8) and the others share the rest, unless ``label_probs`` scripts the
  distribution (labels left out of it are absent from the top lists). Labels are tokenized at ``_``
  (``account``, ``_access``), so labels can share a first token, and the top log-probabilities
  follow the label trie as a real model's would. With ``response_format`` the reply is
  ``{"label": ..., "rationale": ...}``; with only ``guided_choice`` it is the bare label.
- extraction: a value per schema property derived from the text (nested objects too); every
  token has probability ``token_prob``. Asked for the engine's ``{"answer": ..., "rationale":
  ...}`` wrapper, it fills ``answer`` so and writes the rationale ``extraction_rationale(text)``;
  the wrapper's own tokens and the rationale's have probability ``rationale_token_prob``. With
  ``ignore_answer_wrapper`` it replies with the bare answer object, as a server that ignores
  ``response_format`` might.

Error modes: ``script(...)`` queues one behaviour per coming request (429, 500, 503, 401,
"malformed", "invalid", "slow", "hold"); ``text_behaviours`` gives one to every request whose
last user turn contains a key; the attributes set persistent ones (``api_key``,
``reject_params``, ``logprobs_enabled``, ``always_invalid``, ``refuse_text``, ``reply_delay``).
"hold" keeps the reply back until the test sets ``released`` (or ``hold_seconds`` pass, so a
test that fails does not hang). Every request is recorded (headers and JSON body) in ``requests``.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import threading
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

CHAT_PATH = "/v1/chat/completions"


@dataclass
class RecordedRequest:
    path: str
    headers: dict[str, str]
    body: Any
    usage: dict[str, int] = field(default_factory=dict)  # what the reply reported

    @property
    def last_user_message(self) -> str:
        return [m["content"] for m in self.body["messages"] if m["role"] == "user"][-1]


class FakeOpenAIServer:
    """Start with ``with FakeOpenAIServer() as server:``; point engines at ``server.base_url``."""

    def __init__(self, *, api_key: str | None = None) -> None:
        self.api_key = api_key
        self.label_probs: dict[str, float] | None = None
        self.top_prob = 0.8
        self.token_prob = 0.9
        self.rationale_token_prob = 0.5
        self.ignore_answer_wrapper = False
        self.logprobs_enabled = True
        self.reject_params: set[str] = set()
        self.always_invalid = False
        self.refuse_text: str | None = None  # rows containing it get 400 "context length exceeded"
        self.reply_delay = 0.0
        self.slow_seconds = 3.0
        self.retry_after = "0.25"
        self.text_behaviours: dict[str, Any] = {}
        self.released = threading.Event()
        self.hold_seconds = 10.0
        self.requests: list[RecordedRequest] = []
        self.max_in_flight = 0
        self._in_flight = 0
        self._script: deque[Any] = deque()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._httpd.daemon_threads = True
        self._httpd.block_on_close = False
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.02,), daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def script(self, *behaviours: Any) -> None:
        """Queue behaviours for the next requests, one each: an HTTP status, "malformed",
        "invalid" (a reply that breaks the constraints), "slow" (past any short timeout) or
        "hold" (no reply until `released` is set)."""
        with self._lock:
            self._script.extend(behaviours)

    def __enter__(self) -> FakeOpenAIServer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stopping.set()
        self.released.set()
        self._httpd.shutdown()
        self._httpd.server_close()

    # --- one request -------------------------------------------------------------------

    def handle(self, path: str, headers: dict[str, str], raw: bytes) -> tuple[int, dict[str, str], bytes]:
        try:
            body = json.loads(raw or b"null")
        except ValueError:
            body = None
        record = RecordedRequest(path=path, headers=headers, body=body)
        with self._lock:
            self.requests.append(record)
            behaviour = self._script.popleft() if self._script else "ok"
            if self.text_behaviours and isinstance(body, dict) and isinstance(body.get("messages"), list):
                asked = record.last_user_message
                behaviour = next((b for text, b in self.text_behaviours.items() if text in asked), behaviour)
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)
        try:
            if self.reply_delay:
                self._stopping.wait(self.reply_delay)
            return self._respond(record, behaviour)
        finally:
            with self._lock:
                self._in_flight -= 1

    def _respond(self, record: RecordedRequest, behaviour: Any) -> tuple[int, dict[str, str], bytes]:
        if record.path != CHAT_PATH:
            return _error(404, f"no route {record.path}")
        given = record.headers.get("authorization", "")
        if behaviour == 401 or (self.api_key and given != f"Bearer {self.api_key}"):
            # echo the key back, as careless servers do, so the client's redaction is tested
            return _error(401, f"Incorrect API key provided: {given.removeprefix('Bearer ')}", code="invalid_api_key")
        if behaviour == 429:
            status, headers, payload = _error(429, "Rate limit reached", code="rate_limit_exceeded")
            return status, {**headers, "Retry-After": self.retry_after}, payload
        if isinstance(behaviour, int):
            return _error(behaviour, "The server had an error while processing your request")
        if behaviour == "malformed":
            return 200, {"Content-Type": "application/json"}, b'{"id": "chatcmpl-broken", "choices": [{"mess'
        if behaviour == "slow":
            self._stopping.wait(self.slow_seconds)
        if behaviour == "hold":
            self.released.wait(self.hold_seconds)
        body = record.body
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
            return _error(400, "'messages' is a required property")
        for param in sorted(self.reject_params):
            if param in body:
                return _error(400, f"Unrecognized request argument supplied: {param}")
        if self.refuse_text and self.refuse_text in record.last_user_message:
            return _error(400, "This model's maximum context length is 4096 tokens")
        content, tokens = self._answer(body, invalid=behaviour == "invalid" or self.always_invalid)
        usage = {
            "prompt_tokens": sum(len(str(m.get("content", "")).split()) for m in body["messages"]),
            "completion_tokens": len(tokens),
        }
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        record.usage = usage
        logprobs = {"content": tokens} if self.logprobs_enabled and body.get("logprobs") else None
        reply = {
            "id": f"chatcmpl-fake-{len(self.requests)}",
            "object": "chat.completion",
            "created": 0,
            "model": body.get("model"),
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content},
                    "logprobs": logprobs,
                    "finish_reason": "stop",
                }
            ],
            "usage": usage,
        }
        return 200, {"Content-Type": "application/json"}, json.dumps(reply).encode()

    def _answer(self, body: dict[str, Any], *, invalid: bool) -> tuple[str, list[dict[str, Any]]]:
        text = [m["content"] for m in body["messages"] if m.get("role") == "user"][-1]
        top_n = int(body.get("top_logprobs") or 0)
        schema = ((body.get("response_format") or {}).get("json_schema") or {}).get("schema") or {}
        labels = body.get("guided_choice") or schema.get("properties", {}).get("label", {}).get("enum")
        if labels:
            return self._classify(text, list(labels), as_json=bool(schema), top_n=top_n, invalid=invalid)
        if schema:
            wrapped = set(schema.get("properties", {})) == {"answer", "rationale"}
            answer_schema = schema["properties"]["answer"] if wrapped else schema
            if invalid:  # an object where every field wants something else
                value = {name: {"__invalid__": True} for name in answer_schema.get("properties", {})}
            else:
                value = _value_for("answer", answer_schema, text)
            if not wrapped or self.ignore_answer_wrapper:
                return self._tokens((json.dumps(value), self.token_prob), top_n=top_n)
            rationale = json.dumps(extraction_rationale(text))
            return self._tokens(
                ('{"answer": ', self.rationale_token_prob),
                (json.dumps(value), self.token_prob),
                (f', "rationale": {rationale}}}', self.rationale_token_prob),
                top_n=top_n,
            )
        return "I cannot tell.", [_token("I cannot tell.", self.token_prob, top_n)]

    @staticmethod
    def _tokens(*parts: tuple[str, float], top_n: int) -> tuple[str, list[dict[str, Any]]]:
        """The parts' text cut into 4-character tokens, each part's with its own probability."""
        tokens = [_token(piece, p, top_n) for text, p in parts for piece in re.findall(r".{1,4}", text, re.DOTALL)]
        return "".join(t["token"] for t in tokens), tokens

    def _classify(
        self, text: str, labels: list[str], *, as_json: bool, top_n: int, invalid: bool
    ) -> tuple[str, list[dict[str, Any]]]:
        probs = self.label_probs or _default_probs(text, labels, self.top_prob)
        chosen = (
            "no_such_label" if invalid else max(labels, key=lambda label: (probs.get(label, 0.0), -labels.index(label)))
        )
        label_tokens = _label_tokens(chosen, labels, probs, top_n)
        if not as_json:
            return chosen, label_tokens
        rationale = f"the text mentions {chosen}" if _mentions(text, chosen) else "no label is named in the text"
        head = ['{"', "label", '":', ' "']
        tail = ['",', ' "', "rationale", '":', ' "', *re.findall(r"\s?\S+", rationale), '"}']
        tokens = [_token(t, 0.99, top_n) for t in head] + label_tokens + [_token(t, 0.99, top_n) for t in tail]
        return "".join(t["token"] for t in tokens), tokens


def _handler_for(server: FakeOpenAIServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body go out in two writes: no 40 ms delayed-ACK stall

        def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            headers = {key.lower(): value for key, value in self.headers.items()}
            status, reply_headers, payload = server.handle(self.path, headers, raw)
            try:
                self.send_response(status)
                for key, value in reply_headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout test)
                pass

        def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
            pass

    return Handler


def _error(status: int, message: str, *, code: str | None = None) -> tuple[int, dict[str, str], bytes]:
    body = {"error": {"message": message, "type": "invalid_request_error", "code": code}}
    return status, {"Content-Type": "application/json"}, json.dumps(body).encode()


def _token(text: str, p: float, top_n: int, alternatives: dict[str, float] | None = None) -> dict[str, Any]:
    top = sorted({text: p, **(alternatives or {})}.items(), key=lambda item: -item[1])[: max(top_n, 1)]
    return {
        "token": text,
        "logprob": math.log(p),
        "bytes": list(text.encode()),
        "top_logprobs": [{"token": t, "logprob": math.log(q), "bytes": list(t.encode())} for t, q in top if q > 0],
    }


def _split_label(label: str) -> list[str]:
    return re.findall(r"_?[^_]+|_", label) or [label]


def _label_tokens(chosen: str, labels: list[str], probs: dict[str, float], top_n: int) -> list[dict[str, Any]]:
    """The chosen label's tokens with top log-probabilities that follow the label trie."""
    split = {label: _split_label(label) for label in labels}
    chosen_tokens = split.get(chosen) or _split_label(chosen)

    def mass(prefix: list[str]) -> float:
        return sum(probs.get(label, 0.0) for label in labels if split[label][: len(prefix)] == prefix)

    tokens = []
    for depth, piece in enumerate(chosen_tokens):
        prefix = chosen_tokens[:depth]
        node = 1.0 if depth == 0 else mass(prefix)
        children = {
            split[label][depth] for label in labels if len(split[label]) > depth and split[label][:depth] == prefix
        }
        alternatives = {child: mass([*prefix, child]) / node for child in children if child != piece}
        p = mass([*prefix, piece]) / node if node else 1.0
        tokens.append(_token(piece, p if p > 0 else 1e-6, top_n, alternatives))
    return tokens


def _mentions(text: str, label: str) -> bool:
    lowered = text.lower()
    return label.lower() in lowered or label.lower().replace("_", " ") in lowered


def _default_probs(text: str, labels: list[str], top: float) -> dict[str, float]:
    named = [label for label in labels if _mentions(text, label)]
    chosen = named[0] if named else labels[int(hashlib.sha256(text.encode()).hexdigest(), 16) % len(labels)]
    if len(labels) == 1:
        return {chosen: 1.0}
    return {label: top if label == chosen else (1 - top) / (len(labels) - 1) for label in labels}


def extraction_rationale(text: str) -> str:
    """The rationale the fake gives for an extraction from the user turn `text`."""
    return f"read from: {text.splitlines()[-1][:40].strip()}" if text.strip() else "nothing to read"


def _value_for(name: str, prop: dict[str, Any], text: str) -> Any:
    """A value of the property's type, derived from the text."""
    kinds = prop.get("type", "string")
    kinds = kinds if isinstance(kinds, list) else [kinds]
    if "object" in kinds:
        return {field: _value_for(field, sub, text) for field, sub in prop.get("properties", {}).items()}
    if "enum" in prop:
        return next((v for v in prop["enum"] if str(v).lower() in text.lower()), prop["enum"][0])
    if "boolean" in kinds:
        return name.lower() in text.lower()
    if "number" in kinds or "integer" in kinds:
        found = re.search(r"\d+(?:\.\d+)?", text)
        if found:
            return float(found.group()) if "number" in kinds else int(float(found.group()))
        return None if "null" in kinds else 0
    if "string" in kinds:
        words = text.split()
        return words[-1] if words else ("" if "null" not in kinds else None)
    return None
