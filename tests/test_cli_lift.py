"""The automatic lift of `sutro-sql run` / `query` (a real subprocess): a `sutro_run` query over
more distinct inputs than the threshold is one batch job, on by default; `--no-auto-batch`
(or SUTRO_SQL_AUTO_BATCH=0) keeps it real time; small queries stay real time either way."""

from __future__ import annotations

import json
import shutil

import pytest

from tests.support.cli_runner import cli_env, run_cli

#: 40 tickets, 40 distinct inputs (each body names its id).
TICKETS = """
CREATE OR REPLACE TABLE tickets AS
SELECT i AS id, 'Ticket ' || i AS subject,
       CASE WHEN i % 2 = 0 THEN 'a billing question, invoice ' ELSE 'the export has a bug, case ' END || i AS body
FROM range(40) r(i);
"""
TRIAGE = """
SELECT id, sutro_run('ticket-triage', {'subject': subject, 'body': body}).response AS team,
       sutro_run('ticket-triage', {'subject': subject, 'body': body}).source AS source
FROM tickets ORDER BY id;
"""


def run_script(home, tmp_path, *options: str, **env: str) -> dict:
    script = tmp_path / "triage.sql"
    script.write_text(TICKETS + TRIAGE, encoding="utf-8")
    result = run_cli(*options, "run", str(script), "--json", home=home, env=cli_env(home, **env))
    assert result.code == 0, result.stderr
    return result.json()


def jobs(home) -> list[dict]:
    listed = run_cli("jobs", "list", "--json", home=home)
    assert listed.code == 0, listed.stderr
    return json.loads(listed.stdout)


def test_a_large_sutro_run_query_is_one_batch_job_by_default(home, tmp_path):
    summary = run_script(home, tmp_path, "--auto-batch-threshold", "10")
    assert (summary["jobs_submitted"], summary["calls"]) == (1, 0)
    assert summary["rows_answered"] == 40 and summary["rows_failed"] == 0
    assert len(jobs(home)) == 1


def test_the_lifted_answers_equal_real_time_ones(home, tmp_path):
    fresh_home = tmp_path / "fresh"
    shutil.copytree(home / "functions", fresh_home / "functions")  # a second home: nothing cached there
    query = TICKETS + TRIAGE.replace(".source AS source", ".response AS again")
    args = ("query", query, "--format", "csv")
    batch = run_cli("--auto-batch-threshold", "10", *args, home=home, env=cli_env(home))
    real_time = run_cli("--no-auto-batch", *args, home=home, env=cli_env(home, SUTRO_SQL_HOME=str(fresh_home)))
    assert batch.code == 0 and real_time.code == 0, batch.stderr + real_time.stderr
    assert batch.stdout == real_time.stdout and batch.stdout.count("\n") == 41


@pytest.mark.parametrize(
    ("options", "env"),
    [(("--no-auto-batch",), {}), ((), {"SUTRO_SQL_AUTO_BATCH": "0"})],
    ids=["flag", "env"],
)
def test_the_lift_turned_off_makes_real_time_calls_and_no_job(home, tmp_path, options, env):
    summary = run_script(home, tmp_path, "--auto-batch-threshold", "10", *options, **env)
    assert (summary["jobs_submitted"], summary["calls"], summary["rows_answered"]) == (0, 40, 40)
    assert jobs(home) == []


def test_below_the_threshold_the_query_stays_real_time(home, tmp_path):
    summary = run_script(home, tmp_path)  # the default threshold (1000) is above 40 inputs
    assert (summary["jobs_submitted"], summary["calls"]) == (0, 40)
