"""LocalBackend durability: a job survives SIGKILL of its process and resumes elsewhere without
losing or recomputing committed rows; two processes share one home safely; stale workers
cannot write."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sutro_sql.backends.local import LocalBackend
from sutro_sql.backends.local import store as store_module
from sutro_sql.backends.local.store import JobStore, RowResult
from tests.conftest import REPO
from tests.support.local_jobs import ticket_rows, wait_for_job

# A process running LocalBackend workers over a home, with the KeywordEngine from the environment.
# argv: home, chunk_size, lease_seconds, then "serve" (run until killed) or "finish <job_id>".
WORKER_PROCESS = """
import sys, time
from sutro_sql.backends.local import LocalBackend
backend = LocalBackend(sys.argv[1], workers=1, start_workers=False)
backend.settings.chunk_size = int(sys.argv[2])
backend.settings.lease_seconds = float(sys.argv[3])
backend.settings.poll_interval = 0.05
backend.start_workers()
print("ready", flush=True)
if sys.argv[4] == "serve":
    time.sleep(600)
else:
    while backend.get_job_status(sys.argv[5]) not in ("SUCCEEDED", "FAILED", "CANCELLED"):
        time.sleep(0.05)
    print(backend.get_job_status(sys.argv[5]), flush=True)
    backend.close()
"""

# A process that waits for a start file, submits jobs to a shared home and waits for them.
# argv: home, tag, start file, jobs to submit.
SUBMITTING_PROCESS = """
import json, os, sys, time
from sutro_sql.backends.local import LocalBackend
home, tag, start_file, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
backend = LocalBackend(home, workers=1)
backend.settings.poll_interval = 0.05
print("ready", flush=True)
while not os.path.exists(start_file):
    time.sleep(0.01)
rows = lambda j: [{"id": i, "subject": f"{tag}-{j}", "body": f"bug {tag} {j} {i}"} for i in range(15)]
ids = [backend.submit_batch("ticket-triage", rows(j), id_column="id") for j in range(count)]
shared = backend.submit_batch("ticket-triage", rows("shared"), content_key="shared-key")
for job_id in ids + [shared]:
    while backend.get_job_status(job_id) not in ("SUCCEEDED", "FAILED", "CANCELLED"):
        time.sleep(0.05)
