"""The dbt package's macros, compiled by a real `dbt compile` (one run for the module) and the
compiled SQL executed by DuckDB against stand-in macros that echo their arguments, so each
test sees exactly what sutro_run/sutro_batch would receive."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import duckdb
import pytest

REPO = Path(__file__).resolve().parent.parent
DBT = Path(sys.executable).with_name("dbt")

pytestmark = [pytest.mark.dbt, pytest.mark.skipif(not DBT.exists(), reason="dbt is not installed")]

NASTY_FUNCTION = "it's'); DROP TABLE src; --"
NASTY_COLUMN = 'we"ird col'

MODELS = {
    "src.sql": f"""select 1 as id, 'hello' as body, 'x' as "{NASTY_COLUMN.replace('"', '""')}" """,
    "run_call.sql": """
        select {{ sutro_sql.sutro_run(var('fn'), {"bo'dy": 'body', 'id': 'id'}, on_error='null', cache=false) }} as answer
        from {{ ref('src') }}
    """,
    "batch_call.sql": """
        select * from {{ sutro_sql.sutro_batch(var('fn'), ref('src'), columns=[var('col')], id_column='id',
                                               job_name="nightly 'run'") }}
    """,
    "batch_mapping.sql": """
        select * from {{ sutro_sql.sutro_batch('ticket-triage', 'select * from ' ~ ref('src') ~ " where body <> 'x'",
                                               columns={'subject': "'re: ' || body", 'body': 'body'}) }}
    """,
    "cascade_call.sql": """
        select {{ sutro_sql.sutro_run('triage', {'body': 'body'}, escalate_to='remote:triage-strong',
                                      target_accuracy=0.9, calibrate_on=ref('src')) }} as answer
        from {{ ref('src') }}
    """,
    "unpacked.sql": """
        with answered as (
            select {'response': 'bug', 'confidence': 0.75, 'rationale': 'r', 'error': null,
                    'output': '{"amount": 12.5, "odd\\"key": "v"}'::json} as answer
        )
        select {{ sutro_sql.unpack('answer', fields={'response': 'team', 'confidence': 'team_confidence'}) }},
               {{ sutro_sql.unpack('answer', fields=[], prefix='x_', output={'amount': 'double', 'odd"key': 'varchar'}) }}
        from answered
    """,
    "a_view.sql": """
        -- compiled last (a compile error stops dbt compile): depends_on: {{ ref('run_call') }}, {{ ref('batch_call') }},
        -- {{ ref('batch_mapping') }}, {{ ref('unpacked') }}, {{ ref('cascade_call') }}
        {{ config(materialized='view') }}
        select {{ sutro_sql.sutro_run('ticket-triage', {'body': 'body'}) }} as answer from {{ ref('src') }}
    """,
}

