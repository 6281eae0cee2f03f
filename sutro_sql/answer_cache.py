"""The answer cache on disk, owned by the Client: identical inputs to one Function revision
are answered once, ever, and a batch job is submitted once for the same content.

SQLite at ``<home>/cache/answers.sqlite`` (WAL, safe across processes), with two tables:

- ``answers(key, answer)``: key = sha256(backend identity, Function, revision, canonical
  input) (`answer_key`), answer = the `sutro_run` STRUCT value as JSON;
- ``batch_jobs(backend, content_key, job_id)``: the ledger that lets a re-run of a batch (in
  this process or after a crash) re-attach to the job it already started.

Remote backends publish no revision, so their answers are keyed by the Function name alone:
after a Function is republished remotely, pass ``cache=False`` (or clear the folder) to see
new answers. Writes of many answers are one transaction.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from operator import itemgetter
from pathlib import Path
from typing import Any

from .errors import ConfigurationError

#: Keys per SQLite `IN (...)` lookup.
_SQLITE_BATCH = 500
#: One encoder for every stored answer (`json.dumps` with options builds a new one per call).
_ANSWER_JSON = json.JSONEncoder(ensure_ascii=False)


def answer_key(identity: str, function: str, revision: str, canonical_input: str) -> str:
    """The disk cache key: never contains anything secret (identity is secret-free by contract)."""
    return hashlib.sha256("\x1f".join((identity, function, revision, canonical_input)).encode()).hexdigest()


def answer_keys(identity: str, function: str, revision: str, canonical_inputs: list[str]) -> list[str]:
    """`answer_key` of many inputs of one Function revision (the prefix encoded once)."""
    prefix = "\x1f".join((identity, function, revision, "")).encode()
    return [hashlib.sha256(prefix + text.encode()).hexdigest() for text in canonical_inputs]


class AnswerCache:
    """One cache file, shared by every Client of this process that uses it (see `open`)."""

    _open: dict[Path, AnswerCache] = {}
    _open_lock = threading.Lock()

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), timeout=30, check_same_thread=False, isolation_level=None)
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS answers (key TEXT PRIMARY KEY, answer TEXT NOT NULL, created REAL)"
            )
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS batch_jobs (backend TEXT NOT NULL, content_key TEXT NOT NULL, "
                "job_id TEXT NOT NULL, created REAL, PRIMARY KEY (backend, content_key))"
            )
        except sqlite3.DatabaseError as exc:  # a committed cache checked out as a Git LFS pointer, a damaged file
            self._db.close()
            raise ConfigurationError(
                f"the answer cache {path} cannot be used: {exc}. Restore the file (a Git LFS pointer or a "
                "damaged copy is not a cache), or remove it to start an empty cache."
            ) from None

    @classmethod
    def open(cls, home: str | Path) -> AnswerCache:
        """The process-wide cache of ``<home>/cache/answers.sqlite``."""
        path = (Path(home) / "cache" / "answers.sqlite").resolve()
        with cls._open_lock:
            cache = cls._open.get(path)
            if cache is None:
                cache = cls._open[path] = cls(path)
            return cache

    def get_many(self, keys: list[str]) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        with self._lock:
            for start in range(0, len(keys), _SQLITE_BATCH):
                chunk = keys[start : start + _SQLITE_BATCH]
                marks = ",".join("?" * len(chunk))
                for key, answer in self._db.execute(f"SELECT key, answer FROM answers WHERE key IN ({marks})", chunk):
                    found[key] = json.loads(answer)
        return found

    def put_many(self, items: list[tuple[str, dict[str, Any] | str]]) -> None:
        """Store answers (or their JSON text), all in one transaction (a commit per row would cost ~5x)."""
        if not items:
            return
        now = time.time()
        rows = [(key, row if isinstance(row, str) else _ANSWER_JSON.encode(row), now) for key, row in items]
        # Keys in order touch each index page once: several times faster on a big cache. Stable, so
        # of a key given twice the last still wins.
        rows.sort(key=itemgetter(0))
        with self._lock:
            self._db.execute("BEGIN")
            try:
                self._db.executemany("INSERT OR REPLACE INTO answers (key, answer, created) VALUES (?, ?, ?)", rows)
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def find_job(self, backend: str, content_key: str) -> str | None:
        with self._lock:
            row = self._db.execute(
                "SELECT job_id FROM batch_jobs WHERE backend = ? AND content_key = ?", (backend, content_key)
            ).fetchone()
        return row[0] if row else None

    def record_job(self, backend: str, content_key: str, job_id: str) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO batch_jobs (backend, content_key, job_id, created) VALUES (?, ?, ?, ?)",
                (backend, content_key, job_id, time.time()),
            )
