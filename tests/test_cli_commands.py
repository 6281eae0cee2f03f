"""`sutro-sql query`, `functions ...`, `jobs ...` and `--help`, driven as a real subprocess."""

from __future__ import annotations

import csv
import io
import json

import pyarrow.parquet as pq
import pytest

from sutro_sql.backends.local import LocalBackend
from tests.support.cli_runner import cli_env, closed_port, run_cli
from tests.support.engines import KeywordEngine

TRIAGE_QUERY = (
    "SELECT id, sutro_run('ticket-triage', {'subject': s, 'body': b}).response AS team "
    "FROM (VALUES (1, 'Refund', 'billing trouble'), (2, 'Crash', 'a bug')) t(id, s, b) ORDER BY id"
)


# -- query -----------------------------------------------------------------------------------


def test_query_prints_a_table(home):
    result = run_cli("query", TRIAGE_QUERY, home=home)
    assert result.code == 0, result.stderr
    assert "team" in result.stdout and "billing" in result.stdout and "bug" in result.stdout


def test_query_writes_csv_json_and_parquet(home, tmp_path):
    as_csv = run_cli("query", TRIAGE_QUERY, "--format", "csv", home=home)
    assert list(csv.DictReader(io.StringIO(as_csv.stdout))) == [
        {"id": "1", "team": "billing"},
        {"id": "2", "team": "bug"},
    ]
    as_json = run_cli("query", TRIAGE_QUERY, "--format", "json", home=home)
    assert json.loads(as_json.stdout) == [{"id": 1, "team": "billing"}, {"id": 2, "team": "bug"}]
    target = tmp_path / "out.parquet"
    saved = run_cli("query", TRIAGE_QUERY, "--output", str(target), home=home)
    assert saved.code == 0 and saved.stdout == ""
    assert pq.read_table(target).to_pylist() == [{"id": 1, "team": "billing"}, {"id": 2, "team": "bug"}]


def test_query_nested_answers_survive_csv_as_json_text(home):
    result = run_cli(
        "query",
        "SELECT sutro_run('ticket-triage', {'subject': 'x', 'body': 'billing'}).predictions AS p",
        "--format",
        "csv",
        home=home,
    )
    assert result.code == 0, result.stderr
    predictions = json.loads(next(csv.DictReader(io.StringIO(result.stdout)))["p"])
    assert predictions[0] == {"label": "billing", "confidence": pytest.approx(0.8)}


def test_query_on_a_database_file(home, tmp_path):
    db = tmp_path / "w.duckdb"
    assert run_cli("query", "CREATE TABLE t AS SELECT 42 AS answer", "--db", str(db), home=home).code == 0
    result = run_cli("query", "SELECT answer FROM t", "--db", str(db), "--format", "json", home=home)
    assert json.loads(result.stdout) == [{"answer": 42}]


def test_query_parquet_needs_an_output_file(home):
    result = run_cli("query", "SELECT 1", "--format", "parquet", home=home)
    assert result.code == 2 and "--output" in result.stderr


def test_query_bad_sql_exits_3(home):
    result = run_cli("query", "SELECT FROM WHERE", home=home)
    assert result.code == 3 and result.stderr.startswith("error: ")


# -- functions -------------------------------------------------------------------------------


def test_functions_list_shows_the_home_functions(home):
    result = run_cli("functions", "list", home=home)
    assert result.code == 0, result.stderr
    for name in ("lead-qualifier", "ticket-triage", "ticket-extractor"):
        assert name in result.stdout


def test_functions_show_prints_the_spec(home):
    result = run_cli("functions", "show", "ticket-triage", home=home)
    assert result.code == 0, result.stderr
    assert result.stdout.startswith("# revision: ")
    assert "kind: classification" in result.stdout and "account_access:" in result.stdout


def test_functions_show_unknown_exits_4(home):
    result = run_cli("functions", "show", "nope", home=home)
    assert result.code == 4 and "nope" in result.stderr


def test_functions_run_from_json_and_from_a_file(home, tmp_path):
    inline = run_cli("functions", "run", "ticket-triage", "--input", '{"subject": "s", "body": "a bug"}', home=home)
    assert inline.code == 0, inline.stderr
    answer = json.loads(inline.stdout)
    assert answer["response"] == "bug" and answer["confidence"] == pytest.approx(0.8)
    assert answer["function"]["name"] == "ticket-triage"
    assert answer["provenance"]["engine"] == "embedded" and answer["provenance"]["source"] == "engine"
    again = run_cli("functions", "run", "ticket-triage", "--input", '{"subject": "s", "body": "a bug"}', home=home)
    assert json.loads(again.stdout)["provenance"]["source"] == "cache"

    path = tmp_path / "input.json"
    path.write_text(json.dumps({"body": "Order ORD-1 for $5"}))
    from_file = run_cli("functions", "run", "ticket-extractor", "--input", f"@{path}", home=home)
    assert from_file.code == 0, from_file.stderr
    assert set(json.loads(from_file.stdout)["output"]) == {"order_id", "amount", "email", "sentiment", "urgent"}


