"""The `openai:<model>` engine: Functions answered by any OpenAI-compatible chat server.

vLLM, llama.cpp server, Ollama and OpenAI all speak ``POST /v1/chat/completions``.
One row is one chat completion at temperature 0:

- the prompt is the Function itself: its description, inputs, labels (with their
  descriptions) or output schema, and the reviewed examples as few-shot turns;
- classification constrains the reply to the labels (vLLM's ``guided_choice`` and a
  ``response_format`` JSON Schema with an enum, whichever the server honours) and
  turns the top log-probabilities of the label tokens into ``predictions``;
- classification confidences are tempered by a temperature fitted once per Function
  revision on its reviewed examples, each asked held out (see ``OpenAIEngine``);
- extraction asks for ``{"answer": <the Function's JSON Schema>, "rationale": <text>}`` and
  validates the answer; an invalid reply gets one repair turn (the validation error is sent
  back), then the row fails. A server that ignores the wrapper and replies with a bare
  object valid against the Function's schema is accepted (with rationale "").

Servers differ in what they accept, so a request that the server refuses with 400 is
re-sent with fewer optional parameters (see ``_VARIANTS``); the first shape that works
is remembered for the rest of the engine's life. Transport failures (unreachable,
401, 5xx or 429 after retries, a body that is not a chat completion) raise: they hit
every row. Problems with one row's reply become a ``RowFailure``.
"""

from __future__ import annotations

import json
import logging
import math
import re
import threading
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx
import jsonschema

from .. import environment
from ..config import OpenAISettings
from ..errors import AuthenticationError, ConfigurationError, ServerError, SutroSQLError, redact
from ..functions import FunctionExample, FunctionSpec, convert_value
from ..http import RetryPolicy, error_fields, raise_for_response
from .base import EngineAnswer, RowFailure

#: Alternatives per token the server is asked for (OpenAI's maximum).
TOP_LOGPROBS = 20
#: Classification confidence when the server returns no log-probabilities: a stated
#: prior for a constrained greedy answer, not a measurement. The other labels share the rest.
CONFIDENCE_WITHOUT_LOGPROBS = 0.7
#: Extraction confidence when the server returns no log-probabilities (a stated prior).
EXTRACTION_CONFIDENCE_WITHOUT_LOGPROBS = 0.5
#: Reviewed examples a classification Function needs (covering at least 2 labels) before
#: `calibration_temperature: auto` fits a temperature; with fewer, T = 1.
MIN_CALIBRATION_EXAMPLES = 8
#: Temperatures tried by the fit: 2 ** (k/6) from 0.25 to 8 (1.0 exactly included).
CALIBRATION_GRID = tuple(2.0 ** (k / 6) for k in range(-12, 19))
#: Probability floor in the fit's log-loss, so a label given probability 0 costs a finite amount.
PROBABILITY_FLOOR = 1e-6

logger = logging.getLogger(__name__)

# Request shapes, most capable first. On a 400 the engine tries the next shape, since
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
class _Completion:
    content: str
    tokens: list[dict[str, Any]] | None  # logprobs.content, when the server gave them
    input_tokens: int
    output_tokens: int


@dataclass(frozen=True)
class _Parsed:
    """A reply that passed validation."""

    output: Any
    rationale: str
    label_start: int = -1  # classification: where the label begins in the reply text
    answer_span: tuple[int, int] | None = None  # extraction: the answer's characters in the reply


@dataclass(frozen=True)
class _Reply:
    """A validated reply and the usage of every call it took (the repair turn included)."""

    parsed: _Parsed
    completion: _Completion
    input_tokens: int
    output_tokens: int


