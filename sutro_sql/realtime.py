"""Real-time answers for many inputs at once, as the Client gives them: the answer cache first,
then one call per distinct input, at most `max_concurrency` in flight, with a call already in
flight for the same input joined rather than sent again (by this caller or a concurrent one:
DuckDB runs `sutro_run` on several threads).

An answer is stored in the cache before its in-flight entry goes, so a concurrent caller always
finds one or the other, never neither. A failed call is forgotten, so a later query tries again.
A caller may name the statement (`epoch`) it answers for: an answer this pool computed for the
same statement is then not reported as cached, since it was not there before the statement.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from . import environment
from .answer_cache import AnswerCache, answer_key
from .answers import cached_row, engine_row
from .backends.base import Backend, RunsFunctionsInBatches
from .errors import CacheMissError, ConfigurationError, SutroSQLError
from .inputs import FunctionRef
from .stats import Stats

#: Statements whose computed answers are remembered (to tell dedup from cache hits).
RECENT_STATEMENTS = 64
#: Fewest inputs worth one batched call, when a backend answers many at once.
MIN_BATCH_INPUTS = 16


def replay_miss(function: str) -> CacheMissError:
    return CacheMissError(
        f"Function {function!r}: no cached answer for this input, and {environment.CACHE_MODE}=replay computes nothing"
    )


def _settle_abandoned(task: Future[None], chunk: list[tuple[Future[Answer], Any]]) -> None:
    """A call cancelled before it ran (the pool was closed) fails its inputs rather than leaving
    their callers waiting forever."""
    for future, _ in chunk:
        if not future.done():
            future.set_exception(ConfigurationError("the client was closed before this call ran"))


@dataclass(frozen=True)
class Answer:
    """One input's answer: the `sutro_run` value, the v1 response when a call of this Client
    computed it (None when it came from the cache), and whether the cache had it."""

    row: dict[str, Any]
    response: dict[str, Any] | None
    cached: bool


class RealtimeCalls:
    """The Client's real-time call pool over one backend."""

    def __init__(
        self, backend: Backend, cache: AnswerCache, stats: Stats, max_concurrency: int, *, replay: bool = False
    ) -> None:
        if max_concurrency < 1:
            raise ValueError("max_concurrency must be at least 1")
        self.backend = backend
        self.cache = cache
        self.stats = stats
        self.max_concurrency = max_concurrency
        self.replay = replay  # answers from the cache only: a miss is a CacheMissError, nothing is called
        self._executor = ThreadPoolExecutor(max_workers=max_concurrency, thread_name_prefix="sutro-call")
        self._inflight: dict[str, Future[Answer]] = {}
        self._computed: dict[int, set[str]] = {}  # recent statement epoch -> answer keys computed for it
        self._lock = threading.Lock()

    def answer(
        self,
        ref: FunctionRef,
        payloads: dict[str, Any],
        *,
        use_cache: bool = True,
        confidence_scoring: bool = True,
        epoch: int | None = None,
    ) -> dict[str, Answer | SutroSQLError]:
        """Per canonical input (the keys of `payloads`, each mapped to what to send), its Answer,
        or the SutroSQLError of its failed call when the error is about the row (not fatal).
        Fatal errors (the deployment, not the row) raise."""
        use_cache = self.replay or (use_cache and confidence_scoring)  # answers without confidence are not cached
        identity = self.backend.identity
        keys = {canonical: answer_key(identity, ref.name, ref.revision, canonical) for canonical in payloads}
        results: dict[str, Answer | SutroSQLError] = {}
        if use_cache:
            stored = self.cache.get_many(list(keys.values()))
            with self._lock:
                mine = self._computed.get(epoch, set()) if epoch is not None else set()
                for canonical, key in keys.items():
                    if key in stored:
                        cached = key not in mine
                        results[canonical] = Answer(cached_row(ref, stored[key], cached=cached), None, cached)
        if self.replay:
            for canonical in payloads:
                results.setdefault(canonical, replay_miss(ref.name))
            return results
        calls: dict[str, Future[Answer]] = {}
        started: list[str] = []  # in-flight entries this caller created, and must remove
        try:
            todo: list[tuple[Future[Answer], Any]] = []
            with self._lock:  # join the calls in flight, and register the new ones before anyone else looks
                for canonical in [c for c in payloads if c not in results]:
                    key = keys[canonical]
                    future = self._inflight.get(key) if use_cache else None
                    if future is None:
                        future = Future()
                        todo.append((future, payloads[canonical]))
                        if use_cache:
                            self._inflight[key] = future
                            started.append(key)
                    calls[canonical] = future
            self._start(ref, todo, confidence_scoring)
            fresh: list[tuple[str, dict[str, Any]]] = []
            for canonical, future in calls.items():
                try:
                    answer = future.result()
                except SutroSQLError as exc:
                    if exc.fatal:
                        raise
                    results[canonical] = exc
                    continue
                results[canonical] = answer
                if use_cache and keys[canonical] in started:
                    fresh.append((keys[canonical], answer.row))
            if epoch is not None and fresh:
                self._remember_computed(epoch, [key for key, _ in fresh])
            self.cache.put_many(fresh)
        finally:
            with self._lock:
                for key in started:
                    self._inflight.pop(key, None)
        return results

    def _remember_computed(self, epoch: int, keys: list[str]) -> None:
        """Note answers computed for statement `epoch`, for the recent statements only."""
        with self._lock:
            self._computed.setdefault(epoch, set()).update(keys)
            while len(self._computed) > RECENT_STATEMENTS:
                self._computed.pop(next(iter(self._computed)))

    def _start(self, ref: FunctionRef, todo: list[tuple[Future[Answer], Any]], confidence_scoring: bool) -> None:
        """Compute each (future, payload) on the pool: a call per input, or, when the backend
        answers many inputs in one call (the embedded engine encodes a batch at once), the inputs
        split into at most `max_concurrency` batched calls."""
        if len(todo) > 1 and isinstance(self.backend, RunsFunctionsInBatches):
            size = max(MIN_BATCH_INPUTS, -(-len(todo) // self.max_concurrency))
        else:
            size = 1
        for start in range(0, len(todo), size):
            chunk = todo[start : start + size]
            task = self._executor.submit(self._call, ref, chunk, confidence_scoring)
            task.add_done_callback(lambda done, chunk=chunk: _settle_abandoned(done, chunk))

    def _call(self, ref: FunctionRef, chunk: list[tuple[Future[Answer], Any]], confidence_scoring: bool) -> None:
        """Answer one chunk, settling each input's future with its Answer or its error."""
        self.stats.count(calls=len(chunk))
        payloads = [payload for _, payload in chunk]
        try:
            if isinstance(self.backend, RunsFunctionsInBatches) and len(chunk) > 1:
                responses = self.backend.run_function_many(ref.name, payloads, confidence_scoring=confidence_scoring)
            else:
                responses = [self.backend.run_function(ref.name, payloads[0], confidence_scoring=confidence_scoring)]
        except BaseException as exc:  # the whole call failed: every input of it did
            for future, _ in chunk:
                future.set_exception(exc)
            return
        for (future, _), response in zip(chunk, responses, strict=True):
            if isinstance(response, SutroSQLError):
                future.set_exception(response)
            else:
                self.stats.count_usage(response.get("usage"))
                future.set_result(Answer(engine_row(response, ref), response, False))

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
