"""The worker pool: threads that claim batch jobs from the store and run them chunk by chunk.

Each chunk is answered by the engine (one retry if the engine raises for the
whole chunk; a second failure fails the job), then committed with its counters
in one transaction. Between chunks a worker checks for cancel, for shutdown
(it hands the job back so another process can go on at once) and for a waiting
job of higher priority (it requeues its own job, keeping the finished rows).
A lease-renewal thread keeps the leases of held jobs alive while a chunk runs.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from ...engines.base import Engine, EngineAnswer, RowFailure
from ...errors import ServerError
from ...functions import FunctionSpec
from .answers import batch_output, usage_tokens
from .store import Claim, JobStore, RowResult

logger = logging.getLogger("sutro_sql.local")


@dataclass
class WorkerSettings:
    """Knobs read at use time, so tests can shorten them on a live backend."""

    chunk_size: int = 64
    #: A chunk the engine answered in under `fast_chunk_seconds` doubles the next one, up to
    #: this: with an instant engine the store's per-chunk work would dominate; a chunk that
    #: takes the engine any time keeps `chunk_size` (what a crash or a cancel may wait for).
    max_chunk_size: int = 4096
    fast_chunk_seconds: float = 0.001
    lease_seconds: float = 30.0
    poll_interval: float = 0.2
    retry_delay: float = 0.5
    price_per_1k_tokens: float = 0.0


def parse_json_texts(texts: Iterable[str]) -> list[Any]:
    """Many JSON texts parsed as one array: ~6x faster than a json.loads each."""
    return json.loads(f"[{','.join(texts)}]")


def answer_rows(engine: Engine, spec: FunctionSpec, rows: list[dict[str, str]]) -> list[EngineAnswer | RowFailure]:
    """The engine's answers for `rows`, checked to be one per row."""
    answers = engine.answer(spec, rows)
    if len(answers) != len(rows):
        raise ServerError(f"engine {engine.name!r} returned {len(answers)} answers for {len(rows)} rows")
    return answers


def chunk_results(
    spec: FunctionSpec,
    engine_name: str,
    chunk: list[tuple[int, str]],
    rows: list[dict[str, str]],
    answers: list[EngineAnswer | RowFailure],
) -> tuple[list[RowResult], int, int]:
    """What to commit for a chunk: one RowResult per row, and the tokens of the answered rows.
    A RowFailure, or an answer that cannot be stored as JSON, fails only its row."""
    results, input_tokens, output_tokens = [], 0, 0
    for (idx, _), row, answer in zip(chunk, rows, answers, strict=True):
        if isinstance(answer, RowFailure):
            results.append(RowResult(idx, None, None, answer.message))
            continue
        try:
            output = batch_output(spec, answer)
        except (TypeError, ValueError) as exc:
            results.append(RowResult(idx, None, None, f"engine {engine_name!r} gave an unusable answer: {exc}"))
            continue
        tokens_in, tokens_out = usage_tokens(answer, row)
        input_tokens += tokens_in
        output_tokens += tokens_out
        results.append(RowResult(idx, output, float(answer.confidence), None))
    return results, input_tokens, output_tokens