@pytest.mark.parametrize(
    ("payload", "fragment"),
    [('{"subject": "only the subject"}', "body"), ("{not json", "not valid JSON")],
)
def test_functions_run_bad_input_exits_4(home, payload, fragment):
    result = run_cli("functions", "run", "ticket-triage", "--input", payload, home=home)
    assert result.code == 4 and fragment in result.stderr


def test_functions_check_passes_good_specs(home):
    result = run_cli("functions", "check", str(home / "functions"), home=home)
    assert result.code == 0, result.stderr
    assert result.stdout.count("ok   ") == 3


def test_functions_check_names_the_file_and_field_of_each_bad_spec(home, tmp_path):
    folder = tmp_path / "specs"
    folder.mkdir()
    (folder / "good.yaml").write_text((home / "functions" / "ticket-triage.yaml").read_text())
    (folder / "no_labels.yaml").write_text("name: x\nkind: classification\ninputs: [text]\n")
    (folder / "bad_kind.yaml").write_text("name: y\nkind: summarize\ninputs: [text]\nlabels: [a]\n")
    result = run_cli("functions", "check", str(folder), home=home)
    assert result.code == 4
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 2
    assert any("no_labels.yaml: labels:" in line for line in errors)
    assert any("bad_kind.yaml: kind:" in line for line in errors)
    assert "3 file(s) checked, 2 error(s)" in result.stderr


UNPARSABLE_SPEC = "name: broken\nkind: classification\ninputs: [text\nlabels: [a, b]\n"


def test_functions_check_lists_an_unparsable_file_with_line_and_column(home):
    broken = home / "functions" / "broken.yaml"
    broken.write_text(UNPARSABLE_SPEC)
    result = run_cli("functions", "check", home=home)
    assert result.code == 4
    assert result.stdout.count("ok   ") == 3
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and errors[0].startswith(f"error: {broken}: cannot parse: ")
    assert "(line 4, column 7)" in errors[0]
    assert "4 file(s) checked, 1 error(s)" in result.stderr


def test_a_broken_spec_file_leaves_the_other_functions_usable(home):
    (home / "functions" / "broken.yaml").write_text(UNPARSABLE_SPEC)
    answer = run_cli(
        "functions", "run", "ticket-triage", "--input", '{"subject": "Refund", "body": "billing"}', home=home
    )
    assert answer.code == 0, answer.stderr
    assert json.loads(answer.stdout)["response"] == "billing"
    listed = run_cli("functions", "list", home=home)
    assert listed.code == 0 and "ticket-triage" in listed.stdout


def test_running_the_function_of_a_broken_file_names_the_file_line_and_column(home):
    (home / "functions" / "broken.yaml").write_text(UNPARSABLE_SPEC)
    result = run_cli("functions", "run", "broken", "--input", '"hello"', home=home)
    assert result.code == 4
    assert "broken.yaml: cannot parse" in result.stderr and "(line 4, column 7)" in result.stderr


def test_functions_publish_adds_a_function_to_the_home(home, tmp_path):
    spec = tmp_path / "mood.yaml"
    spec.write_text("name: mood\nkind: classification\ninputs: [text]\nlabels: [happy, sad]\n")
    published = run_cli("functions", "publish", str(spec), home=home)
    assert published.code == 0, published.stderr
    assert "mood" in run_cli("functions", "list", home=home).stdout
    answer = run_cli("functions", "run", "mood", "--input", '"so sad"', home=home)
    assert json.loads(answer.stdout)["response"] == "sad"


@pytest.mark.parametrize(
    ("command", "refusal"),
    [
        (("functions", "list"), "listing Functions needs the local deployment"),
        (("functions", "publish", "{spec}"), "publishing needs the local deployment"),
    ],
    ids=["list", "publish"],
)
def test_a_remote_deployment_cannot_list_or_publish_functions(home, command, refusal):
    spec = str(home / "functions" / "ticket-triage.yaml")
    args = [arg.format(spec=spec) for arg in command]
    env = cli_env(home, SUTRO_API_URL=f"http://127.0.0.1:{closed_port()}", SUTRO_API_KEY="sk-remote-0123456789")
    result = run_cli(*args, home=home, env=env)
    assert result.code == 2
    assert refusal in result.stderr


