"""The persistent job store: one SQLite file under the home, safe for several processes.

Why SQLite this way: WAL lets readers run beside one writer, `busy_timeout`
makes concurrent writers wait instead of failing, and every write is a short
`BEGIN IMMEDIATE` transaction (take the write lock first, so two processes
never both decide to claim the same job). Rows are committed per chunk as they
finish, so a crash loses at most the chunk in flight.

A worker holds a job through a lease (owner id + expiry). Every write a worker
makes checks that it still owns the lease, so a worker that lost its job (it
stalled past the expiry and another process took over) can never overwrite
rows or counters. A job whose lease expired is claimable again, and only its
unfinished rows are computed. The lease also records the owner's host and pid:
a lease held by a process of this host that no longer exists (killed by
SIGKILL, say) counts as expired at once, so recovery does not wait out the
expiry; owners on other hosts cannot be checked and keep their expiry.

Statuses are the v1 ones plus CREATING: a job whose rows are still being
written by `submit_batch`. It is invisible (not listed, not found) until it
becomes QUEUED, and deleted if the submission fails.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from ...errors import ServerError

CREATING = "CREATING"
ACTIVE_STATUSES = ("STARTING", "RUNNING", "CANCELLING")
_SCHEMA_VERSION = 2
_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id TEXT NOT NULL UNIQUE,
    function TEXT NOT NULL,
    revision TEXT NOT NULL,
    spec TEXT NOT NULL,
    status TEXT NOT NULL,
    run_type TEXT NOT NULL,
    priority INTEGER NOT NULL,
    num_rows INTEGER,
    name TEXT,
    description TEXT,
    id_column TEXT,
    content_key TEXT,
    created REAL NOT NULL,
    started REAL,
    completed REAL,
    rows_done INTEGER NOT NULL DEFAULT 0,
    rows_failed INTEGER NOT NULL DEFAULT 0,
    input_tokens INTEGER NOT NULL DEFAULT 0,
    output_tokens INTEGER NOT NULL DEFAULT 0,
    job_cost REAL,
    cost_estimate REAL,
    estimated_input_tokens INTEGER,
    estimated_output_tokens INTEGER,
    failure_reason TEXT,
    lease_owner TEXT,
    lease_expires REAL NOT NULL DEFAULT 0,
    lease_host TEXT,
    lease_pid INTEGER
);
CREATE INDEX IF NOT EXISTS jobs_by_status ON jobs (status, priority, seq);
CREATE INDEX IF NOT EXISTS jobs_by_content_key ON jobs (content_key);
CREATE TABLE IF NOT EXISTS job_rows (
    job_id TEXT NOT NULL,
    idx INTEGER NOT NULL,
    input TEXT NOT NULL,
    id_value TEXT,
    done INTEGER NOT NULL DEFAULT 0,
    output TEXT,
    confidence REAL,
    error TEXT,
    PRIMARY KEY (job_id, idx)
) WITHOUT ROWID;
"""
#: Version 1 homes lack the lease's host and pid.
_MIGRATIONS = {1: "ALTER TABLE jobs ADD COLUMN lease_host TEXT; ALTER TABLE jobs ADD COLUMN lease_pid INTEGER;"}

#: SQL: has this job's lease lapsed (expired, or its owner process is gone)? Binds the current time.
_LEASE_LAPSED = "(lease_expires < ? OR lease_owner_gone(lease_host, lease_pid))"
#: The next job a worker should take: waiting ones, and held ones whose lease lapsed.
_CLAIMABLE = (
    "SELECT {columns} FROM jobs WHERE status = 'QUEUED'"
    f" OR (status IN ('STARTING', 'RUNNING', 'CANCELLING') AND {_LEASE_LAPSED})"
    " ORDER BY priority DESC, seq LIMIT 1"
)


def _process_space() -> str:
    """This host as lease owners are recorded: the hostname, plus on Linux the pid namespace, so a
    container sharing the hostname but not our pids is another host."""
    try:
        return f"{socket.gethostname()}/{os.readlink('/proc/self/ns/pid')}"
    except OSError:
        return socket.gethostname()


_HOST = _process_space()


def _lease_owner_gone(host: str | None, pid: int | None) -> bool:
    """Is the recorded owner a process of this host that no longer exists? Unknown -> no."""
    if host != _HOST or pid is None or os.name != "posix":  # on Windows os.kill(pid, 0) is not a probe
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # PermissionError: it exists, owned by another user
        return False
    return False


