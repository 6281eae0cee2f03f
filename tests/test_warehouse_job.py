"""examples/warehouse_job: enrich.sql run by the CLI, killed (SIGKILL) mid-run, run again, run a third time.

Every ticket's text is distinct (as real tickets are), so each is a distinct input
to `sutro_batch`: every ticket must end up enriched exactly once, the re-run
must re-attach to the batch job the killed run started (resuming it, not
starting over), and a third run must do no new work at all.
"""

from __future__ import annotations

import json
import runpy
import signal
import subprocess
import time
from collections import Counter

import duckdb
import pytest

from tests.support.cli_runner import REPO, SUTRO_SQL, cli_env, run_cli

JOB = REPO / "examples" / "warehouse_job"
ROWS = 1200
#: Rows a killed worker may have answered without committing them: one chunk per worker.
UNCOMMITTED_SLACK = 64


def landing(tmp_path):
    folder = tmp_path / "landing"
    runpy.run_path(str(JOB / "make_landing.py"))["write_landing"](folder, rows=ROWS, files=3)
    return folder


def enrich_args(db, folder) -> list[str]:
    return ["run", str(JOB / "enrich.sql"), "--db", str(db), "--var", f"landing={folder}", "--json"]


def engine_rows(log) -> int:
    return len(log.read_text().splitlines()) if log.exists() else 0


