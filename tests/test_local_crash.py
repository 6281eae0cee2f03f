"""LocalBackend durability: a job survives SIGKILL of its process and resumes elsewhere without
losing or recomputing committed rows; two processes share one home safely; stale workers
cannot write."""

from __future__ import annotations

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
        try:
            deadline = time.monotonic() + 30
            while backend.get_job(job_id)["rows_done"] < 40:
                assert time.monotonic() < deadline, "the first process made no progress"
                time.sleep(0.01)
        finally:
            first.send_signal(signal.SIGKILL)
            first.communicate()
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
