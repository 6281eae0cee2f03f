"""Helpers for the SQL layer tests: a counting wrapper around a real backend, and subprocess runs."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent


class CountingBackend:
    """Delegates every call to a real backend; counts real-time calls and batch submissions,
    and records the most calls seen in flight at once."""

    def __init__(self, backend: Any) -> None:
        self._backend = backend
        self.run_calls: list[Any] = []
        self.submissions = 0
        self.max_in_flight = 0
        self._in_flight = 0
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._backend, name)

    @property
    def identity(self) -> str:
        return self._backend.identity

    @property
    def home(self) -> str:
        return self._backend.home

    def run_function(self, name: str, input: Any, **kwargs: Any) -> dict[str, Any]:
        with self._counted([input]):
            return self._backend.run_function(name, input, **kwargs)

    def run_function_many(self, name: str, inputs: list[Any], **kwargs: Any) -> list[Any]:
        """One call answering several inputs (each recorded in `run_calls`)."""
        with self._counted(inputs):
            return self._backend.run_function_many(name, inputs, **kwargs)

    @contextlib.contextmanager
    def _counted(self, inputs: list[Any]) -> Iterator[None]:
        with self._lock:
            self.run_calls.extend(inputs)
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)
        try:
            yield
        finally:
            with self._lock:
                self._in_flight -= 1

    def submit_batch(self, name: str, data: Any, **kwargs: Any) -> str:
        with self._lock:
            self.submissions += 1
        return self._backend.submit_batch(name, data, **kwargs)


def run_python(code: str, home: Path, *, log: Path | None = None, timeout: float = 60) -> dict[str, Any]:
    """Run `code` in a fresh interpreter on `home` with the KeywordEngine; its last stdout line is JSON."""
    env = dict(os.environ)
    env.update(
        SUTRO_SQL_HOME=str(home),
        SUTRO_SQL_ENGINE="tests.support.engines:KeywordEngine",
        PYTHONPATH=str(REPO),
        SUTRO_SQL_PROGRESS="0",
    )
    env.pop("SUTRO_API_URL", None)
    env.pop("SUTRO_API_KEY", None)
    if log is not None:
        env["SUTRO_TEST_ENGINE_LOG"] = str(log)
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=timeout, cwd=REPO
    )
    assert done.returncode == 0, f"exit {done.returncode} after {time.monotonic() - started:.1f}s:\n{done.stderr}"
    return json.loads(done.stdout.strip().splitlines()[-1])


def logged_rows(log: Path) -> int:
    """Rows the KeywordEngine answered, across processes (one log line each)."""
    return len(log.read_text().splitlines()) if log.exists() else 0
