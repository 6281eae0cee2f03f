"""Cascades on one backend: sutro_run, sutro_batch, targets, the spec's cascade and Python.

The GradedEngine (tests/support/graded_engine.py) answers what each input states: the first
Function `triage` answers `say` (else `gold`) with confidence `conf`, `triage-strong` answers
`gold` with 0.97, so every escalation and every stage's calls are predictable."""

from __future__ import annotations

import duckdb
import pytest
import yaml

import sutro_sql
from sutro_sql.backends.local import LocalBackend
from sutro_sql.cascade import accuracy_lower_bound
from sutro_sql.client import Client
from sutro_sql.errors import ConfigurationError, SpecError, ValidationError
from sutro_sql.functions import parse_spec
from tests.support.graded_engine import GradedEngine

TRIAGE = {"kind": "classification", "inputs": ["text"], "labels": ["billing", "bug", "other"]}
ROWS = [
    (1, "gold=bug say=billing conf=0.6"),  # unsure and wrong: escalates, the strong answer is right
    (2, "gold=bug conf=0.9"),
    (3, "gold=other say=bug conf=0.3"),  # escalates
    (4, "gold=bug conf=0.9"),  # the same input as row 2: answered once
    (5, None),
]
RUN = (
    "SELECT id, a.response, a.confidence, a.escalated, a.error FROM (SELECT id, sutro_run('triage', CASE WHEN text IS NOT NULL "
    "THEN {{'text': text}} END, escalate_to := 'triage-strong', escalate_below := 0.8{options}) AS a FROM tickets) ORDER BY id"
)


def write_specs(home, **extra):
    (home / "functions").mkdir(parents=True, exist_ok=True)
    for name in ("triage", "triage-strong"):
        spec = {"name": name, **TRIAGE, **(extra if name == "triage" else {})}
        (home / "functions" / f"{name}.yaml").write_text(yaml.safe_dump(spec))


@pytest.fixture
def engine():
    return GradedEngine()


@pytest.fixture
def cascade_client(tmp_path, engine, monkeypatch):
    for var in ("SUTRO_API_URL", "SUTRO_API_KEY", "SUTRO_SQL_CACHE"):
        monkeypatch.delenv(var, raising=False)
    write_specs(tmp_path)
    backend = LocalBackend(tmp_path, engine=engine)
    with Client(backend=backend, progress=False) as client:
        yield client
    backend.close()


@pytest.fixture
def con(cascade_client):
    con = duckdb.connect(str(cascade_client.backend.home) + "/warehouse.duckdb")
    sutro_sql.register(con, client=cascade_client)
    con.execute("CREATE TABLE tickets (id INTEGER, text VARCHAR)")
    con.executemany("INSERT INTO tickets VALUES (?, ?)", ROWS)
    yield con
    con.close()


def calls(engine, function):
    return [text for name, text in engine.answered if name == function]


def test_sutro_run_sends_only_unsure_rows_to_the_stronger_function(con, engine, cascade_client):
    rows = con.sql(RUN.format(options="")).fetchall()
    assert rows == [
        (1, "bug", 0.97, True, None),
        (2, "bug", 0.9, False, None),
        (3, "other", 0.97, True, None),
        (4, "bug", 0.9, False, None),
        (5, None, None, None, None),
    ]
    assert sorted(calls(engine, "triage")) == sorted({text for _, text in ROWS if text})
    assert sorted(calls(engine, "triage-strong")) == [ROWS[0][1], ROWS[2][1]]
    stats = cascade_client.stats
    assert (stats.calls, stats.rows_answered, stats.rows_escalated) == (5, 4, 2)


def test_a_rerun_is_answered_by_the_cache_in_both_stages(con, engine, cascade_client):
    first = con.sql(RUN.format(options="")).fetchall()
    answered = len(engine.answered)
    cascade_client.reset_stats()
    assert con.sql(RUN.format(options="")).fetchall() == first
    assert len(engine.answered) == answered
    stats = cascade_client.stats
    assert (stats.calls, stats.cache_hits, stats.rows_escalated) == (0, 6, 2)  # 4 rows in stage 1, 2 in stage 2


def test_a_failure_in_the_second_stage_names_the_stronger_function(con):
    con.execute("INSERT INTO tickets VALUES (6, 'gold=bug conf=0.2 FAIL_STRONG')")
    with pytest.raises(duckdb.Error, match="Function 'triage-strong' failed for input .*FAIL_STRONG"):
        con.sql(RUN.format(options="")).fetchall()