# -- jobs ------------------------------------------------------------------------------------


@pytest.fixture
def submitted_job(home):
    """A finished triage job of 3 rows (one failed), made in-process on the same home."""
    backend = LocalBackend(home, engine=KeywordEngine())
    try:
        rows = [
            {"id": 10, "subject": "s", "body": "billing"},
            {"id": 11, "subject": "s", "body": "a bug"},
            {"id": 12, "subject": "s", "body": "FAIL_ROW"},
        ]
        job_id = backend.submit_batch("ticket-triage", rows, id_column="id", job_name="cli-test")
        for _ in backend.stream_job_progress(job_id):
            pass
        assert backend.get_job_status(job_id) == "SUCCEEDED"
    finally:
        backend.close()
    return job_id


def test_jobs_list_and_status(home, submitted_job):
    listed = run_cli("jobs", "list", "--json", home=home)
    assert listed.code == 0, listed.stderr
    assert [job["job_id"] for job in json.loads(listed.stdout)] == [submitted_job]
    assert submitted_job in run_cli("jobs", "list", home=home).stdout

    status = run_cli("jobs", "status", submitted_job, "--json", home=home)
    job = json.loads(status.stdout)
    assert (job["status"], job["num_rows"], job["rows_failed"], job["name"]) == ("SUCCEEDED", 3, 1, "cli-test")
    assert "status: SUCCEEDED" in run_cli("jobs", "status", submitted_job, home=home).stdout


def test_jobs_results_to_a_file_in_input_order(home, submitted_job, tmp_path):
    target = tmp_path / "results.parquet"
    result = run_cli("jobs", "results", submitted_job, "--output", str(target), home=home)
    assert result.code == 0, result.stderr
    table = pq.read_table(target).to_pylist()
    assert [row["id"] for row in table] == [10, 11, 12]
    assert [row["response"] for row in table] == ["billing", "bug", None]
    assert table[0]["confidence_score"] == pytest.approx(0.8)
    assert table[2]["error"] and "FAIL_ROW" in table[2]["error"]


def test_jobs_attach_a_finished_job_with_failed_rows_is_a_partial_failure(home, submitted_job):
    result = run_cli("jobs", "attach", submitted_job, home=home)
    assert result.code == 6
    assert f"{submitted_job}: SUCCEEDED, 3 rows, 1 failed" in result.stdout


def test_jobs_unknown_id_exits_4(home):
    for command in ("status", "attach"):
        result = run_cli("jobs", command, "job-does-not-exist", home=home)
        assert result.code == 4, (command, result.stderr)
        assert "job-does-not-exist" in result.stderr


def test_jobs_cancel_then_attach_reports_the_cancelled_job(home):
    backend = LocalBackend(home, engine=KeywordEngine(), start_workers=False)
    try:
        rows = [{"subject": "s", "body": f"ticket {i}"} for i in range(3000)]
        job_id = backend.submit_batch("ticket-triage", rows)
    finally:
        backend.close()
    env = cli_env(home, SUTRO_TEST_ENGINE_DELAY="0.002")
    cancelled = run_cli("jobs", "cancel", job_id, home=home, env=env)
    assert cancelled.code == 0, cancelled.stderr
    assert cancelled.stdout.strip() in (f"{job_id}: CANCELLED", f"{job_id}: CANCELLING")
    attached = run_cli("jobs", "attach", job_id, home=home, env=env)
    assert attached.code == 8
    assert "CANCELLED" in attached.stderr


# -- help ------------------------------------------------------------------------------------

COMMANDS = [
    (),
    ("run",),
    ("query",),
    ("demo",),
    ("serve",),
    ("functions",),
    ("functions", "list"),
    ("functions", "show"),
    ("functions", "run"),
    ("functions", "check"),
    ("functions", "publish"),
    ("jobs",),
    ("jobs", "list"),
    ("jobs", "status"),
    ("jobs", "results"),
    ("jobs", "cancel"),
    ("jobs", "attach"),
]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "sutro-sql")
def test_every_command_has_help_with_an_example(home, command):
    result = run_cli(*command, "--help", home=home)
    assert result.code == 0, result.stderr
    assert result.stdout.startswith("Usage: sutro-sql")
    assert "Example" in result.stdout
    assert "sutro-sql " + " ".join(command) in result.stdout.split("Example", 1)[1]


def test_top_level_and_run_help_document_the_exit_codes(home):
    for command in ((), ("run",)):
        text = run_cli(*command, "--help", home=home).stdout
        for line in ("3  SQL that does not parse", "5  backend unreachable", "6  everything ran but some rows failed"):
            assert line in text