class OpenAIEngine:
    """Answers Functions with a model behind an OpenAI-compatible chat completions API.

    Classification probabilities are tempered, p ** (1/T) renormalized: T > 1 softens an
    over-confident model, T < 1 sharpens an under-confident one. `settings.calibration_temperature`
    (config.yaml `openai.calibration_temperature`) fixes T, or, with "auto" (the default), T is
    fitted once per Function revision: each reviewed example is asked held out (the others as
    the few-shot turns) and T minimises the log-loss of the reviewed labels over
    `CALIBRATION_GRID`. The fit needs `MIN_CALIBRATION_EXAMPLES` examples covering 2 labels and
    a server that returns logprobs; otherwise T = 1. `calibration_for(spec)` tells the T in use
    (fitting it if needed) and the fit is logged (logger ``sutro_sql.engines.openai``). The
    calibration calls' usage is billed to no row. `retry` is injectable so tests can record
    the waits.
    """

    def __init__(
        self,
        model: str,
        settings: OpenAISettings | None = None,
        *,
        retry: RetryPolicy | None = None,
    ) -> None:
        settings = settings or OpenAISettings()
        base_url = settings.base_url or environment.get(environment.OPENAI_BASE_URL)
        if not base_url:
            raise ConfigurationError(
                f"engine openai:{model} needs the model server's base URL: set `openai.base_url` in the "
                "home's config.yaml (e.g. http://127.0.0.1:8000/v1) or the env var OPENAI_BASE_URL"
            )
        self.model = model
        self.name = f"openai:{model}"
        self.url = chat_completions_url(base_url)
        self.calibration_temperature = settings.calibration_temperature
        self._temperatures: dict[tuple[str, str], float] = {}  # (name, revision) -> fitted T
        self._fit_locks: dict[tuple[str, str], threading.Lock] = {}
        self._key_env = settings.api_key_env
        self._key = environment.get(settings.api_key_env)
        self._retry = retry or RetryPolicy()
        headers = {"Authorization": f"Bearer {self._key}"} if self._key else {}
        self._client = httpx.Client(
            headers=headers,
            timeout=httpx.Timeout(settings.timeout, connect=min(settings.timeout, 10.0)),
            limits=httpx.Limits(
                max_connections=settings.max_concurrency, max_keepalive_connections=settings.max_concurrency
            ),
        )
        # One pool per engine caps in-flight requests at max_concurrency across all callers.
        self._pool = ThreadPoolExecutor(max_workers=settings.max_concurrency, thread_name_prefix="sutro-openai")
        self._first_variant = dict.fromkeys(_VARIANTS, 0)
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"OpenAIEngine(model={self.model!r}, url={self.url!r})"

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._client.close()

    def __enter__(self) -> OpenAIEngine:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def answer(self, spec: FunctionSpec, rows: list[dict[str, str]]) -> list[EngineAnswer | RowFailure]:
        """Answer rows concurrently (up to max_concurrency), in row order."""
        temperature = self.calibration_for(spec)
        return _results([self._pool.submit(self._answer_row, spec, row, temperature) for row in rows])

    def calibration_for(self, spec: FunctionSpec) -> float:
        """The temperature tempering `spec`'s label probabilities, fitted on first use when
        `calibration_temperature` is "auto" (once per revision, however many threads ask)."""
        if self.calibration_temperature != "auto":
            return float(self.calibration_temperature)
        if not _can_calibrate(spec):
            return 1.0
        key = (spec.name, spec.revision)
        fitted = self._temperatures.get(key)
        if fitted is None:
            with self._lock:
                fit_lock = self._fit_locks.setdefault(key, threading.Lock())
            with fit_lock:
                fitted = self._temperatures.get(key)
                if fitted is None:  # a transport error raises here and nothing is cached
                    fitted = self._temperatures[key] = self._fit_temperature(spec)
        return fitted

    def _fit_temperature(self, spec: FunctionSpec) -> float:
        """Ask every reviewed example held out; the T that best explains their labels."""
        examples = spec.examples
        futures = [self._pool.submit(self._held_out_probabilities, spec, index) for index in range(len(examples))]
        observed = [
            (probabilities, convert_value(example.output))
            for example, probabilities in zip(examples, _results(futures), strict=True)
            if probabilities is not None
        ]
        if len(observed) < MIN_CALIBRATION_EXAMPLES // 2:
            logger.info(
                "%s: %s (revision %s): calibration temperature 1.0, only %d of %d held-out examples gave label "
                "probabilities",
                self.name,
                spec.name,
                spec.revision,
                len(observed),
                len(examples),
            )
            return 1.0
        temperature = fit_temperature(observed)
        logger.info(
            "%s: %s (revision %s): fitted calibration temperature %.3f on %d held-out examples",
            self.name,
            spec.name,
            spec.revision,
            temperature,
            len(observed),
        )
        return temperature

    def _held_out_probabilities(self, spec: FunctionSpec, index: int) -> dict[str, float] | None:
        """The model's label probabilities for example `index`, asked with the other examples
        as few-shot turns; None when that row fails or the reply has no usable logprobs."""
        others = spec.examples[:index] + spec.examples[index + 1 :]
        reply = self._reply(spec, build_messages(spec, spec.examples[index].input, examples=others))
        if isinstance(reply, RowFailure) or not reply.completion.tokens:
            return None
        return label_probabilities(
            reply.completion.content,
            reply.parsed.label_start,
            reply.parsed.output,
            list(spec.labels or {}),
            reply.completion.tokens,
        )

    def _answer_row(self, spec: FunctionSpec, row: dict[str, str], temperature: float) -> EngineAnswer | RowFailure:
        reply = self._reply(spec, build_messages(spec, row))
        if isinstance(reply, RowFailure):
            return reply
        parsed, completion = reply.parsed, reply.completion
        if spec.kind == "classification":
            predictions = self._label_predictions(spec, completion, parsed, temperature)
            confidence = dict(predictions)[parsed.output]
        else:
            predictions = []
            confidence = reply_confidence(answer_tokens(completion.content, completion.tokens, parsed.answer_span))
        return EngineAnswer(
            output=parsed.output,
            confidence=confidence,
            rationale=parsed.rationale,
            predictions=predictions,
            input_tokens=reply.input_tokens,
            output_tokens=reply.output_tokens,
        )

    def _reply(self, spec: FunctionSpec, messages: list[dict[str, str]]) -> _Reply | RowFailure:
        """Ask, validate, and on an invalid reply take one repair turn (the model sees its
        reply and what is wrong with it)."""
        completion = self._complete(spec, messages)
        if isinstance(completion, RowFailure):
            return completion
        used_in, used_out = completion.input_tokens, completion.output_tokens
        parsed = parse_reply(spec, completion.content)
        if isinstance(parsed, str):
            messages = [
                *messages,
                {"role": "assistant", "content": completion.content},
                {"role": "user", "content": repair_instruction(spec, parsed)},
            ]
            completion = self._complete(spec, messages)
            if isinstance(completion, RowFailure):
                return completion
            used_in += completion.input_tokens
            used_out += completion.output_tokens
            parsed = parse_reply(spec, completion.content)
            if isinstance(parsed, str):
                return RowFailure(f"{self.name}: invalid reply after one repair attempt: {parsed}")
        return _Reply(parsed, completion, used_in, used_out)

    def _label_predictions(
        self, spec: FunctionSpec, completion: _Completion, parsed: _Parsed, temperature: float
    ) -> list[tuple[str, float]]:
        labels = list(spec.labels or {})
        probabilities = None
        if completion.tokens:
            probabilities = label_probabilities(
                completion.content, parsed.label_start, parsed.output, labels, completion.tokens
            )
        if probabilities is None:  # no usable logprobs: the stated prior, the rest shared evenly
            others = [label for label in labels if label != parsed.output]
            top = CONFIDENCE_WITHOUT_LOGPROBS if others else 1.0
            probabilities = {parsed.output: top, **{label: (1 - top) / len(others) for label in others}}
        else:
            probabilities = temper(probabilities, temperature)
        return sorted(probabilities.items(), key=lambda item: (-item[1], item[0]))

    def _complete(self, spec: FunctionSpec, messages: list[dict[str, str]]) -> _Completion | RowFailure:
        """One chat completion, stepping down the request shapes the server refuses."""
        variants = _VARIANTS[spec.kind]
        first = index = self._first_variant[spec.kind]
        while True:
            body = request_body(self.model, spec, messages, variants[index])
            # Chat completions at temperature 0 change nothing on the server, so they are
            # safe to retry after a 5xx or a dropped connection (at worst we pay twice).
            response = self._retry.send(
                lambda body=body: self._client.post(self.url, json=body), idempotent=True, what=self.name
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

    def _completion(self, response: httpx.Response) -> _Completion:
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
        return _Completion(
            content=content if isinstance(content, str) else json.dumps(content),
            tokens=tokens if isinstance(tokens, list) and tokens else None,
            input_tokens=int(usage.get("prompt_tokens") or 0),
            output_tokens=int(usage.get("completion_tokens") or 0),
        )


def _results(futures: list[Future[Any]]) -> list[Any]:
    """The futures' results in order; on the first exception the rest are cancelled."""
    try:
        return [future.result() for future in futures]
    except BaseException:
        for future in futures:
            future.cancel()
        raise


# --- prompt -------------------------------------------------------------------------------


def render_input(spec: FunctionSpec, data: dict[str, Any] | str) -> str:
    """An input row as the user turn: one ``name: value`` line per input."""
    if isinstance(data, str):
        data = {spec.inputs[0].name: data}
    return "\n".join(f"{name}: {convert_value(data.get(name))}" for name in spec.input_names)


def system_prompt(spec: FunctionSpec) -> str:
    lines = [spec.description or f"Apply the Function {spec.name!r}.", "", "The input has these fields:"]
    lines += [f"- {field.name}" + (f": {field.description}" if field.description else "") for field in spec.inputs]
    if spec.kind == "classification":
        lines += ["", "Answer with exactly one of these labels:"]
        lines += [f"- {label}" + (f": {text}" if text else "") for label, text in (spec.labels or {}).items()]
        lines += [
            "",
            'Reply with only a JSON object {"label": <one of the labels>, "rationale": <one short sentence '
            "naming what in the input decides the label>}.",
        ]
    else:
        lines += [
            "",
            "Extract the fields described by this JSON Schema from the input; use null where the input "
            "does not support a value:",
            json.dumps(spec.output, ensure_ascii=False),
            "",
            'Reply with only a JSON object {"answer": <an object that matches the schema>, "rationale": '
            "<one short sentence naming the evidence in the input>}.",
        ]
    return "\n".join(lines)


def build_messages(
    spec: FunctionSpec, row: dict[str, Any] | str, *, examples: Sequence[FunctionExample] | None = None
) -> list[dict[str, str]]:
    """System prompt, the reviewed examples (default: all of the spec's) as few-shot turns,
    then the row."""
    messages = [{"role": "system", "content": system_prompt(spec)}]
    for example in spec.examples if examples is None else examples:
        if spec.kind == "classification":
            reply = {"label": str(example.output), "rationale": example.rationale or ""}
        else:
            reply = {"answer": example.output, "rationale": example.rationale or ""}
        messages.append({"role": "user", "content": render_input(spec, example.input)})
        messages.append({"role": "assistant", "content": json.dumps(reply, ensure_ascii=False)})
    messages.append({"role": "user", "content": render_input(spec, row)})
    return messages


def repair_instruction(spec: FunctionSpec, problem: str) -> str:
    if spec.kind == "classification":
        expected = "one of the labels"
    else:
        expected = '{"answer": <an object matching the JSON Schema>, "rationale": <one short sentence>}'
    return f"That reply is invalid: {problem}. Reply again with only the corrected JSON object ({expected})."


def request_body(
    model: str, spec: FunctionSpec, messages: list[dict[str, str]], features: frozenset[str]
) -> dict[str, Any]:
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


# --- replies ------------------------------------------------------------------------------

_FENCE = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.DOTALL)
_LABEL_VALUE = re.compile(r'"label"\s*:\s*"')
_ANSWER_KEY = re.compile(r'"answer"\s*:\s*')


