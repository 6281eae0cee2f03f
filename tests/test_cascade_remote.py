"""A cascade over two backends: the first Function on the embedded deployment, the stronger one
on a deployment served by `sutro-sql serve` (a real subprocess on a loopback port), named
`remote:triage-strong` (SUTRO_API_URL + SUTRO_API_KEY) or through `Client.add_backend`."""

from __future__ import annotations

import duckdb
import pytest

import sutro_sql
from sutro_sql.backends.local import LocalBackend
from sutro_sql.backends.remote import RemoteBackend
from sutro_sql.client import Client
from tests.support.graded_engine import GradedEngine
from tests.support.serve_process import ServedDeployment
from tests.test_cascade import ROWS, write_specs

RUN = (
    "SELECT id, a.response, a.escalated, a.error FROM (SELECT id, sutro_run('triage', {{'text': text}}, "
    "escalate_to := 'remote:triage-strong', escalate_below := 0.8{options}) AS a FROM tickets) ORDER BY id"
)


@pytest.fixture(scope="module")
def strong_deployment(tmp_path_factory):
    """`sutro-sql serve` answering triage-strong with the GradedEngine, logging every row it answers."""
    home = tmp_path_factory.mktemp("strong")
    write_specs(home)
    log = home / "answered.log"
    env = {"SUTRO_SQL_ENGINE": "tests.support.graded_engine:GradedEngine", "SUTRO_TEST_ENGINE_LOG": str(log)}
    with ServedDeployment(home, env=env) as served:
        served.answered_log = log
        yield served


def remote_calls(deployment):
    log = deployment.answered_log
    return log.read_text().splitlines() if log.exists() else []


@pytest.fixture
def local(tmp_path, monkeypatch, strong_deployment):
    """A Client on the embedded deployment, with the served one as `remote:`."""
    monkeypatch.setenv("SUTRO_API_URL", strong_deployment.url)
    monkeypatch.setenv("SUTRO_API_KEY", strong_deployment.api_key)
    monkeypatch.delenv("SUTRO_SQL_CACHE", raising=False)
    write_specs(tmp_path)
    engine = GradedEngine()
    backend = LocalBackend(tmp_path, engine=engine)
    with Client(backend=backend, progress=False) as client:
        con = duckdb.connect()
        sutro_sql.register(con, client=client)
        con.execute("CREATE TABLE tickets (id INTEGER, text VARCHAR)")
        con.executemany("INSERT INTO tickets VALUES (?, ?)", [(i, t) for i, t in ROWS if t])
        con.execute("CHECKPOINT")
        yield client, con, engine
        con.close()
    backend.close()


def test_sutro_run_escalates_to_a_function_on_another_backend(local, strong_deployment):
    client, con, engine = local
    before = len(remote_calls(strong_deployment))
    rows = con.sql(RUN.format(options="")).fetchall()
    assert rows == [(1, "bug", True, None), (2, "bug", False, None), (3, "other", True, None), (4, "bug", False, None)]
    assert sorted(text for name, text in engine.answered) == sorted({t for _, t in ROWS if t})
    assert all(name == "triage" for name, _ in engine.answered)
    assert sorted(remote_calls(strong_deployment)[before:]) == [
        f"triage-strong\t{ROWS[0][1]}",
        f"triage-strong\t{ROWS[2][1]}",
    ]
    assert (client.stats.calls, client.stats.rows_escalated) == (5, 2)  # 3 local, 2 remote: one set of counters

    client.reset_stats()  # a re-run: no new call in either stage
    answered = (len(engine.answered), len(remote_calls(strong_deployment)))
    assert con.sql(RUN.format(options="")).fetchall() == rows
    assert (len(engine.answered), len(remote_calls(strong_deployment))) == answered
    assert (client.stats.calls, client.stats.cache_hits) == (0, 6)


def test_sutro_batch_sends_the_escalated_rows_as_one_job_to_the_other_backend(local, strong_deployment):
    client, con, _ = local
    query = (
        "SELECT id, response, confidence_score FROM sutro_batch('triage', 'SELECT id, text FROM tickets', "
        "id_column := 'id', escalate_to := 'remote:triage-strong', escalate_below := 0.8, cache := false) ORDER BY id"
    )
    rows = con.sql(query).fetchall()
    assert rows == [(1, "bug", 0.97), (2, "bug", 0.9), (3, "other", 0.97), (4, "bug", 0.9)]
    assert client.stats.jobs_submitted == 2
    remote_jobs = client.route("remote:triage-strong")[0].list_jobs()
    assert [(job["model"], job["num_rows"]) for job in remote_jobs][:1] == [("triage-strong", 2)]
    client.reset_stats()
    assert con.sql(query).fetchall() == rows
    assert (client.stats.jobs_submitted, client.stats.jobs_reattached) == (0, 2)


def test_a_failure_on_the_other_backend_names_the_function_and_never_the_key(local, strong_deployment):
    _, con, _ = local
    con.execute("INSERT INTO tickets VALUES (9, 'gold=bug conf=0.1 FAIL_STRONG')")
    with pytest.raises(duckdb.Error) as failure:
        con.sql(RUN.format(options="")).fetchall()
    assert "Function 'triage-strong' failed for input" in str(failure.value)
    assert strong_deployment.api_key not in str(failure.value)
    rows = con.sql(RUN.format(options=", on_error := 'null'")).fetchall()
    assert rows[-1][:3] == (9, None, True) and "engine refused the row" in rows[-1][3]


def test_add_backend_names_another_backend_without_the_environment(tmp_path, monkeypatch, strong_deployment):
    monkeypatch.delenv("SUTRO_API_URL", raising=False)
    monkeypatch.delenv("SUTRO_API_KEY", raising=False)
    write_specs(tmp_path)
    backend = LocalBackend(tmp_path, engine=GradedEngine())
    with (
        Client(backend=backend, progress=False) as client,
        RemoteBackend(strong_deployment.url, strong_deployment.api_key, home=tmp_path / "client") as gpu,
    ):
        client.add_backend("gpu", gpu)
        result = client.run_function(
            "triage", {"text": "gold=other say=bug conf=0.2"}, escalate_to="gpu:triage-strong", escalate_below=0.8
        )
        assert (result["response"], result.escalated) == ("other", True)
    backend.close()


def test_a_remote_client_escalates_to_the_embedded_deployment(tmp_path, monkeypatch, strong_deployment):
    monkeypatch.setenv("SUTRO_SQL_HOME", str(tmp_path))
    monkeypatch.setenv("SUTRO_SQL_ENGINE", "tests.support.graded_engine:GradedEngine")
    write_specs(tmp_path)
    with (
        RemoteBackend(strong_deployment.url, strong_deployment.api_key, home=tmp_path / "client") as remote,
        Client(backend=remote, progress=False) as client,
    ):
        result = client.run_function(
            "triage",
            {"text": "gold=billing say=bug conf=0.3"},
            escalate_to="embedded:triage-strong",
            escalate_below=0.8,
        )
        assert (result["response"], result.escalated) == ("billing", True)
        assert result["function"]["name"] == "triage-strong"
        assert client.route("embedded:triage-strong")[0].backend.home == str(tmp_path)
