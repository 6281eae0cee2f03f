"""Real-time answers for many inputs at once, as the Client gives them: the answer cache first,
then one call per distinct input, at most `max_concurrency` in flight, with a call already in
flight for the same input joined rather than sent again (by this caller or a concurrent one:
DuckDB runs `sutro_run` on several threads).

The inputs one caller computes are one `_CallGroup`: `max_concurrency` pool tasks pull its inputs
one by one (or, when the backend answers many at once, each task takes a slice), so an input
costs no future or pool task of its own; a caller that needs an input in flight waits for its
group. An answer is stored in the cache before its in-flight entry goes, so a concurrent caller
always finds one or the other, never neither. A failed call is forgotten, so a later query tries
again; after a fatal error (the deployment, not the row) the group's remaining inputs are not
sent. A caller may name the statement (`epoch`) it answers for: an answer this pool computed for
the same statement is then not reported as cached, since it was not there before the statement.
"""

from __future__ import annotations

import functools
import itertools
import threading
from concurrent.futures import CancelledError, ThreadPoolExecutor
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
        f"Function {function!r}: no cached answer for this input, and replay mode ({environment.CACHE_MODE}=replay, "
        "--cache-mode replay or the dbt plugin's cache_mode: replay) computes nothing"
    )


@dataclass(frozen=True)
class Answer:
    """One input's answer: the `sutro_run` value, the v1 response when a call of this Client
    computed it (None when it came from the cache), and whether the cache had it."""

    row: dict[str, Any]
    response: dict[str, Any] | None
    cached: bool


def _computed(ref: FunctionRef, response: dict[str, Any], usage: Stats) -> Answer:
    """The Answer of a response a call of this pool got, its usage added to `usage`."""
    usage.count_usage(response.get("usage"))
    return Answer(engine_row(response, ref), response, False)