def parse_reply(spec: FunctionSpec, content: str) -> _Parsed | str:
    """The validated answer, or a sentence saying what is wrong with the reply."""
    text = content.strip()
    fenced = _FENCE.match(text)
    if fenced:
        text = fenced.group(1)
    if spec.kind == "classification":
        return _parse_classification(spec, content, text)
    try:
        value = json.loads(text)
    except ValueError as exc:
        return f"the reply is not JSON ({exc.msg} at position {exc.pos}): {content[:80]!r}"
    if _is_wrapper(value):
        problem = _schema_problem(spec, value["answer"], "answer")
        if problem:
            return problem
        rationale = value.get("rationale")
        return _Parsed(
            output=value["answer"],
            rationale=rationale.strip() if isinstance(rationale, str) else "",
            answer_span=_answer_span(content, value["answer"]),
        )
    problem = _schema_problem(spec, value, "the reply")
    if problem:  # neither shape: ask for the one requested
        return f'the reply has no "answer" field, and as a bare answer {problem}'
    return _Parsed(output=value, rationale="")  # a server that ignored the wrapper


def _is_wrapper(value: Any) -> bool:
    """{"answer": ..., "rationale": ...} (rationale optional, nothing else)."""
    return isinstance(value, dict) and "answer" in value and set(value) <= {"answer", "rationale"}