# Stand-ins with the SQL layer's signatures (sutro_sql.sql_layer.register): they return their arguments.
ECHO_MACROS = [
    "CREATE TEMP MACRO sutro_run(fn, input, on_error := 'raise', cache := true, escalate_to := NULL, "
    "target_accuracy := NULL, calibrate_on := NULL) AS {'fn': fn, 'input': to_json(input)::varchar, "
    "'on_error': on_error, 'cache': cache, 'escalate_to': escalate_to, 'target_accuracy': target_accuracy, "
    "'calibrate_on': calibrate_on}",
    "CREATE TEMP MACRO sutro_batch(fn, query, id_column := NULL, job_priority := 0, dry_run := false, "
    "job_name := NULL, description := NULL) AS TABLE SELECT fn AS fn, query AS query, id_column AS id_column, job_name AS job_name",
]


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    """Compile the models above in a project that installs this repository as the `sutro_sql` package."""
    project = tmp_path_factory.mktemp("macros_project")
    (project / "models").mkdir()
    for name, sql in MODELS.items():
        (project / "models" / name).write_text(textwrap.dedent(sql))
    (project / "dbt_project.yml").write_text(
        "name: macro_checks\nversion: '1.0.0'\nconfig-version: 2\nprofile: macro_checks\n"
        "models:\n  macro_checks:\n    +materialized: table\n"
    )
    (project / "dbt_packages").mkdir()
    (project / "dbt_packages" / "sutro_sql").symlink_to(REPO)  # what `dbt deps` does for `local: <REPO>`
    (project / "profiles.yml").write_text(
        "macro_checks:\n  target: dev\n  outputs:\n    dev: {type: duckdb, path: ':memory:'}\n"
    )
    env = {**os.environ, "DBT_PROFILES_DIR": str(project), "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
    variables = f"{{fn: {NASTY_FUNCTION!r}, col: {NASTY_COLUMN!r}}}".replace("\\'", "''")
    result = subprocess.run(
        [DBT, "compile", "--vars", variables], cwd=project, env=env, capture_output=True, text=True, timeout=120
    )
    out = project / "target" / "compiled" / "macro_checks" / "models"
    return result, {path.stem: path.read_text() for path in out.glob("*.sql")}


@pytest.fixture
def echo():
    con = duckdb.connect()
    for statement in ECHO_MACROS:
        con.execute(statement)
    con.execute(
        f"CREATE TABLE src AS SELECT 1 AS id, 'hello' AS body, 'x' AS \"{NASTY_COLUMN.replace(chr(34), chr(34) * 2)}\""
    )
    return con


def run_compiled(con, sql: str) -> dict:
    relation = con.sql(sql.replace('"memory"."main".', ""))
    (row,) = relation.fetchall()
    return dict(zip(relation.columns, row, strict=True))


def test_sutro_run_passes_names_and_options_as_exact_literals(compiled, echo):
    row = run_compiled(echo, compiled[1]["run_call"])["answer"]
    assert row["fn"] == NASTY_FUNCTION
    assert row["input"] == '{"bo\'dy":"hello","id":1}'
    assert (row["on_error"], row["cache"]) == ("null", False)
    assert echo.sql("SELECT count(*) FROM src").fetchall() == [(1,)]


def test_sutro_batch_sends_the_chosen_columns_and_id_of_a_relation(compiled, echo):
    row = run_compiled(echo, compiled[1]["batch_call"])
    assert (row["fn"], row["id_column"], row["job_name"]) == (NASTY_FUNCTION, "id", "nightly 'run'")
    inner = echo.sql(row["query"].replace('"memory"."main".', ""))
    assert inner.columns == ["id", NASTY_COLUMN]
    assert inner.fetchall() == [(1, "x")]


def test_sutro_batch_maps_input_names_to_expressions_over_a_query(compiled, echo):
    row = run_compiled(echo, compiled[1]["batch_mapping"])
    assert row["id_column"] is None
    inner = echo.sql(row["query"].replace('"memory"."main".', ""))
    assert inner.columns == ["subject", "body"]
    assert inner.fetchall() == [("re: hello", "hello")]


def test_a_cascade_passes_through_with_a_relation_to_calibrate_on(compiled, echo):
    row = run_compiled(echo, compiled[1]["cascade_call"])["answer"]
    assert (row["escalate_to"], float(row["target_accuracy"])) == ("remote:triage-strong", 0.9)
    assert echo.sql(row["calibrate_on"].replace('"memory"."main".', "")).fetchall() == [(1, "hello", "x")]


def test_unpack_turns_answer_fields_and_extraction_output_into_columns(compiled, echo):
    row = run_compiled(echo, compiled[1]["unpacked"])
    assert row == {"team": "bug", "team_confidence": 0.75, "x_amount": 12.5, 'x_odd"key': "v"}


def test_a_view_calling_a_function_is_refused_at_compile_time(compiled):
    result, models = compiled
    assert result.returncode != 0
    assert "a_view" not in models
    assert "materialize it as a table or incremental" in result.stdout