def wait_for(predicate, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for the job to make progress")
        time.sleep(0.05)


def start_slow_enrichment(home, tmp_path):
    """(landing folder, warehouse file, engine log, process): `sutro-sql run enrich.sql` on a slowed
    engine, so a test can stop it mid-job."""
    folder = landing(tmp_path)
    db = tmp_path / "warehouse.duckdb"
    log = tmp_path / "engine.log"
    slow = cli_env(home, SUTRO_TEST_ENGINE_DELAY="0.003", SUTRO_TEST_ENGINE_LOG=str(log))
    process = subprocess.Popen(
        [str(SUTRO_SQL), *enrich_args(db, folder)],
        env=slow,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    return folder, db, log, process


@pytest.mark.slow
def test_killed_mid_run_then_rerun_enriches_every_ticket_exactly_once(home, tmp_path):
    folder, db, log, process = start_slow_enrichment(home, tmp_path)
    try:
        wait_for(lambda: engine_rows(log) >= ROWS // 4, timeout=60)
    finally:
        process.send_signal(signal.SIGKILL)
        process.communicate()
    answered_before_kill = engine_rows(log)
    assert answered_before_kill < ROWS, "the job finished before it could be killed"
    with duckdb.connect(str(db)) as con:
        assert con.execute("SELECT count(*) FROM tickets_enriched").fetchone() == (0,)

    fast = cli_env(home, SUTRO_TEST_ENGINE_LOG=str(log))
    started = time.monotonic()
    second = run_cli(*enrich_args(db, folder), home=home, env=fast, cwd=tmp_path)
    assert second.code == 0, second.stderr
    assert time.monotonic() - started < 25  # the killed run's lease lapsed with its process: no ~30 s wait
    summary = second.json()
    # killed before the engine saw every ticket, so the job was unfinished and nothing was cached yet
    assert (summary["jobs_submitted"], summary["jobs_reattached"]) == (0, 1)
    assert summary["rows_failed"] == 0
    jobs = json.loads(run_cli("jobs", "list", "--json", home=home).stdout)
    assert [(job["status"], job["num_rows"]) for job in jobs] == [("SUCCEEDED", ROWS)]  # one job, every ticket

    with duckdb.connect(str(db)) as con:
        count, distinct, lowest, highest, untriaged = con.execute(
            "SELECT count(*), count(DISTINCT id), min(id), max(id), count(*) FILTER (team IS NULL) FROM tickets_enriched"
        ).fetchone()
        billing_without_facts = con.execute(
            "SELECT count(*) FROM tickets_enriched WHERE team = 'billing' AND sentiment IS NULL"
        ).fetchone()[0]
        summary_total = con.execute("SELECT sum(tickets) FROM ticket_summary").fetchone()[0]
        triage_texts = {
            f"{subject} {body}"
            for subject, body in con.execute("SELECT subject, body FROM tickets_enriched").fetchall()
        }
        billing_bodies = {
            body for (body,) in con.execute("SELECT body FROM tickets_enriched WHERE team = 'billing'").fetchall()
        }
    assert (count, distinct, lowest, highest, untriaged) == (ROWS, ROWS, 1, ROWS, 0)
    assert billing_without_facts == 0
    assert summary_total == ROWS
    assert len(triage_texts) == ROWS and billing_bodies
    # the engine saw exactly these inputs; the re-run resumed the killed job, so a triage input was
    # answered twice only if the kill lost it uncommitted, and each billing body was extracted once
    answered = Counter(log.read_text().splitlines())
    assert set(answered) == triage_texts | billing_bodies
    assert sum(answered[text] - 1 for text in triage_texts) <= UNCOMMITTED_SLACK
    assert {answered[body] for body in billing_bodies} == {1}

    rows_before = engine_rows(log)
    third = run_cli(*enrich_args(db, folder), home=home, env=fast, cwd=tmp_path)
    assert third.code == 0, third.stderr
    idle = third.json()
    assert {key: idle[key] for key in ("calls", "jobs_submitted", "jobs_reattached", "rows_answered")} == {
        "calls": 0,
        "jobs_submitted": 0,
        "jobs_reattached": 0,
        "rows_answered": 0,
    }
    assert engine_rows(log) == rows_before
    with duckdb.connect(str(db)) as con:
        assert con.execute("SELECT count(*), count(DISTINCT id) FROM tickets_enriched").fetchone() == (ROWS, ROWS)


def test_new_landing_files_enrich_only_the_new_tickets(home, tmp_path):
    folder = tmp_path / "landing"
    make = runpy.run_path(str(JOB / "make_landing.py"))["write_landing"]
    make(folder, rows=40, files=1)
    db = tmp_path / "warehouse.duckdb"
    first = run_cli(*enrich_args(db, folder), home=home, cwd=tmp_path)
    assert first.code == 0, first.stderr
    assert first.json()["jobs_submitted"] == 1

    make(folder, first_id=41, rows=10, files=1)
    second = run_cli(*enrich_args(db, folder), home=home, cwd=tmp_path)
    assert second.code == 0, second.stderr
    with duckdb.connect(str(db)) as con:
        assert con.execute("SELECT count(*), count(DISTINCT id), max(id) FROM tickets_enriched").fetchone() == (
            50,
            50,
            50,
        )
    jobs = json.loads(run_cli("jobs", "list", "--json", home=home).stdout)
    assert sorted(job["num_rows"] for job in jobs) == [10, 40]  # the second job held only the new tickets


def test_landing_generation_is_deterministic(tmp_path):
    make = runpy.run_path(str(JOB / "make_landing.py"))["make_tickets"]
    assert make(1, 200, 7).equals(make(1, 200, 7))
    assert not make(1, 200, 7).equals(make(1, 200, 8))


def test_sigterm_hands_the_job_back_so_the_rerun_resumes_at_once(home, tmp_path):
    folder, db, log, process = start_slow_enrichment(home, tmp_path)
    wait_for(lambda: engine_rows(log) >= ROWS // 4, timeout=60)
    process.send_signal(signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=30)
    assert process.returncode == 143, stderr
    stopped = json.loads(stdout)
    assert (stopped["status"], stopped["exit_code"], stopped["jobs_submitted"]) == ("interrupted", 143, 1)
    assert "interrupted by SIGTERM" in stderr.decode()

    started = time.monotonic()
    rerun = run_cli(*enrich_args(db, folder), home=home, env=cli_env(home), cwd=tmp_path)
    assert rerun.code == 0, rerun.stderr
    assert time.monotonic() - started < 25  # no ~30 s wait for a lease to lapse: the job was handed back
    assert rerun.json()["jobs_reattached"] == 1
    with duckdb.connect(str(db)) as con:
        assert con.execute("SELECT count(*), count(DISTINCT id) FROM tickets_enriched").fetchone() == (ROWS, ROWS)