def test_on_error_null_gives_the_failed_escalated_row_its_error_and_the_rest_their_answers(con):
    con.execute("INSERT INTO tickets VALUES (6, 'gold=bug conf=0.2 FAIL_STRONG')")
    rows = con.sql(RUN.format(options=", on_error := 'null'")).fetchall()
    assert rows[5][:4] == (6, None, None, True) and "engine refused the row" in rows[5][4]
    assert [row[1] for row in rows[:4]] == ["bug", "bug", "other", "bug"]


def test_abstention_applies_to_the_final_answer(con):
    rows = con.sql(RUN.format(options=", abstain_below := 0.95")).fetchall()
    assert [(row[1], row[4]) for row in rows[:4]] == [
        ("bug", None),
        (None, "abstained: confidence 0.90 < 0.95"),
        ("other", None),
        (None, "abstained: confidence 0.90 < 0.95"),
    ]


def test_a_call_without_a_cascade_escalates_nothing(con, engine):
    rows = con.sql("SELECT sutro_run('triage', {'text': text}).escalated FROM tickets").fetchall()
    assert not any(escalated for (escalated,) in rows)
    assert calls(engine, "triage-strong") == []


BATCH = (
    "SELECT id, response, confidence_score FROM sutro_batch('triage', 'SELECT id, text FROM tickets WHERE text IS NOT "
    "NULL', id_column := 'id', escalate_to := 'triage-strong', escalate_below := 0.8{options}) ORDER BY id"
)


def test_sutro_batch_sends_one_job_per_stage(con, engine, cascade_client):
    assert con.sql(BATCH.format(options="")).fetchall() == [
        (1, "bug", 0.97),
        (2, "bug", 0.9),
        (3, "other", 0.97),
        (4, "bug", 0.9),
    ]
    stats = cascade_client.stats
    assert (stats.jobs_submitted, stats.rows_answered, stats.rows_escalated) == (2, 4, 2)
    jobs = cascade_client.list_jobs()
    assert sorted((job["model"], job["num_rows"]) for job in jobs) == [("triage", 3), ("triage-strong", 2)]
    assert sorted(calls(engine, "triage-strong")) == [ROWS[0][1], ROWS[2][1]]


def test_sutro_batch_reattaches_to_both_jobs_on_a_rerun(con, engine, cascade_client):
    first = con.sql(BATCH.format(options=", cache := false")).fetchall()
    answered = len(engine.answered)
    cascade_client.reset_stats()
    assert con.sql(BATCH.format(options=", cache := false")).fetchall() == first
    assert (cascade_client.stats.jobs_submitted, cascade_client.stats.jobs_reattached) == (0, 2)
    assert len(engine.answered) == answered


def test_sutro_batch_rerun_with_the_cache_needs_no_job(con, cascade_client):
    first = con.sql(BATCH.format(options="")).fetchall()
    cascade_client.reset_stats()
    assert con.sql(BATCH.format(options="")).fetchall() == first
    assert (cascade_client.stats.jobs_submitted, cascade_client.stats.jobs_reattached) == (0, 0)


def reviewed(con, rows=200):
    """Reviewed rows: the first Function is wrong exactly on confidences 0.50-0.59 (a fifth of them)."""
    con.execute(
        "CREATE OR REPLACE TABLE reviewed AS SELECT 'gold=bug conf=' || (0.5 + (i % 50) / 100.0) || "
        f"CASE WHEN i % 50 < 10 THEN ' say=billing' ELSE '' END AS text, 'bug' AS label FROM range({rows}) r(i)"
    )


def test_a_target_picks_the_threshold_from_the_calibration_rows(con, engine, capsys):
    reviewed(con)
    plan = con.sql(
        "SELECT escalate_below, calibration_rows, kept_rows, kept_correct, escalated_share, kept_accuracy_bound "
        "FROM sutro_cascade_plan('triage', 'triage-strong', 0.9, calibrate_on := 'SELECT text, label FROM reviewed')"
    ).fetchall()
    # at 0.58: 168 kept, 160 right (bound 0.916); at 0.57 the bound falls under 0.9
    assert plan[0][:4] == (0.58, 200, 168, 160) and plan[0][4] == pytest.approx(0.16)
    assert plan[0][5] >= 0.9
    assert "escalate_below 0.5800, expected 16% escalated" in capsys.readouterr().err
    con.execute("INSERT INTO tickets VALUES (7, 'gold=bug conf=0.58'), (8, 'gold=bug say=billing conf=0.57')")
    rows = con.sql(
        "SELECT id, a.response, a.escalated FROM (SELECT id, sutro_run('triage', {'text': text}, escalate_to := "
        "'triage-strong', target_accuracy := 0.9, calibrate_on := 'SELECT text, label FROM reviewed') AS a "
        "FROM tickets WHERE id >= 7) ORDER BY id"
    ).fetchall()
    assert rows == [(7, "bug", False), (8, "bug", True)]