print(json.dumps({"ids": ids, "shared": shared}), flush=True)
backend.close()
"""


def start_process(script: str, home: Path, *args: str, log: Path | None = None, delay: float = 0.0):
    env = dict(os.environ)
    env.update(
        PYTHONPATH=str(REPO),
        SUTRO_SQL_HOME=str(home),
        SUTRO_SQL_ENGINE="tests.support.engines:KeywordEngine",
        SUTRO_TEST_ENGINE_DELAY=str(delay),
    )
    env.pop("SUTRO_TEST_ENGINE_LOG", None)
    if log is not None:
        env["SUTRO_TEST_ENGINE_LOG"] = str(log)
    process = subprocess.Popen(
        [sys.executable, "-c", script, str(home), *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout.readline().strip() == "ready", process.stderr.read()
    return process


def kill_once_done(process, backend: LocalBackend, job_id: str, *, rows_done: int) -> None:
    """SIGKILL `process` as soon as the job has `rows_done` committed rows (at most 30 s)."""
    try:
        deadline = time.monotonic() + 30
        while backend.get_job(job_id)["rows_done"] < rows_done:
            assert time.monotonic() < deadline, "the worker process made no progress"
            time.sleep(0.01)
    finally:
        process.send_signal(signal.SIGKILL)
        process.communicate()


def logged_texts(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines() if path.exists() else []


def row_text(row: dict) -> str:
    return f"{row['subject']} {row['body']}"


@pytest.mark.slow
def test_a_killed_job_resumes_in_a_new_process_without_losing_or_recomputing_rows(home, tmp_path, keyword_engine):
    rows = ticket_rows(300)
    log_first, log_second = tmp_path / "first.log", tmp_path / "second.log"
    with LocalBackend(home, engine=keyword_engine, start_workers=False) as backend:
        job_id = backend.submit_batch("ticket-triage", rows, id_column="id")
        first = start_process(WORKER_PROCESS, home, "4", "1.5", "serve", log=log_first, delay=0.01)
        kill_once_done(first, backend, job_id, rows_done=40)
        assert backend.get_job_status(job_id) == "RUNNING"
        stored = backend.store.rows(job_id)
        committed = {row_text(rows[i]) for i, row in enumerate(stored) if row["done"]}
        assert 40 <= len(committed) < 300

        second = start_process(WORKER_PROCESS, home, "4", "1.5", "finish", job_id, log=log_second)
        out, err = second.communicate(timeout=60)
        assert out.strip() == "SUCCEEDED", err

        job = backend.get_job(job_id)
        results = backend.get_job_results(job_id).to_pylist()
    assert (job["rows_done"], job["rows_failed"]) == (300, 0)
    assert [r["id"] for r in results] == [row["id"] for row in rows]
    assert all(r["outputs"] and r["error"] is None for r in results)
    computed_again = logged_texts(log_second)
    assert len(computed_again) == len(set(computed_again)), "a row was computed twice by the second process"
    assert set(computed_again) == {row_text(row) for row in rows} - committed
    assert committed <= set(logged_texts(log_first))


def test_a_sigkilled_owner_is_taken_over_long_before_its_lease_expires(home, keyword_engine):
    rows = ticket_rows(200)
    with LocalBackend(home, engine=keyword_engine, start_workers=False) as backend:
        backend.settings.poll_interval = 0.05
        job_id = backend.submit_batch("ticket-triage", rows, id_column="id")
        owner = start_process(WORKER_PROCESS, home, "4", "600", "serve", delay=0.01)
        kill_once_done(owner, backend, job_id, rows_done=8)
        with contextlib.closing(sqlite3.connect(home / "jobs.sqlite3")) as con:
            status, lease_pid, lease_expires = con.execute(
                "SELECT status, lease_pid, lease_expires FROM jobs WHERE job_id = ?", (job_id,)
            ).fetchone()
        assert (status, lease_pid) == ("RUNNING", owner.pid)
        assert lease_expires > time.time() + 500  # the lease alone would block recovery for ~10 minutes

        backend.start_workers()
        job = wait_for_job(backend, job_id, timeout=30)
        assert (job["status"], job["rows_done"], job["rows_failed"]) == ("SUCCEEDED", 200, 0)
        assert backend.get_job_results(job_id).column("id").to_pylist() == [row["id"] for row in rows]


def set_lease_owner(home: Path, job_id: str, *, pid: int, host: str | None = None) -> None:
    """Rewrite who holds a job's lease (host unchanged when None), as if another process held it."""
    with contextlib.closing(sqlite3.connect(home / "jobs.sqlite3")) as con, con:
        con.execute(
            "UPDATE jobs SET lease_pid = ?, lease_host = COALESCE(?, lease_host) WHERE job_id = ?", (pid, host, job_id)
        )


def job_ids(home: Path) -> list[str]:
    with contextlib.closing(sqlite3.connect(home / "jobs.sqlite3")) as con:
        return [row[0] for row in con.execute("SELECT job_id FROM jobs ORDER BY seq")]


def exited_pid() -> int:
    """The pid of a process that has ended (and been reaped)."""
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(done.stdout)


def owned_by_another_user(pid: int, signal_number: int) -> None:
    raise PermissionError(f"process {pid} belongs to another user")