@dataclass(frozen=True)
class Claim:
    """A job a worker now holds."""

    job_id: str
    spec_json: str
    status: str
    priority: int


class RowResult(NamedTuple):
    """What a chunk commit writes for one row: an answer (output JSON text) or an error.
    (A tuple: one is made per row, and a frozen dataclass costs ~1 us more each.)"""

    idx: int
    output: str | None
    confidence: float | None
    error: str | None


class JobStore:
    """Jobs and their rows in `<home>/jobs.sqlite3`. Thread-safe: one connection per thread,
    opened and closed only by that thread."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()  # a thread's connection closes with its thread at the latest
        self._closed = False
        con = self._connection()
        if con.execute("PRAGMA user_version").fetchone()[0] != _SCHEMA_VERSION:
            with self._transaction():
                version = con.execute("PRAGMA user_version").fetchone()[0]
                for statement in (_MIGRATIONS.get(version, "") + _SCHEMA).split(";"):
                    if statement.strip():
                        con.execute(statement)
                con.execute(f"PRAGMA user_version = {_SCHEMA_VERSION}")

    # -- connections and transactions -------------------------------------------------------

    def _connection(self) -> sqlite3.Connection:
        if self._closed:
            self._close_own_connection()
            raise RuntimeError("the job store is closed")
        con = getattr(self._local, "con", None)
        if con is None:
            con = sqlite3.connect(self.path, timeout=60, isolation_level=None, check_same_thread=False)
            con.row_factory = sqlite3.Row
            con.create_function("lease_owner_gone", 2, _lease_owner_gone)
            con.execute("PRAGMA busy_timeout = 60000")
            con.execute("PRAGMA journal_mode = WAL")
            con.execute("PRAGMA synchronous = NORMAL")
            self._local.con = con
        return con

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction that takes the write lock up front (BEGIN IMMEDIATE)."""
        con = self._connection()
        con.execute("BEGIN IMMEDIATE")
        try:
            yield con
        except BaseException:
            if con.in_transaction:
                con.execute("ROLLBACK")
            raise
        if con.in_transaction:
            con.execute("COMMIT")

    def close(self) -> None:
        """Closes the store: this thread's connection now, every other thread's at its next use
        of the store (which then raises) or when the thread ends. A connection is never closed
        from another thread: closing one while its thread is inside a query can crash SQLite
        (a progress stream's reader thread outliving its backend did, intermittently)."""
        self._closed = True
        self._close_own_connection()

    def _close_own_connection(self) -> None:
        con = getattr(self._local, "con", None)
        if con is not None:
            self._local.con = None
            with contextlib.suppress(sqlite3.Error):
                con.close()

    # -- creating jobs -----------------------------------------------------------------------

    def live_job(self, content_key: str, run_type: str) -> str | None:
        """The newest job holding `content_key` that is neither FAILED, CANCELLED nor still being created."""
        row = (
            self._connection()
            .execute(
                "SELECT job_id FROM jobs WHERE content_key = ? AND run_type = ?"
                " AND status NOT IN ('FAILED', 'CANCELLED', ?) ORDER BY seq DESC LIMIT 1",
                (content_key, run_type, CREATING),
            )
            .fetchone()
        )
        return row["job_id"] if row else None

    def begin_job(
        self,
        *,
        job_id: str,
        function: str,
        revision: str,
        spec_json: str,
        run_type: str,
        priority: int,
        name: str | None,
        description: str | None,
        id_column: str | None,
        content_key: str | None,
        owner: str,
        lease_seconds: float,
    ) -> str | None:
        """Insert a CREATING job, or return the id of the live job already holding `content_key`
        (waiting while that one is still being created). Atomic across processes."""
        while True:
            now = time.time()
            with self._transaction() as con:
                if content_key is not None:
                    existing = con.execute(
                        f"SELECT job_id, status, {_LEASE_LAPSED} AS lapsed FROM jobs"
                        " WHERE content_key = ? AND run_type = ? AND status NOT IN ('FAILED', 'CANCELLED')"
                        " ORDER BY seq DESC LIMIT 1",
                        (now, content_key, run_type),
                    ).fetchone()
                    if existing is not None and existing["status"] != CREATING:
                        return existing["job_id"]
                    if existing is not None and existing["lapsed"]:
                        self._delete(con, existing["job_id"])  # its creator died mid-submission
                        existing = None
                    if existing is not None:
                        con.execute("COMMIT")
                        time.sleep(0.05)
                        continue
                con.execute(
                    "INSERT INTO jobs (job_id, function, revision, spec, status, run_type, priority, name,"
                    " description, id_column, content_key, created, lease_owner, lease_expires, lease_host, lease_pid)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        job_id,
                        function,
                        revision,
                        spec_json,
                        CREATING,
                        run_type,
                        priority,
                        name,
                        description,
                        id_column,
                        content_key,
                        now,
                        owner,
                        now + lease_seconds,
                        _HOST,
                        os.getpid(),
                    ),
                )
                return None

    def add_rows(self, job_id: str, rows: Sequence[tuple[int, str, str | None]], lease_seconds: float) -> None:
        """Append (idx, input JSON, id JSON) rows to a CREATING job and extend its creation lease."""
        with self._transaction() as con:
            renewed = con.execute(
                "UPDATE jobs SET lease_expires = ? WHERE job_id = ? AND status = ?",
                (time.time() + lease_seconds, job_id, CREATING),
            )
            if renewed.rowcount == 0:
                raise ServerError(f"Job {job_id} was abandoned while its rows were being written; submit again.")
            con.executemany(
                "INSERT INTO job_rows (job_id, idx, input, id_value) VALUES (?, ?, ?, ?)",
                [(job_id, idx, data, id_value) for idx, data, id_value in rows],
            )

    def open_job(self, job_id: str, num_rows: int) -> None:
        """CREATING -> QUEUED: the job becomes visible and claimable."""
        with self._transaction() as con:
            opened = con.execute(
                "UPDATE jobs SET status = 'QUEUED', num_rows = ?, lease_owner = NULL, lease_expires = 0"
                " WHERE job_id = ? AND status = ?",
                (num_rows, job_id, CREATING),
            )
            if opened.rowcount == 0:
                raise ServerError(f"Job {job_id} was abandoned while its rows were being written; submit again.")

    def complete_estimate(self, job_id: str, num_rows: int, input_tokens: int, output_tokens: int, cost: float) -> None:
        """CREATING -> SUCCEEDED for a dry run: the estimate is known at submission."""
        now = time.time()
        with self._transaction() as con:
            con.execute(
                "UPDATE jobs SET status = 'SUCCEEDED', num_rows = ?, estimated_input_tokens = ?,"
                " estimated_output_tokens = ?, cost_estimate = ?, started = ?, completed = ?,"
                " lease_owner = NULL, lease_expires = 0 WHERE job_id = ?",
                (num_rows, input_tokens, output_tokens, cost, now, now, job_id),
            )

    def discard_job(self, job_id: str) -> None:
        """Remove a job that failed during submission, with its rows."""
        with self._transaction() as con:
            self._delete(con, job_id)

    def purge_abandoned_creations(self) -> None:
        """Delete CREATING jobs whose submitting process died (creation lease lapsed)."""
        with self._transaction() as con:
            for row in con.execute(
                f"SELECT job_id FROM jobs WHERE status = ? AND {_LEASE_LAPSED}", (CREATING, time.time())
            ).fetchall():
                self._delete(con, row["job_id"])

    @staticmethod
    def _delete(con: sqlite3.Connection, job_id: str) -> None:
        con.execute("DELETE FROM job_rows WHERE job_id = ?", (job_id,))
        con.execute("DELETE FROM jobs WHERE job_id = ?", (job_id,))

    # -- workers -----------------------------------------------------------------------------

    def claim(self, owner: str, lease_seconds: float) -> Claim | None:
        """Take the next job: priority 1 before 0, then oldest first; a job whose lease lapsed
        (its worker died) counts as waiting. An abandoned CANCELLING job is settled as CANCELLED."""
        while True:
            now = time.time()
            if self._connection().execute(_CLAIMABLE.format(columns="1"), (now,)).fetchone() is None:
                return None  # a plain read: idle workers never take the write lock
            with self._transaction() as con:
                row = con.execute(_CLAIMABLE.format(columns="job_id, spec, status, priority"), (now,)).fetchone()
                if row is None:
                    return None
                if row["status"] == "CANCELLING":
                    con.execute(
                        "UPDATE jobs SET status = 'CANCELLED', completed = ?, lease_owner = NULL, lease_expires = 0"
                        " WHERE job_id = ?",
                        (now, row["job_id"]),
                    )
                    continue
                status = "STARTING" if row["status"] == "QUEUED" else row["status"]
                con.execute(
                    "UPDATE jobs SET status = ?, lease_owner = ?, lease_expires = ?, lease_host = ?, lease_pid = ?,"
                    " started = COALESCE(started, ?) WHERE job_id = ?",
                    (status, owner, now + lease_seconds, _HOST, os.getpid(), now, row["job_id"]),
                )
                return Claim(row["job_id"], row["spec"], status, row["priority"])

    def mark_running(self, job_id: str, owner: str) -> str | None:
        """STARTING -> RUNNING; returns the job's status after, or None if the lease was lost."""
        with self._transaction() as con:
            status = self._owned_status(con, job_id, owner)
            if status == "STARTING":
                con.execute("UPDATE jobs SET status = 'RUNNING' WHERE job_id = ?", (job_id,))
                status = "RUNNING"
            return status

    def pending_rows(self, job_id: str, after_idx: int, limit: int) -> list[tuple[int, str]]:
        """Up to `limit` unfinished rows after `after_idx`, in input order: (idx, input JSON)."""
        return self._tuples(
            "SELECT idx, input FROM job_rows WHERE job_id = ? AND idx > ? AND done = 0 ORDER BY idx LIMIT ?",
            (job_id, after_idx, limit),
        )

    def commit_rows(
        self,
        job_id: str,
        owner: str,
        results: Sequence[RowResult],
        input_tokens: int,
        output_tokens: int,
        lease_seconds: float,
    ) -> str | None:
        """Write a finished chunk and its counters, and renew the lease, in one transaction.
        Returns the job's status after, or None (nothing written) if the lease was lost."""
        with self._transaction() as con:
            status = self._owned_status(con, job_id, owner)
            if status is None:
                return None
            before = con.total_changes
            con.executemany(
                "UPDATE job_rows SET done = 1, output = ?, confidence = ?, error = ?"
                " WHERE job_id = ? AND idx = ? AND done = 0",
                [(r.output, r.confidence, None, job_id, r.idx) for r in results if r.error is None],
            )
            written = con.total_changes - before
            con.executemany(
                "UPDATE job_rows SET done = 1, output = ?, confidence = ?, error = ?"
                " WHERE job_id = ? AND idx = ? AND done = 0",
                [(r.output, r.confidence, r.error, job_id, r.idx) for r in results if r.error is not None],
            )
            failed = con.total_changes - before - written
            written += failed
            con.execute(
                "UPDATE jobs SET rows_done = rows_done + ?, rows_failed = rows_failed + ?,"
                " input_tokens = input_tokens + ?, output_tokens = output_tokens + ?, lease_expires = ?"
                " WHERE job_id = ?",
                (written, failed, input_tokens, output_tokens, time.time() + lease_seconds, job_id),
            )
            return status

    def finish(
        self,
        job_id: str,
        owner: str,
        status: str,
        *,
        job_cost_per_1k: float | None = None,
        failure_message: str | None = None,
    ) -> bool:
        """End a job held by `owner`: SUCCEEDED (job_cost from its tokens; refused while any row is
        unfinished, so a SUCCEEDED job's results are always complete), FAILED or CANCELLED."""
        now = time.time()
        with self._transaction() as con:
            if self._owned_status(con, job_id, owner) is None:
                return False
            if (
                status == "SUCCEEDED"
                and con.execute("SELECT 1 FROM job_rows WHERE job_id = ? AND done = 0 LIMIT 1", (job_id,)).fetchone()
            ):
                return False
            con.execute(
                "UPDATE jobs SET status = ?, completed = ?, lease_owner = NULL, lease_expires = 0,"
                " job_cost = CASE WHEN ? IS NULL THEN job_cost"
                " ELSE ROUND((input_tokens + output_tokens) / 1000.0 * ?, 10) END,"
                " failure_reason = ? WHERE job_id = ?",
                (
                    status,
                    now,
                    job_cost_per_1k,
                    job_cost_per_1k,
                    None if failure_message is None else json.dumps({"message": failure_message}),
                    job_id,
                ),
            )
            return True

    def release(self, job_id: str, owner: str, *, requeue: bool = False) -> None:
        """Give a held job back: claimable at once by any worker (its finished rows are kept)."""
        with self._transaction() as con:
            if self._owned_status(con, job_id, owner) is None:
                return
            con.execute(
                "UPDATE jobs SET lease_owner = NULL, lease_expires = 0,"
                " status = CASE WHEN ? AND status = 'RUNNING' THEN 'QUEUED' ELSE status END WHERE job_id = ?",
                (requeue, job_id),
            )

    def renew_leases(self, owner: str, job_ids: Sequence[str], lease_seconds: float) -> None:
        if not job_ids:
            return
        marks = ", ".join("?" for _ in job_ids)
        with self._transaction() as con:
            con.execute(
                f"UPDATE jobs SET lease_expires = ? WHERE lease_owner = ? AND job_id IN ({marks})",
                (time.time() + lease_seconds, owner, *job_ids),
            )

    def higher_priority_waiting(self, priority: int) -> bool:
        """Is a QUEUED job of higher priority than `priority` waiting?"""
        row = (
            self._connection()
            .execute("SELECT 1 FROM jobs WHERE status = 'QUEUED' AND priority > ? LIMIT 1", (priority,))
            .fetchone()
        )
        return row is not None

    @staticmethod
    def _owned_status(con: sqlite3.Connection, job_id: str, owner: str) -> str | None:
        row = con.execute("SELECT status, lease_owner FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
        if row is None or row["lease_owner"] != owner:
            return None
        return row["status"]

    # -- reading and cancelling --------------------------------------------------------------

    def get(self, job_id: str) -> dict[str, Any] | None:
        row = (
            self._connection()
            .execute("SELECT * FROM jobs WHERE job_id = ? AND status != ?", (job_id, CREATING))
            .fetchone()
        )
        return None if row is None else dict(row)

    def list(self) -> list[dict[str, Any]]:
        rows = self._connection().execute("SELECT * FROM jobs WHERE status != ? ORDER BY seq DESC", (CREATING,))
        return [dict(row) for row in rows]

    def request_cancel(self, job_id: str) -> str | None:
        """QUEUED -> CANCELLED at once; STARTING/RUNNING -> CANCELLING (the worker stops between
        chunks). Returns the status after, or None for an unknown job."""
        with self._transaction() as con:
            row = con.execute("SELECT status FROM jobs WHERE job_id = ? AND status != ?", (job_id, CREATING)).fetchone()
            if row is None:
                return None
            status = row["status"]
            if status == "QUEUED":
                con.execute(
                    "UPDATE jobs SET status = 'CANCELLED', completed = ? WHERE job_id = ?", (time.time(), job_id)
                )
                return "CANCELLED"
            if status in ("STARTING", "RUNNING"):
                con.execute("UPDATE jobs SET status = 'CANCELLING' WHERE job_id = ?", (job_id,))
                return "CANCELLING"
            return status

    def rows(self, job_id: str) -> list[sqlite3.Row]:
        """Every row of a job in input order: input, id_value, output, confidence, error, done."""
        return (
            self._connection()
            .execute(
                "SELECT input, id_value, output, confidence, error, done FROM job_rows WHERE job_id = ? ORDER BY idx",
                (job_id,),
            )
            .fetchall()
        )

    def result_rows(self, job_id: str, after_idx: int, limit: int, *, inputs: bool = True) -> list[tuple[Any, ...]]:
        """Up to `limit` rows after `after_idx` in input order: (idx, input, id_value, output,
        confidence, error, done); input is None unless `inputs`. Read chunk by chunk, a job's
        results never sit in memory whole."""
        return self._tuples(
            f"SELECT idx, {'input' if inputs else 'NULL'}, id_value, output, confidence, error, done FROM job_rows"
            " WHERE job_id = ? AND idx > ? ORDER BY idx LIMIT ?",
            (job_id, after_idx, limit),
        )

    def _tuples(self, sql: str, parameters: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        """A query's rows as plain tuples: for row-per-row reads, where a sqlite3.Row each costs."""
        cursor = self._connection().cursor()
        cursor.row_factory = None
        try:
            return cursor.execute(sql, parameters).fetchall()
        finally:
            cursor.close()
