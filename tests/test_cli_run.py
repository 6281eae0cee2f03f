"""`sutro-sql run SCRIPT.sql`: statements, variables, the summary and every exit code (a real subprocess)."""

from __future__ import annotations

import duckdb
import pytest

from tests.support.cli_runner import cli_env, closed_port, run_cli

TICKETS = """
CREATE OR REPLACE TABLE tickets AS SELECT * FROM (VALUES
    (1, 'Refund', 'a billing question about my invoice'),
    (2, 'Crash', 'the export has a bug'),
    (3, 'Login', 'an account_access problem'),
    (4, 'Crash again', 'the export has a bug')
) t(id, subject, body);
"""
TRIAGE = (
    "SELECT id, sutro_run('ticket-triage', {'subject': 'x', 'body': body}).response AS team FROM tickets ORDER BY id;"
)


def write_script(tmp_path, text: str, name: str = "job.sql"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def engine_log_lines(path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


def test_json_summary_counts_calls_then_a_rerun_is_all_cache_hits(home, tmp_path):
    script = write_script(tmp_path, TICKETS + TRIAGE)
    log = tmp_path / "engine.log"
    env = cli_env(home, SUTRO_TEST_ENGINE_LOG=str(log))

    first = run_cli("run", str(script), "--db", str(tmp_path / "w.duckdb"), "--json", home=home, env=env)
    assert first.code == 0, first.stderr
    summary = first.json()  # stdout holds exactly the one JSON object
    assert summary["status"] == "ok" and summary["exit_code"] == 0 and summary["error"] is None
    assert (summary["statements"], summary["statements_run"]) == (2, 2)
    assert summary["rows_answered"] == 4
    assert summary["calls"] == 3  # rows 2 and 4 are the same input: computed once
    assert summary["calls"] == engine_log_lines(log)
    assert summary["cache_hits"] == 0 and summary["rows_failed"] == 0
    assert summary["jobs_submitted"] == 0 and summary["jobs_reattached"] == 0
    assert summary["input_tokens"] > 0 and summary["output_tokens"] > 0
    assert summary["cost_usd"] >= 0 and summary["seconds"] > 0

    second = run_cli("run", str(script), "--db", str(tmp_path / "w.duckdb"), "--json", home=home, env=env)
    assert second.code == 0, second.stderr
    again = second.json()
    assert again["calls"] == 0
    assert again["cache_hits"] == 4  # every row answered from the persistent cache
    assert again["rows_answered"] == 4
    assert engine_log_lines(log) == 3  # the engine saw nothing new


def test_text_summary_goes_to_stderr_and_select_results_to_stdout(home, tmp_path):
    script = write_script(tmp_path, TICKETS + TRIAGE)
    result = run_cli("run", str(script), home=home)
    assert result.code == 0, result.stderr
    assert "billing" in result.stdout and "account_access" in result.stdout
    assert "OK: 2/2 statements" in result.stderr
    assert "calls 3, cache hits 0" in result.stderr


def test_quiet_prints_nothing_on_success(home, tmp_path):
    script = write_script(tmp_path, TICKETS + TRIAGE)
    result = run_cli("--quiet", "run", str(script), home=home)
    assert (result.code, result.stdout, result.stderr) == (0, "", "")


def test_variables_become_quoted_literals(home, tmp_path):
    script = write_script(tmp_path, "CREATE TABLE names AS SELECT ${who} AS who, ${day}::DATE AS day;")
    db = tmp_path / "v.duckdb"
    result = run_cli(
        "run",
        str(script),
        "--db",
        str(db),
        "--var",
        "who=O'Brien'); DROP TABLE x; --",
        "--var",
        "day=2026-01-31",
        home=home,
    )
    assert result.code == 0, result.stderr
    with duckdb.connect(str(db)) as con:
        assert con.execute("SELECT who, day::VARCHAR FROM names").fetchall() == [
            ("O'Brien'); DROP TABLE x; --", "2026-01-31")
        ]


@pytest.mark.parametrize(
    ("script", "args", "message"),
    [
        ("SELECT ${missing};", (), "no value for ${missing}; pass --var missing=VALUE"),
        ("SELECT 'quoted ${who}';", ("--var", "who=x"), "${who} is inside a quoted string"),
    ],
)
def test_unusable_variables_are_bad_input(home, tmp_path, script, args, message):
    result = run_cli("run", str(write_script(tmp_path, script)), *args, home=home)
    assert result.code == 4
    assert message in result.stderr


def test_malformed_var_option_is_a_usage_error(home, tmp_path):
    result = run_cli("run", str(write_script(tmp_path, "SELECT 1;")), "--var", "novalue", home=home)
    assert result.code == 2
    assert "expected NAME=VALUE" in result.stderr


@pytest.mark.parametrize(
    ("script", "fragment"),
    [
        ("SELEC 1;", "syntax error"),
        ("SELECT * FROM no_such_table;", "no_such_table"),
        ("SELECT * FROM sutro_batch('ticket-triage', 'DROP TABLE t');", "only read queries"),
    ],
)
def test_bad_sql_exits_3_with_one_line_and_no_traceback(home, tmp_path, script, fragment):
    result = run_cli("run", str(write_script(tmp_path, script)), home=home)
    assert result.code == 3
    error_lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1 and fragment in error_lines[0]
    assert "Traceback" not in result.stderr


def test_a_failing_statement_keeps_earlier_statements_and_reports_where(home, tmp_path):
    db = tmp_path / "w.duckdb"
    script = write_script(
        tmp_path, "CREATE TABLE done AS SELECT 1 AS x;\nSELECT * FROM missing_table;\nCREATE TABLE never AS SELECT 1;"
    )
    result = run_cli("run", str(script), "--db", str(db), "--json", home=home)
    assert result.code == 3
    summary = result.json()
    assert summary["status"] == "error" and summary["exit_code"] == 3
    assert (summary["statements"], summary["statements_run"], summary["failed_statement"]) == (3, 1, 2)
    assert "missing_table" in summary["error"]
    assert "error: statement 2: " in result.stderr
    with duckdb.connect(str(db)) as con:
        tables = {row[0] for row in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
    assert tables == {"done"}


@pytest.mark.parametrize(
    ("call", "fragment"),
    [
        ("sutro_run('no-such-function', {'body': 'x'})", "no-such-function"),
        ("sutro_run('ticket-triage', {'body': 'no subject'})", "subject"),
    ],
)
def test_bad_function_input_exits_4(home, tmp_path, call, fragment):
    result = run_cli("run", str(write_script(tmp_path, f"SELECT {call};")), home=home)
    assert result.code == 4, result.stderr
    assert fragment in result.stderr
    assert "Traceback" not in result.stderr


def test_debug_shows_the_traceback(home, tmp_path):
    result = run_cli("--debug", "run", str(write_script(tmp_path, "SELECT ${nope};")), home=home)
    assert result.code != 0
    assert "Traceback" in result.stderr


def test_unreachable_backend_exits_5_without_printing_the_key(home, tmp_path):
    key = "sk-test-secret-1234567890"
    env = cli_env(home, SUTRO_API_KEY=key)
    url = f"http://127.0.0.1:{closed_port()}"
    script = write_script(tmp_path, TICKETS + TRIAGE)
    result = run_cli("--api-url", url, "run", str(script), "--json", home=home, env=env, timeout=120)
    assert result.code == 5, result.stderr
    assert result.json()["exit_code"] == 5
    assert key not in result.stdout + result.stderr


def test_failed_rows_under_on_error_null_are_a_partial_failure(home, tmp_path):
    script = write_script(
        tmp_path,
        TICKETS
        + "INSERT INTO tickets VALUES (5, 'Bad', 'FAIL_ROW please');\n"
        + "CREATE TABLE answers AS SELECT id, sutro_run('ticket-triage', {'subject': subject, 'body': body}, "
        "on_error := 'null') AS a FROM tickets;\n",
    )
    db = tmp_path / "w.duckdb"
    result = run_cli("run", str(script), "--db", str(db), "--json", home=home)
    assert result.code == 6, result.stderr
    summary = result.json()
    assert summary["status"] == "partial_failure"
    assert summary["rows_failed"] == 1 and summary["rows_answered"] == 4
    assert summary["statements_run"] == summary["statements"] == 3
    with duckdb.connect(str(db)) as con:
        rows = con.execute("SELECT id, a.response, a.error FROM answers ORDER BY id").fetchall()
    assert [r[0] for r in rows if r[2] is not None] == [5]
    assert all(r[1] is not None for r in rows if r[0] != 5)


def test_a_failing_row_without_on_error_fails_the_run_naming_the_function(home, tmp_path):
    script = write_script(tmp_path, "SELECT sutro_run('ticket-triage', {'subject': 's', 'body': 'FAIL_ROW'});")
    result = run_cli("run", str(script), home=home)
    assert result.code == 4
    assert "ticket-triage" in result.stderr
