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

from .answer_cache import AnswerCache, answer_key
from .answers import answer_row
from .backends.base import Backend
from .errors import SutroSQLError
from .inputs import FunctionRef
from .stats import Stats

#: Statements whose computed answers are remembered (to tell dedup from cache hits).
RECENT_STATEMENTS = 64


@dataclass(frozen=True)
class Answer:
    """One input's answer: the `sutro_run` value, the v1 response when a call of this Client
    computed it (None when it came from the cache), and whether the cache had it."""

    row: dict[str, Any]
    response: dict[str, Any] | None
    cached: bool


class RealtimeCalls:
    """The Client's real-time call pool over one backend."""

    def __init__(self, backend: Backend, cache: AnswerCache, stats: Stats, max_concurrency: int) -> None:
        if max_concurrency < 1:
            raise ValueError("max_concurrency must be at least 1")
        self.backend = backend
        self.cache = cache
        self.stats = stats
        self.max_concurrency = max_concurrency
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
        use_cache = use_cache and confidence_scoring  # answers without confidence are not the cached ones
        identity = self.backend.identity
        keys = {canonical: answer_key(identity, ref.name, ref.revision, canonical) for canonical in payloads}
        results: dict[str, Answer | SutroSQLError] = {}
        if use_cache:
            stored = self.cache.get_many(list(keys.values()))
            with self._lock:
                mine = self._computed.get(epoch, set()) if epoch is not None else set()
                for canonical, key in keys.items():
                    if key in stored:
                        results[canonical] = Answer(stored[key], None, key not in mine)
        calls: dict[str, Future[Answer]] = {}
        started: list[str] = []  # in-flight entries this caller created, and must remove
        try:
            for canonical in [c for c in payloads if c not in results]:
                key = keys[canonical]
                if not use_cache:
                    calls[canonical] = self._submit(ref, payloads[canonical], confidence_scoring)
                    continue
                with self._lock:
                    future = self._inflight.get(key)
                    if future is None:
                        future = self._inflight[key] = self._submit(ref, payloads[canonical], confidence_scoring)
                        started.append(key)
                calls[canonical] = future
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

    def _submit(self, ref: FunctionRef, payload: Any, confidence_scoring: bool) -> Future[Answer]:
        return self._executor.submit(self._call, ref, payload, confidence_scoring)

    def _call(self, ref: FunctionRef, payload: Any, confidence_scoring: bool) -> Answer:
        self.stats.count(calls=1)
        response = self.backend.run_function(ref.name, payload, confidence_scoring=confidence_scoring)
        self.stats.count_usage(response.get("usage"))
        return Answer(answer_row(response, ref.kind), response, False)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