def test_only_a_dead_owner_on_this_host_lapses_a_lease_before_it_expires(home, keyword_engine, monkeypatch):
    with LocalBackend(home, engine=keyword_engine, start_workers=False) as backend:
        job_id = backend.submit_batch("ticket-triage", ticket_rows(3))
    store = JobStore(home / "jobs.sqlite3")
    try:
        assert store.claim("first-owner", lease_seconds=600).job_id == job_id
        assert store.claim("thief", lease_seconds=600) is None  # held by this process, which is alive
        dead = exited_pid()
        set_lease_owner(home, job_id, pid=dead, host="another-host")
        assert store.claim("thief", lease_seconds=600) is None  # a pid on another host cannot be checked
        set_lease_owner(home, job_id, pid=dead, host=store_module._HOST)
        with monkeypatch.context() as patched:
            patched.setattr(os, "kill", owned_by_another_user)
            assert store.claim("thief", lease_seconds=600) is None  # PermissionError: alive, another user's
        taken = store.claim("second-owner", lease_seconds=600)
        assert taken is not None and (taken.job_id, taken.status) == (job_id, "STARTING")
        assert store.get(job_id)["lease_owner"] == "second-owner"
        assert (store.get(job_id)["lease_host"], store.get(job_id)["lease_pid"]) == (store_module._HOST, os.getpid())
        assert store.commit_rows(job_id, "first-owner", [RowResult(0, '"stale"', 0.1, None)], 1, 1, 30) is None
    finally:
        store.close()


def test_a_creation_abandoned_by_a_dead_submitter_is_purged_at_once(home):
    store = JobStore(home / "jobs.sqlite3")
    try:
        fields = dict(function="ticket-triage", revision="r", spec_json="{}", run_type="FULL", priority=0)
        fields.update(name=None, description=None, id_column=None, content_key="key", lease_seconds=600)
        assert store.begin_job(job_id="job-live", owner="me", **fields) is None
        store.purge_abandoned_creations()
        assert job_ids(home) == ["job-live"]  # its submitter (this process) is alive: still being created
        set_lease_owner(home, "job-live", pid=exited_pid())
        store.purge_abandoned_creations()
        assert job_ids(home) == []
        assert store.begin_job(job_id="job-next", owner="me", **fields) is None  # the key is free again
        assert job_ids(home) == ["job-next"]
    finally:
        store.close()


def test_a_version_1_home_gains_the_lease_owner_columns_and_keeps_its_jobs(home, keyword_engine):
    with LocalBackend(home, engine=keyword_engine, start_workers=False) as backend:
        job_id = backend.submit_batch("ticket-triage", ticket_rows(3))
    with contextlib.closing(sqlite3.connect(home / "jobs.sqlite3")) as con, con:
        con.execute("ALTER TABLE jobs DROP COLUMN lease_host")
        con.execute("ALTER TABLE jobs DROP COLUMN lease_pid")
        con.execute("PRAGMA user_version = 1")
    with LocalBackend(home, engine=keyword_engine, workers=1) as backend:
        assert wait_for_job(backend, job_id)["status"] == "SUCCEEDED"
    with contextlib.closing(sqlite3.connect(home / "jobs.sqlite3")) as con:
        assert con.execute("PRAGMA user_version").fetchone() == (2,)
        assert {"lease_host", "lease_pid"} <= {row[1] for row in con.execute("PRAGMA table_info(jobs)")}


@pytest.mark.slow
def test_two_processes_submitting_to_one_home_complete_every_job(home, tmp_path, keyword_engine):
    start_file = tmp_path / "go"
    processes = [start_process(SUBMITTING_PROCESS, home, tag, str(start_file), "5") for tag in ("p", "q")]
    start_file.touch()
    reports = []
    for process in processes:
        out, err = process.communicate(timeout=60)
        assert process.returncode == 0, err
        reports.append(json.loads(out.strip().splitlines()[-1]))
    ids = reports[0]["ids"] + reports[1]["ids"]
    assert len(set(ids)) == 10
    assert reports[0]["shared"] == reports[1]["shared"]

    with LocalBackend(home, engine=keyword_engine, start_workers=False) as backend:
        jobs = backend.list_jobs()
        assert len(jobs) == 11 and {job["status"] for job in jobs} == {"SUCCEEDED"}
        for job_id in ids:
            results = backend.get_job_results(job_id)
            assert results.column("id").to_pylist() == list(range(15))
            assert results.column("error").null_count == 15
    with sqlite3.connect(home / "jobs.sqlite3") as con:
        assert con.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert con.execute("SELECT COUNT(*) FROM job_rows WHERE done = 0").fetchone() == (0,)


