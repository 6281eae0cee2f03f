"""The `openai:<model>` engine: Functions answered by any OpenAI-compatible chat server.

One row is one chat completion at temperature 0 (`transport`), prompted with the Function
itself (`prompt`). Classification constrains the reply to the labels and turns the top
log-probabilities of the label tokens into ``predictions`` (`replies`), tempered by a
temperature fitted once per Function revision on its reviewed examples, each asked held out
(`calibration`). Extraction asks for ``{"answer": <the Function's JSON Schema>, "rationale":
<text>}`` and validates the answer. An invalid reply gets one repair turn (the validation
error is sent back), then the row fails. This module is the flow between those parts:
rows and held-out examples answered concurrently on one bounded pool, in order, and
stopped at the first transport failure (which hits every row, so it raises); a problem
with one row's reply becomes that row's `RowFailure`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass
from functools import partial
from typing import TypeVar

from ... import environment
from ...config import OpenAISettings
from ...errors import ConfigurationError
from ...functions import FunctionSpec
from ...http import RetryPolicy
from ..base import EngineAnswer, RowFailure
from .calibration import FittedTemperatures, can_calibrate, temperature_from_held_out
from .prompt import build_messages, repair_messages
from .replies import (
    ParsedReply,
    answer_tokens,
    label_predictions,
    label_probabilities,
    parse_reply,
    reply_confidence,
)
from .transport import ChatClient, Completion, chat_completions_url

_Item = TypeVar("_Item")
_Result = TypeVar("_Result")


@dataclass(frozen=True)
class _Reply:
    """A validated reply and the usage of every call it took (the repair turn included)."""

    parsed: ParsedReply
    completion: Completion
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
        self._temperatures = FittedTemperatures()
        self._client = ChatClient(
            model,
            self.url,
            name=self.name,
            api_key=environment.get(settings.api_key_env),
            api_key_env=settings.api_key_env,
            retry=retry or RetryPolicy(),
            timeout=settings.timeout,
            max_connections=settings.max_concurrency,
        )
        # One pool per engine caps in-flight requests at max_concurrency across all callers.
        self._pool = ThreadPoolExecutor(max_workers=settings.max_concurrency, thread_name_prefix="sutro-openai")

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
        return self._map(partial(self._answer_row, spec, temperature=temperature), rows)

    def calibration_for(self, spec: FunctionSpec) -> float:
        """The temperature tempering `spec`'s label probabilities, fitted on first use when
        `calibration_temperature` is "auto" (once per revision, however many threads ask;
        a transport error raises and nothing is cached)."""
        if self.calibration_temperature != "auto":
            return float(self.calibration_temperature)
        if not can_calibrate(spec):
            return 1.0
        return self._temperatures.get(spec, partial(self._fit_temperature, spec))

    def _fit_temperature(self, spec: FunctionSpec) -> float:
        """Ask every reviewed example held out; the T that best explains their labels."""
        held_out = self._map(partial(self._held_out_probabilities, spec), range(len(spec.examples)))
        return temperature_from_held_out(self.name, spec, held_out)

    def _map(self, task: Callable[[_Item], _Result], items: Iterable[_Item]) -> list[_Result]:
        """`task(item)` for every item on the engine's pool, the results in order.

        On the first exception no further task starts: the failing task raises a flag before
        its future resolves, and every task checks that flag before it calls the server. The
        queued tasks are cancelled and the exception raised without waiting for those
        already in flight (their results are dropped).
        """
        failed = threading.Event()

        def run(item: _Item) -> _Result | None:
            if failed.is_set():
                return None  # never read: the failure is raised instead
            try:
                return task(item)
            except BaseException:
                failed.set()
                raise

        futures = [self._pool.submit(run, item) for item in items]
        wait(futures, return_when=FIRST_EXCEPTION)
        failure = next((f for f in futures if f.done() and not f.cancelled() and f.exception()), None)
        if failure is not None:
            for future in futures:
                future.cancel()
            failure.result()  # raises
        return [future.result() for future in futures]

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

    def _answer_row(self, spec: FunctionSpec, row: dict[str, str], *, temperature: float) -> EngineAnswer | RowFailure:
        reply = self._reply(spec, build_messages(spec, row))
        if isinstance(reply, RowFailure):
            return reply
        parsed, completion = reply.parsed, reply.completion
        if spec.kind == "classification":
            predictions = label_predictions(spec, completion, parsed, temperature)
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
        completion = self._client.complete(spec, messages)
        if isinstance(completion, RowFailure):
            return completion
        used_in, used_out = completion.input_tokens, completion.output_tokens
        parsed = parse_reply(spec, completion.content)
        if isinstance(parsed, str):
            completion = self._client.complete(spec, repair_messages(spec, messages, completion.content, parsed))
            if isinstance(completion, RowFailure):
                return completion
            used_in += completion.input_tokens
            used_out += completion.output_tokens
            parsed = parse_reply(spec, completion.content)
            if isinstance(parsed, str):
                return RowFailure(f"{self.name}: invalid reply after one repair attempt: {parsed}")
        return _Reply(parsed, completion, used_in, used_out)