class _CallGroup:
    """The inputs one caller computes, with one outcome each (an Answer or the exception of its
    call) and one event set when every outcome is in."""

    def __init__(self, payloads: list[Any]) -> None:
        self.payloads = payloads
        self.outcomes: list[Answer | BaseException | None] = [None] * len(payloads)
        self.done = threading.Event()
        self.fatal: BaseException | None = None  # set on a fatal error: send nothing more
        self._positions = itertools.count()  # the next input to send (`next` is atomic)

    def claim(self) -> int | None:
        """The next input nobody has sent yet, or None."""
        position = next(self._positions)
        return position if position < len(self.payloads) and self.fatal is None else None

    def fail(self, position: int, exc: BaseException) -> None:
        self.outcomes[position] = exc
        if not isinstance(exc, SutroSQLError) or exc.fatal:
            self.fatal = exc

    def settle(self) -> None:
        """Every input not answered gets the fatal error that stopped the group, or, when its
        task never ran (the client was closed), an error saying so; then wake the waiters."""
        unsent = self.fatal or ConfigurationError("the client was closed before this call ran")
        self.outcomes = [unsent if outcome is None else outcome for outcome in self.outcomes]
        self.done.set()


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
        self._inflight: dict[str, tuple[_CallGroup, int]] = {}  # answer key -> its group, position
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
                computed_here = self._computed.get(epoch, set()) if epoch is not None else set()
                for canonical, key in keys.items():
                    if key in stored:
                        cached = key not in computed_here
                        results[canonical] = Answer(cached_row(ref, stored[key], cached=cached), None, cached)
        if self.replay:
            for canonical in payloads:
                results.setdefault(canonical, replay_miss(ref.name))
            return results
        todo = [canonical for canonical in payloads if canonical not in results]
        joined: dict[str, tuple[_CallGroup, int]] = {}
        mine: list[str] = []
        with self._lock:  # join the calls in flight, and register the new ones before anyone else looks
            for canonical in todo:
                entry = self._inflight.get(keys[canonical]) if use_cache else None
                if entry is None:
                    mine.append(canonical)
                else:
                    joined[canonical] = entry
            group = _CallGroup([payloads[canonical] for canonical in mine])
            started = [keys[canonical] for canonical in mine] if use_cache else []
            for position, key in enumerate(started):
                self._inflight[key] = (group, position)
        try:
            if mine:
                self._run(ref, group, confidence_scoring)
            for other, _ in joined.values():
                other.done.wait()
            outcomes = [(canonical, group.outcomes[position]) for position, canonical in enumerate(mine)]
            outcomes += [(canonical, other.outcomes[position]) for canonical, (other, position) in joined.items()]
            for canonical, outcome in outcomes:
                if isinstance(outcome, SutroSQLError) and not outcome.fatal:
                    results[canonical] = outcome
                elif isinstance(outcome, BaseException):
                    raise outcome
                else:
                    results[canonical] = outcome
            fresh = [
                (keys[canonical], answer.row)
                for canonical in mine
                if use_cache and isinstance(answer := results[canonical], Answer)
            ]
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

    def _run(self, ref: FunctionRef, group: _CallGroup, confidence_scoring: bool) -> None:
        """Compute every input of `group` and settle it: `max_concurrency` workers pulling one
        input at a time or, when the backend answers many inputs in one call (the embedded engine
        encodes a batch at once), at most `max_concurrency` batched calls. The calling thread is
        one of them (it would only wait otherwise); the others run on the pool."""
        count = len(group.payloads)
        if count > 1 and isinstance(self.backend, RunsFunctionsInBatches):
            size = max(MIN_BATCH_INPUTS, -(-count // self.max_concurrency))
            work = [
                functools.partial(
                    self._call_many, ref, group, range(start, min(start + size, count)), confidence_scoring
                )
                for start in range(0, count, size)
            ]
        else:
            work = [functools.partial(self._call_each, ref, group, confidence_scoring)] * min(
                count, self.max_concurrency
            )
        try:
            tasks = [self._executor.submit(call) for call in work[1:]]
            work[0]()
            for task in tasks:
                try:
                    task.result()
                except CancelledError:  # the pool was closed before the task ran
                    pass
        finally:
            group.settle()

    def _call_each(self, ref: FunctionRef, group: _CallGroup, confidence_scoring: bool) -> None:
        """Send `group`'s inputs one per call until none is left (counted once, at the end)."""
        calls = 0
        usage = Stats()
        try:
            while (position := group.claim()) is not None:
                calls += 1
                try:
                    response = self.backend.run_function(
                        ref.name, group.payloads[position], confidence_scoring=confidence_scoring
                    )
                    group.outcomes[position] = _computed(ref, response, usage)
                except BaseException as exc:
                    group.fail(position, exc)
        finally:
            self.stats.count(calls=calls, **usage.usage())

    def _call_many(self, ref: FunctionRef, group: _CallGroup, positions: range, confidence_scoring: bool) -> None:
        """Answer `group`'s inputs at `positions` in one call."""
        if group.fatal is not None:
            return
        self.stats.count(calls=len(positions))
        payloads = [group.payloads[position] for position in positions]
        try:
            if len(payloads) > 1 and isinstance(self.backend, RunsFunctionsInBatches):
                responses = self.backend.run_function_many(ref.name, payloads, confidence_scoring=confidence_scoring)
            else:
                responses = [self.backend.run_function(ref.name, payloads[0], confidence_scoring=confidence_scoring)]
        except BaseException as exc:  # the whole call failed: every input of it did
            for position in positions:
                group.fail(position, exc)
            return
        usage = Stats()
        for position, response in zip(positions, responses, strict=True):
            try:
                if isinstance(response, SutroSQLError):
                    raise response
                group.outcomes[position] = _computed(ref, response, usage)
            except BaseException as exc:  # its error, or a response no answer can be made of
                group.fail(position, exc)
        self.stats.count(**usage.usage())

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
