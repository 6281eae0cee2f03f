"""Waiting for a batch job: a progress bar fed by the backend's progress stream, then a status
poll, because a stream that ends does not prove the job ended (v1 §5.5)."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Iterator
from typing import Any

from .backends.base import TERMINAL_STATUSES, Backend
from .errors import BackendUnavailableError, JobFailedError, JobTimeoutError, ServerError
from .progress import ProgressBar
from .wire import Job

logger = logging.getLogger("sutro_sql.client")


class JobWaiter:
    """Waits for jobs of one backend. `poll_interval`: seconds between status polls once a
    progress stream has ended without a final status."""

    def __init__(self, backend: Backend, poll_interval: float = 1.0) -> None:
        self.backend = backend
        self.poll_interval = poll_interval

    def wait(self, job_id: str, *, timeout: float | None = None, progress: bool | None = None) -> Job:
        """Wait until the job is SUCCEEDED and return its final job object. Raises JobFailedError
        on FAILED/CANCELLED and JobTimeoutError when `timeout` seconds pass first (the job keeps
        running)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        job = self.job(job_id)
        with ProgressBar(job.num_rows, job.name or job.model or job_id, enabled=progress) as bar:
            bar.update(job.rows_done or 0)
            if job.status not in TERMINAL_STATUSES:
                self._follow_progress(job_id, bar, deadline)
                job = self._poll_until_terminal(job_id, deadline)
                bar.update(job.rows_done or bar.done)
        if job.status != "SUCCEEDED":
            reason = job.failure_reason.message if job.failure_reason and job.failure_reason.message else None
            raise JobFailedError(f"Job {job_id} ended {job.status}: {reason or 'no reason given'}")
        return job

    def job(self, job_id: str) -> Job:
        """The backend's job object, read through the v1 model (typed fields, defaults for the rest)."""
        return Job.model_validate(self.backend.get_job(job_id))

    def _follow_progress(self, job_id: str, bar: ProgressBar, deadline: float | None) -> None:
        """Feed the bar from the progress stream until it ends, the job is terminal, or time runs out.
        A broken stream only costs the bar its updates: the caller goes on polling the status."""
        done = bar.done
        try:
            for event in _events_until(self.backend.stream_job_progress(job_id), deadline, job_id):
                kind, result = event.get("update_type"), event.get("result")
                if kind == "progress" and isinstance(result, int):
                    done = result
                    bar.update(done)
                elif kind == "tokens" and isinstance(result, dict):
                    bar.update(done, input_tokens=result.get("input_tokens"), output_tokens=result.get("output_tokens"))
                elif kind == "heartbeat" and self.backend.get_job_status(job_id) in TERMINAL_STATUSES:
                    return
        except (BackendUnavailableError, ServerError) as exc:
            logger.warning("progress stream of job %s broke (%s); polling its status instead", job_id, exc)

    def _poll_until_terminal(self, job_id: str, deadline: float | None) -> Job:
        while True:
            job = self.job(job_id)
            if job.status in TERMINAL_STATUSES:
                return job
            if deadline is not None and time.monotonic() >= deadline:
                raise _timeout(job_id)
            pause = self.poll_interval if deadline is None else min(self.poll_interval, deadline - time.monotonic())
            time.sleep(max(pause, 0.0))


def _events_until(events: Iterator[dict[str, Any]], deadline: float | None, job_id: str) -> Iterator[dict[str, Any]]:
    """Yield stream events, but give up at `deadline` even while the stream is silent.

    The stream is read on a daemon thread so a quiet stream cannot block past the deadline;
    an error raised by the stream is re-raised here."""
    if deadline is None:
        yield from events
        return
    inbox: queue.Queue[tuple[str, Any]] = queue.Queue()

    def pump() -> None:
        try:
            for event in events:
                inbox.put(("event", event))
            inbox.put(("end", None))
        except BaseException as exc:  # handed to the waiting thread
            inbox.put(("error", exc))

    threading.Thread(target=pump, name=f"sutro-progress-{job_id}", daemon=True).start()
    while True:
        try:
            kind, value = inbox.get(timeout=max(deadline - time.monotonic(), 0.0))
        except queue.Empty:
            raise _timeout(job_id) from None
        if kind == "end":
            return
        if kind == "error":
            raise value
        yield value


def _timeout(job_id: str) -> JobTimeoutError:
    return JobTimeoutError(f"Timed out waiting for job {job_id}; it keeps running (see get_job_status).")