class WorkerPool:
    """`count` worker threads plus one lease-renewal thread, all daemons."""

    def __init__(
        self,
        store: JobStore,
        engine_for: Callable[[FunctionSpec], Engine],
        settings: WorkerSettings,
        count: int,
    ) -> None:
        self.store = store
        self.engine_for = engine_for
        self.settings = settings
        self.count = count
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._held: set[str] = set()
        self._held_lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        if self._threads:
            return
        for index in range(self.count):
            self._threads.append(threading.Thread(target=self._work, name=f"sutro-worker-{index}", daemon=True))
        self._threads.append(threading.Thread(target=self._renew_leases, name="sutro-lease", daemon=True))
        for thread in self._threads:
            thread.start()

    def wake(self) -> None:
        """A job was just submitted here: look now instead of at the next poll."""
        self._wake.set()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        self._threads = []

    # -- threads -----------------------------------------------------------------------------

    def _work(self) -> None:
        while not self._stop.is_set():
            try:
                claim = self.store.claim(self.owner, self.settings.lease_seconds)
                if claim is None:
                    self._wake.wait(self.settings.poll_interval)
                    self._wake.clear()
                    continue
                with self._held_lock:
                    self._held.add(claim.job_id)
                try:
                    self._run(claim)
                except Exception as exc:
                    if self._stop.is_set():
                        return
                    logger.exception("worker %s: job %s failed unexpectedly", self.owner, claim.job_id)
                    message = f"internal error in the local deployment: {exc!r}"
                    self.store.finish(claim.job_id, self.owner, "FAILED", failure_message=message)
                finally:
                    with self._held_lock:
                        self._held.discard(claim.job_id)
            except Exception:
                if self._stop.is_set():
                    return  # the store was closed under us while shutting down
                logger.exception("worker %s: unexpected error; retrying", self.owner)
                self._stop.wait(1.0)

    def _renew_leases(self) -> None:
        while not self._stop.wait(self.settings.lease_seconds / 3):
            with self._held_lock:
                held = sorted(self._held)
            try:
                self.store.renew_leases(self.owner, held, self.settings.lease_seconds)
            except Exception:
                if self._stop.is_set():
                    return
                logger.exception("worker %s: could not renew leases", self.owner)

    # -- one job -----------------------------------------------------------------------------

    def _run(self, claim: Claim) -> None:
        job_id, owner, settings = claim.job_id, self.owner, self.settings
        spec = FunctionSpec.model_validate_json(claim.spec_json)
        try:
            engine = self.engine_for(spec)
        except Exception as exc:
            self.store.finish(job_id, owner, "FAILED", failure_message=f"cannot load the engine: {exc}")
            return
        status = self.store.mark_running(job_id, owner)
        after = -1
        size = settings.chunk_size
        while status is not None:
            if status == "CANCELLING":
                self.store.finish(job_id, owner, "CANCELLED")
                return
            if self._stop.is_set():
                self.store.release(job_id, owner)
                return
            if self.store.higher_priority_waiting(claim.priority):
                self.store.release(job_id, owner, requeue=True)
                self._wake.set()
                return
            chunk = self.store.pending_rows(job_id, after, size)
            if not chunk:
                if not self.store.finish(job_id, owner, "SUCCEEDED", job_cost_per_1k=settings.price_per_1k_tokens):
                    self.store.release(job_id, owner)  # rows left unfinished: let a fresh claim redo them
                return
            rows = parse_json_texts([data for _, data in chunk])
            started = time.perf_counter()
            try:
                answers = self._answer_with_retry(engine, spec, rows)
            except Exception as exc:
                message = f"engine {engine.name!r} failed on rows {chunk[0][0]}-{chunk[-1][0]}: {exc}"
                self.store.finish(job_id, owner, "FAILED", failure_message=message)
                return
            if time.perf_counter() - started < settings.fast_chunk_seconds:
                size = max(size, min(2 * size, settings.max_chunk_size))
            results, input_tokens, output_tokens = chunk_results(spec, engine.name, chunk, rows, answers)
            status = self.store.commit_rows(job_id, owner, results, input_tokens, output_tokens, settings.lease_seconds)
            after = chunk[-1][0]

    def _answer_with_retry(
        self, engine: Engine, spec: FunctionSpec, rows: list[dict[str, str]]
    ) -> list[EngineAnswer | RowFailure]:
        try:
            return answer_rows(engine, spec, rows)
        except Exception as exc:
            logger.warning("engine %r failed on a chunk (%s); retrying once", engine.name, exc)
            self._stop.wait(self.settings.retry_delay)
            return answer_rows(engine, spec, rows)
