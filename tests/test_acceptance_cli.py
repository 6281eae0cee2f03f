"""Acceptance (newcomer's view): `sutro-sql` as a scheduler drives it (issue 7): a script of
my own with --json, the exit codes a scheduler reads, `query` output and `functions check`."""

from __future__ import annotations

import textwrap

import pytest

from tests.support.cli_runner import run_cli
from tests.test_acceptance_specs import write_newcomer_specs

SCRIPT = """
    -- enrich accounts: a TEMP table fed to sutro_batch, sutro_run on a second Function
    CREATE TABLE IF NOT EXISTS accounts AS SELECT * FROM (VALUES
        (1, 'says cancel, risk high', 'pro'), (2, 'happy, risk low', 'free'), (3, 'risk low again', NULL)
    ) t(id, note, plan);
    CREATE TEMP TABLE todo AS SELECT id, note, plan FROM accounts;
    CREATE OR REPLACE TABLE churn AS
        SELECT id, response AS risk FROM sutro_batch('churn_risk', 'SELECT id, note, plan FROM todo', id_column := 'id');
    CREATE OR REPLACE TABLE sentiment AS
        SELECT id, sutro_run('review-sentiment', {'review': note}).response AS sentiment FROM accounts;
    SELECT c.id, risk, sentiment FROM churn c JOIN sentiment USING (id) ORDER BY id;
"""


@pytest.fixture
def newcomer_home(home):
    write_newcomer_specs(home / "functions")
    return home


def test_script_json_summary_then_rerun_does_no_work(newcomer_home, tmp_path):
    script = tmp_path / "job.sql"
    script.write_text(textwrap.dedent(SCRIPT))
    database = tmp_path / "w.duckdb"
    first = run_cli("run", str(script), "--db", str(database), "--json", home=newcomer_home)
    assert first.code == 0, first.stderr
    summary = first.json()
    assert summary["status"] == "ok" and summary["statements"] == summary["statements_run"] == 5
    assert summary["jobs_submitted"] == 1 and summary["calls"] == 3 and summary["rows_failed"] == 0
    second = run_cli("run", str(script), "--db", str(database), "--json", home=newcomer_home).json()
    assert (second["calls"], second["jobs_submitted"], second["exit_code"]) == (0, 0, 0)
    assert second["cache_hits"] >= 3
    out = run_cli(
        "query", "SELECT id, risk FROM churn ORDER BY id", "--db", str(database), "--format", "csv", home=newcomer_home
    )
    assert (out.code, out.stdout.split()) == (0, ["id,risk", "1,high", "2,low", "3,low"])


EXIT_CASES = [
    ("bad SQL", "SELECT 1;\nSELEC 2;\n", 3),
    ("missing required field", "SELECT sutro_run('churn_risk', {'plan': 'x'});\n", 4),
    ("partial failure", "SELECT sutro_run('churn_risk', {'note': 'FAIL_ROW'}, on_error := 'null').error;\n", 6),
]


def test_exit_codes_a_scheduler_reads(newcomer_home, tmp_path):
    for case, text, code in EXIT_CASES:
        script = tmp_path / "case.sql"
        script.write_text(text)
        result = run_cli("run", str(script), "--json", home=newcomer_home)
        assert result.code == code, (case, result.stderr)
        assert result.json()["exit_code"] == code
        if code != 6:
            assert "Traceback" not in result.stderr and result.stderr.count("error:") == 1, case


def test_functions_check_names_file_and_field(newcomer_home, tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "c.yaml").write_text(
        "name: c\nkind: classification\ninputs: [t]\nlabels: [p, q]\nexamples:\n  - {input: {t: hi}, output: maybe}\n"
    )
    result = run_cli("functions", "check", str(bad), home=newcomer_home)
    assert result.code == 4
    assert "c.yaml" in result.stderr and "examples[0].output" in result.stderr