def test_a_worker_that_lost_its_lease_cannot_write(home, keyword_engine):
    with LocalBackend(home, engine=keyword_engine, start_workers=False) as backend:
        job_id = backend.submit_batch("ticket-triage", ticket_rows(3))
    store = JobStore(home / "jobs.sqlite3")
    try:
        stale = store.claim("stale-owner", lease_seconds=0.01)
        time.sleep(0.05)
        fresh = store.claim("fresh-owner", lease_seconds=30)
        assert stale.job_id == fresh.job_id == job_id
        answer = [RowResult(0, '"stale"', 0.1, None)]
        assert store.commit_rows(job_id, "stale-owner", answer, 1, 1, 30) is None
        assert store.finish(job_id, "stale-owner", "SUCCEEDED") is False
        assert [row["done"] for row in store.rows(job_id)] == [0, 0, 0]
        assert store.commit_rows(job_id, "fresh-owner", [RowResult(0, '"fresh"', 0.9, None)], 1, 1, 30) == "STARTING"
        assert store.rows(job_id)[0]["output"] == '"fresh"'
    finally:
        store.close()


def test_a_closed_backend_hands_its_running_job_to_the_next_process_at_once(home):
    from tests.support.engines import KeywordEngine

    first = LocalBackend(home, engine=KeywordEngine(delay=0.005), workers=1)
    first.settings.chunk_size = 5
    job_id = first.submit_batch("ticket-triage", ticket_rows(200))
    wait_for_job(first, job_id, statuses={"RUNNING"})
    first.close()
    job = None
    with LocalBackend(home, engine=KeywordEngine(), start_workers=False) as reopened:
        job = reopened.get_job(job_id)
        assert job["status"] == "RUNNING" and job["rows_done"] < 200
        reopened.start_workers()
        assert wait_for_job(reopened, job_id, timeout=10)["status"] == "SUCCEEDED"
        assert reopened.get_job_results(job_id).num_rows == 200


# A process that starts a slow job and exits without closing its backend.
EXIT_WITHOUT_CLOSE = """
import sys, time
from sutro_sql.backends.local import LocalBackend
backend = LocalBackend(sys.argv[1], workers=1)
backend.settings.chunk_size = 5
job_id = backend.submit_batch("ticket-triage", [{"subject": str(i), "body": "bug"} for i in range(500)])
while backend.get_job_status(job_id) != "RUNNING":
    time.sleep(0.01)
print("ready", job_id, flush=True)
"""


def test_exiting_without_close_does_not_hang_and_hands_the_running_job_back(home, keyword_engine):
    env = dict(os.environ, PYTHONPATH=str(REPO), SUTRO_SQL_ENGINE="tests.support.engines:KeywordEngine")
    env["SUTRO_TEST_ENGINE_DELAY"] = "0.01"
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", EXIT_WITHOUT_CLOSE, str(home)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    assert time.monotonic() - started < 15
    job_id = done.stdout.split()[1]
    with sqlite3.connect(home / "jobs.sqlite3") as con:
        owner, status, rows_done = con.execute(
            "SELECT lease_owner, status, rows_done FROM jobs WHERE job_id = ?", (job_id,)
        ).fetchone()
    assert (owner, status) == (None, "RUNNING") and 0 < rows_done < 500


def test_closing_the_store_never_closes_a_connection_another_thread_is_using(tmp_path):
    """A reader thread that outlives its backend (a progress stream's pump) must get a clean
    "closed" error at its next read; closing its connection under it crashed SQLite."""
    import threading

    store = JobStore(tmp_path / "jobs.sqlite3")
    reads, failure = [], []

    def keep_reading() -> None:
        try:
            while True:
                store.get("job-none")
                reads.append(1)
        except Exception as exc:  # recorded for the assertion below
            failure.append(exc)

    reader = threading.Thread(target=keep_reading)
    reader.start()
    while not reads:
        time.sleep(0.001)
    store.close()
    reader.join(timeout=10)
    assert not reader.is_alive()
    assert len(failure) == 1
    assert isinstance(failure[0], RuntimeError) and "closed" in str(failure[0])