def _schema_problem(spec: FunctionSpec, value: Any, name: str) -> str | None:
    error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(spec.output or {}).iter_errors(value))
    if error is None:
        return None
    where = name + "".join(f"[{part!r}]" for part in error.absolute_path)
    return f"{where} does not match the output schema: {error.message}"


def _answer_span(content: str, answer: Any) -> tuple[int, int] | None:
    """Where the answer's JSON value sits in the reply text (None when it cannot be found)."""
    decoder = json.JSONDecoder()
    for match in _ANSWER_KEY.finditer(content):
        try:
            value, end = decoder.raw_decode(content, match.end())
        except ValueError:
            continue
        if value == answer:
            return match.end(), end
    return None


def _parse_classification(spec: FunctionSpec, content: str, text: str) -> _Parsed | str:
    labels = spec.labels or {}
    if text in labels:  # a bare label (guided_choice)
        return _Parsed(output=text, rationale="", label_start=content.index(text))
    try:
        value = json.loads(text)
    except ValueError:
        return f"the reply {content[:80]!r} is neither a label nor a JSON object"
    if not isinstance(value, dict) or "label" not in value:
        return f'the reply {content[:80]!r} has no "label" field'
    label = str(value["label"])
    if label not in labels:
        return f"{label!r} is not one of the labels {list(labels)}"
    match = _LABEL_VALUE.search(content)
    start = match.end() if match and content.startswith(label, match.end()) else -1
    rationale = value.get("rationale")
    return _Parsed(output=label, rationale=rationale.strip() if isinstance(rationale, str) else "", label_start=start)