def test_check_strong_answers_the_escalated_calibration_rows_and_bounds_the_whole_cascade(con, engine):
    reviewed(con)
    (row,) = con.sql(
        "SELECT escalate_below, kept_rows, kept_correct, escalated_correct, cascade_accuracy_bound FROM "
        "sutro_cascade_plan('triage', 'triage-strong', 0.9, 'SELECT text, label FROM reviewed', check_strong := true)"
    ).fetchall()
    # the 32 calibration rows under 0.58 go to triage-strong, which answers the gold label
    assert row[:4] == (0.58, 168, 160, 32)
    assert row[4] == pytest.approx(accuracy_lower_bound(192, 200))
    strong_calls = calls(engine, "triage-strong")
    assert len(strong_calls) == len(set(strong_calls)) == 8  # 32 rows, 8 distinct texts (confidences 0.50-0.57)
    plain = con.sql(
        "SELECT escalated_correct FROM sutro_cascade_plan('triage', 'triage-strong', 0.9, "
        "'SELECT text, label FROM reviewed')"
    ).fetchall()
    assert plain == [(None,)]


def test_too_few_calibration_rows_fail_saying_how_many_are_needed(con):
    reviewed(con, rows=40)
    with pytest.raises(duckdb.Error, match="needs at least 59 calibration rows .* got 40"):
        con.sql(
            "SELECT sutro_run('triage', {'text': text}, escalate_to := 'triage-strong', target_accuracy := 0.95, "
            "calibrate_on := 'SELECT text, label FROM reviewed') FROM tickets"
        ).fetchall()


def test_calibrate_on_needs_a_label_column(con):
    reviewed(con)
    with pytest.raises(duckdb.Error, match="calibrate_on must return a label column"):
        con.sql(
            "SELECT * FROM sutro_cascade_plan('triage', 'triage-strong', 0.9, 'SELECT text FROM reviewed')"
        ).fetchall()


def test_escalate_to_needs_exactly_one_threshold(con):
    with pytest.raises(duckdb.Error, match="exactly one of escalate_below or target_accuracy"):
        con.sql("SELECT sutro_run('triage', {'text': text}, escalate_to := 'triage-strong') FROM tickets").fetchall()


def test_the_spec_cascade_applies_when_the_call_names_none(tmp_path, engine, monkeypatch):
    monkeypatch.delenv("SUTRO_SQL_CACHE", raising=False)
    write_specs(tmp_path, cascade={"to": "triage-strong", "below": 0.8})
    backend = LocalBackend(tmp_path, engine=engine)
    with Client(backend=backend, progress=False) as client:
        con = sutro_sql.connect(client=client)
        rows = con.sql(
            "SELECT a.response, a.escalated FROM (SELECT sutro_run('triage', {'text': t}) AS a "
            "FROM (VALUES ('gold=bug say=billing conf=0.6'), ('gold=bug conf=0.9')) v(t))"
        ).fetchall()
        assert rows == [("bug", True), ("bug", False)]
        result = client.run_function("triage", {"text": "gold=other say=bug conf=0.1"})
        assert (result["response"], result.escalated) == ("other", True)
    backend.close()


def test_the_cascade_is_not_part_of_the_revision():
    plain = parse_spec({"name": "triage", **TRIAGE})
    cascading = parse_spec({"name": "triage", **TRIAGE, "cascade": {"to": "triage-strong", "below": 0.8}})
    assert plain.revision == cascading.revision


@pytest.mark.parametrize(
    ("cascade", "message"),
    [
        ({"to": "triage-strong"}, "exactly one of below or target_accuracy"),
        ({"to": "triage", "below": 0.5}, "cannot escalate to itself"),
        ({"to": "triage-strong", "below": 1.5}, "less than or equal to 1"),
    ],
)
def test_a_bad_spec_cascade_is_refused(cascade, message):
    with pytest.raises(SpecError, match=message):
        parse_spec({"name": "triage", **TRIAGE, "cascade": cascade})


def test_run_function_escalates_in_python(cascade_client, engine):
    kept = cascade_client.run_function(
        "triage", {"text": "gold=bug conf=0.9"}, escalate_to="triage-strong", escalate_below=0.8
    )
    assert (kept["response"], kept["confidence"], kept.escalated) == ("bug", 0.9, False)
    escalated = cascade_client.run_function(
        "triage", {"text": "gold=bug say=billing conf=0.6"}, escalate_to="triage-strong", escalate_below=0.8
    )
    assert (escalated["response"], escalated["confidence"], escalated.escalated) == ("bug", 0.97, True)
    assert cascade_client.stats.rows_escalated == 1
    assert calls(engine, "triage-strong") == ["gold=bug say=billing conf=0.6"]