def label_probabilities(
    content: str, label_start: int, label: str, labels: list[str], tokens: list[dict[str, Any]]
) -> dict[str, float] | None:
    """Probability of every label from the top log-probabilities at the label's tokens.

    Walks the chosen label's tokens. At each one, an alternative token names the labels
    whose text continues the same way; its probability (times the probability of the shared
    prefix) is split evenly among them. The walk stops once the chosen label is the only one
    left with its prefix. Mass outside the top lists is spread evenly over the labels that got
    none; tokens that start no label are dropped; the result is normalized to sum 1.
    Returns None when the tokens do not line up with the reply text.
    """
    texts = [str(token.get("token", "")) for token in tokens]
    if label_start < 0 or "".join(texts) != content:
        return None
    label_end = label_start + len(label)
    mass = dict.fromkeys(labels, 0.0)
    leftover = 0.0
    path = 1.0  # probability of the chosen tokens so far
    position = 0
    for token, text in zip(tokens, texts, strict=True):
        start, position = position, position + len(text)
        if position <= label_start:
            continue
        chosen_p = math.exp(float(token.get("logprob", 0.0)))
        before = content[start:label_start]  # part of this token ahead of the label
        shared = content[label_start:start] if start > label_start else ""
        listed = chosen_p
        for alternative in token.get("top_logprobs") or []:
            alt_text = str(alternative.get("token", ""))
            if alt_text == text:
                continue
            p = math.exp(float(alternative.get("logprob", -math.inf)))
            listed += p
            if alt_text.startswith(before):
                matching = _labels_continuing(shared + alt_text[len(before) :], labels)
                for other in matching:
                    mass[other] += path * p / len(matching)
        leftover += path * max(0.0, 1.0 - listed)
        path *= chosen_p
        so_far = content[label_start:position]
        if position >= label_end or _labels_continuing(so_far, labels) == [label]:
            break
    mass[label] += path
    absent = [other for other in labels if mass[other] == 0.0]
    for other in absent:
        mass[other] = leftover / len(absent)
    total = sum(mass.values())
    if total <= 0:
        return None
    return {other: value / total for other, value in mass.items()}