def test_plan_cascade_in_python_uses_the_calibration_rows(cascade_client):
    rows = [({"text": f"gold=bug conf={0.9 + i / 1000}"}, "bug") for i in range(29)]
    plan = cascade_client.plan_cascade("triage", "triage-strong", 0.9, rows)
    assert (plan.threshold, plan.kept_rows, plan.escalated_share) == (0.9, 29, 0.0)
    with pytest.raises(ValidationError, match="at least 29 calibration rows"):
        cascade_client.plan_cascade("triage", "triage-strong", 0.9, rows[:28])


def test_a_remote_name_without_a_configured_deployment_says_what_to_set(cascade_client):
    with pytest.raises(ConfigurationError, match="SUTRO_API_URL.*SUTRO_API_KEY"):
        cascade_client.run_function(
            "triage", {"text": "gold=bug conf=0.1"}, escalate_to="remote:triage-strong", escalate_below=0.8
        )


def test_an_unknown_backend_alias_is_refused(cascade_client):
    with pytest.raises(ConfigurationError, match="unknown backend 'gpu'"):
        cascade_client.run_function("gpu:triage-strong", {"text": "x"})


def test_replay_answers_both_stages_from_the_cache(con, engine, cascade_client, monkeypatch):
    recorded = con.sql(RUN.format(options="")).fetchall()
    cascade_client.run_function("triage", {"text": "gold=bug conf=0.1"})  # recorded in the first stage only
    answered = len(engine.answered)
    monkeypatch.setenv("SUTRO_SQL_CACHE", "replay")
    with Client(backend=cascade_client.backend, progress=False) as replaying:
        replay_con = duckdb.connect()
        sutro_sql.register(replay_con, client=replaying)
        replay_con.execute("CREATE TABLE tickets (id INTEGER, text VARCHAR)")
        replay_con.executemany("INSERT INTO tickets VALUES (?, ?)", ROWS)
        assert replay_con.sql(RUN.format(options="")).fetchall() == recorded
        replay_con.execute("INSERT INTO tickets VALUES (6, 'gold=bug conf=0.95'), (7, 'gold=bug conf=0.1')")
        rows = replay_con.sql(RUN.format(options=", on_error := 'null'")).fetchall()
        assert rows[5][1] is None and "Function 'triage':" in rows[5][4]  # a first-stage miss
        assert rows[6][1:4] == (None, None, True) and "Function 'triage-strong':" in rows[6][4]  # a second-stage one
        assert all("no cached answer for this input" in row[4] for row in rows[5:])
    assert len(engine.answered) == answered


def test_a_spec_target_is_calibrated_on_its_reviewed_examples(tmp_path, engine, monkeypatch):
    monkeypatch.delenv("SUTRO_SQL_CACHE", raising=False)
    examples = [{"input": {"text": f"gold=bug conf={0.7 + i / 100}"}, "output": "bug"} for i in range(30)]
    write_specs(tmp_path, cascade={"to": "triage-strong", "target_accuracy": 0.9}, examples=examples)
    backend = LocalBackend(tmp_path, engine=engine)
    with Client(backend=backend, progress=False) as client:
        # all 30 right: the bound of the 29 most confident (>= 0.71) already meets 0.9, so 0.7 does too
        assert client.run_function("triage", {"text": "gold=bug conf=0.7"}).escalated is False
        assert client.run_function("triage", {"text": "gold=bug say=other conf=0.69"}).escalated is True
    backend.close()


def test_provenance_names_the_stage_that_answered_each_row(con, cascade_client):
    rows = con.sql(
        "SELECT id, function, escalated, source, job_id FROM sutro_batch('triage', 'SELECT id, text FROM tickets "
        "WHERE text IS NOT NULL', id_column := 'id', escalate_to := 'triage-strong', escalate_below := 0.8) ORDER BY id"
    ).fetchall()
    jobs = {job["model"]: job["job_id"] for job in cascade_client.list_jobs()}
    assert rows == [
        (1, "triage-strong", True, "job", jobs["triage-strong"]),
        (2, "triage", False, "job", jobs["triage"]),
        (3, "triage-strong", True, "job", jobs["triage-strong"]),
        (4, "triage", False, "job", jobs["triage"]),
    ]
    again = con.sql(RUN.format(options="")).fetchall()  # sutro_run finds both stages' answers in the cache
    assert [row[3] for row in again[:4]] == [True, False, True, False]