def _labels_continuing(prefix: str, labels: list[str]) -> list[str]:
    """Labels whose text starts with `prefix`, or that `prefix` completes (then a quote/space)."""
    return [
        label
        for label in labels
        if label.startswith(prefix)
        or (prefix.startswith(label) and prefix[len(label) : len(label) + 1] in ('"', " ", ""))
    ]


def temper(probabilities: dict[str, float], temperature: float) -> dict[str, float]:
    """p ** (1/T), renormalized (temperature scaling of log-probabilities)."""
    if temperature == 1.0:
        return probabilities
    scaled = {label: p ** (1.0 / temperature) for label, p in probabilities.items()}
    total = sum(scaled.values())
    return {label: value / total for label, value in scaled.items()}


def fit_temperature(observed: Sequence[tuple[dict[str, float], str]]) -> float:
    """The T in `CALIBRATION_GRID` minimising the log-loss of the true labels under
    `temper(probabilities, T)` (probabilities floored at `PROBABILITY_FLOOR`); ties go to the
    T closest to 1, so evidence that cannot tell temperatures apart changes nothing."""

    def log_loss(temperature: float) -> float:
        total = 0.0
        for probabilities, truth in observed:
            logits = {label: math.log(max(p, PROBABILITY_FLOOR)) / temperature for label, p in probabilities.items()}
            top = max(logits.values())
            normalizer = top + math.log(sum(math.exp(logit - top) for logit in logits.values()))
            total += normalizer - logits.get(truth, math.log(PROBABILITY_FLOOR) / temperature)
        return total / len(observed)

    return min(CALIBRATION_GRID, key=lambda t: (round(log_loss(t), 12), abs(math.log(t))))


def _can_calibrate(spec: FunctionSpec) -> bool:
    """Enough reviewed examples, covering at least 2 labels, to fit a temperature."""
    covered = {convert_value(example.output) for example in spec.examples}
    return spec.kind == "classification" and len(spec.examples) >= MIN_CALIBRATION_EXAMPLES and len(covered) >= 2


def answer_tokens(
    content: str, tokens: list[dict[str, Any]] | None, span: tuple[int, int] | None
) -> list[dict[str, Any]] | None:
    """The tokens overlapping the answer's characters, so the rationale's wording does not
    count toward an extraction's confidence; all tokens when they do not spell the reply."""
    if not tokens or span is None or "".join(str(token.get("token", "")) for token in tokens) != content:
        return tokens
    start, end = span
    chosen, position = [], 0
    for token in tokens:
        token_start, position = position, position + len(str(token.get("token", "")))
        if token_start < end and position > start:
            chosen.append(token)
    return chosen or tokens


def reply_confidence(tokens: list[dict[str, Any]] | None) -> float:
    """exp(mean log-probability) of the reply's tokens: the geometric-mean token probability."""
    if not tokens:
        return EXTRACTION_CONFIDENCE_WITHOUT_LOGPROBS
    logprobs = [float(token.get("logprob", 0.0)) for token in tokens]
    return math.exp(sum(logprobs) / len(logprobs))
