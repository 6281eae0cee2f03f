"""examples/dbt_project, built by real `dbt` subprocesses in a temp copy.

Functions are answered by the deterministic KeywordEngine (plugged in through
SUTRO_SQL_ENGINE, as any engine would be), which appends every row it answers to
SUTRO_TEST_ENGINE_LOG: counting its lines counts Function calls across processes,
and recomputing its answers checks that every answer landed on the right id.
"""

from __future__ import annotations

import csv
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from sutro_sql.functions import FunctionSpec, load_specs
from tests.support.engines import KeywordEngine

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "dbt_project"
BIN = Path(sys.executable).parent
DBT = BIN / "dbt"
TICKETS = 240
LEADS = 160

pytestmark = [pytest.mark.dbt, pytest.mark.slow, pytest.mark.skipif(not DBT.exists(), reason="dbt is not installed")]


def copy_example(destination: Path) -> Path:
    """The example as a newcomer checks it out: sources only, the package pointing at this repo."""
    project = destination / "dbt_project"
    shutil.copytree(
        EXAMPLE,
        project,
        ignore=shutil.ignore_patterns("target", "dbt_packages", "logs", "package-lock.yml", "*.duckdb*"),
    )
    for state in (project / "sutro").iterdir():
        if state.name != "functions":
            shutil.rmtree(state) if state.is_dir() else state.unlink()
    packages = project / "packages.yml"
    packages.write_text(packages.read_text().replace("local: ../..", f"local: {REPO}"))
    return project


def dbt_env(project: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SUTRO_", "DBT_"))}
    env.update(
        SUTRO_DBT_DATABASE=str(project / "warehouse.duckdb"),
        DBT_SEND_ANONYMOUS_USAGE_STATS="false",
        PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        **extra,
    )
    return env


def dbt(project: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [str(DBT), *args, "--profiles-dir", str(project)],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, f"dbt {' '.join(args)} failed:\n{result.stdout[-4000:]}\n{result.stderr[-2000:]}"
    return result


def table(project: Path, query: str) -> list[tuple]:
    with duckdb.connect(str(project / "warehouse.duckdb"), read_only=True) as con:
        return con.sql(query).fetchall()


def calls(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


def keyword_answers(spec: FunctionSpec, rows: list[dict]) -> list:
    engine = KeywordEngine(delay=0.0, log_path=os.devnull)
    return [engine.answer(spec, [spec.convert_input(row)])[0].output for row in rows]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The example after `dbt deps` and one `dbt build --threads 4` on the keyword engine.
    The tests below build on it in file order: a full rebuild, then new tickets."""
    project = copy_example(tmp_path_factory.mktemp("dbt_example"))
    log = project / "engine.log"
    env = dbt_env(project, SUTRO_SQL_ENGINE="tests.support.engines:KeywordEngine", SUTRO_TEST_ENGINE_LOG=str(log))
    dbt(project, env, "deps")
    dbt(project, env, "build", "--threads", "4")
    return project, env, log


def test_build_materializes_every_enriched_model_with_answers_on_the_right_ids(built):
    project, _, log = built
    specs = load_specs(project / "sutro" / "functions")
    tickets = [
        dict(zip(("ticket_id", "subject", "body"), row, strict=True))
        for row in table(project, "SELECT ticket_id, subject, body FROM stg_tickets ORDER BY ticket_id")
    ]
    leads = [
        dict(zip(("lead_id", "query", "region"), row, strict=True))
        for row in table(project, "SELECT lead_id, query, region FROM stg_leads ORDER BY lead_id")
    ]
    assert (len(tickets), len(leads)) == (TICKETS, LEADS)

    expected = {
        "ticket_triage": keyword_answers(specs["ticket-triage"], tickets),
        "ticket_priorities": keyword_answers(specs["ticket-priority"], tickets),
        "ticket_facts": [a["sentiment"] for a in keyword_answers(specs["ticket-extractor"], tickets)],
        "leads_qualified": keyword_answers(specs["lead-qualifier"], leads),
    }
    got = {
        "ticket_triage": table(project, "SELECT team FROM ticket_triage ORDER BY ticket_id"),
        "ticket_priorities": table(project, "SELECT priority FROM ticket_priorities ORDER BY ticket_id"),
        "ticket_facts": table(project, "SELECT sentiment FROM ticket_facts ORDER BY ticket_id"),
        "leads_qualified": table(project, "SELECT qualification FROM leads_qualified ORDER BY lead_id"),
    }
    for model, answers in expected.items():
        assert [value for (value,) in got[model]] == answers, model
    assert {team for (team,) in got["ticket_triage"]} <= set(specs["ticket-triage"].labels)
    assert {q for (q,) in got["leads_qualified"]} <= set(specs["lead-qualifier"].labels)
    # the cascade's first stage answers every ticket with confidence 0.8 >= 0.5: none escalates
    routed = table(project, "SELECT team, escalated FROM ticket_routing ORDER BY ticket_id")
    assert routed == [(team, False) for team in expected["ticket_triage"]]
    distinct_inputs = len({(t["subject"], t["body"]) for t in tickets}) * 2 + len({t["body"] for t in tickets})
    distinct_inputs += len({(lead["query"], lead["region"]) for lead in leads})
    assert distinct_inputs <= len(calls(log)) <= 3 * TICKETS + LEADS


def jobs_by_function(project: Path) -> dict[str, list[str]]:
    """The example home's batch jobs (not estimates), by Function, oldest first."""
    from sutro_sql.backends.local import LocalBackend

    with LocalBackend(project / "sutro", start_workers=False) as backend:
        jobs = sorted(backend.list_jobs(), key=lambda job: job["datetime_created"])
    found: dict[str, list[str]] = {}
    for job in jobs:
        found.setdefault(job["model"], []).append(job["job_id"])
    return found


def test_the_build_lifts_each_large_sutro_run_model_to_one_job_with_provenance(built):
    project, _, _ = built
    jobs = jobs_by_function(project)
    # ticket_triage and leads_qualified call sutro_run on more distinct inputs than the profile's
    # auto_batch_threshold (100): one job each, like the sutro_batch models
    assert {name: len(ids) for name, ids in jobs.items()} == {
        "ticket-triage": 1,
        "lead-qualifier": 1,
        "ticket-extractor": 1,
        "ticket-priority": 1,
    }
    provenance = table(project, "SELECT DISTINCT answered_by, answer_source, job_id FROM ticket_triage")
    assert provenance == [("ticket-triage", "job", jobs["ticket-triage"][0])]


def test_rebuilding_everything_from_scratch_makes_no_function_calls(built):
    project, env, log = built
    before = calls(log)
    counts = table(project, "SELECT (SELECT count(*) FROM ticket_facts), (SELECT count(*) FROM ticket_triage)")
    dbt(project, env, "build", "--full-refresh")
    assert calls(log) == before
    assert table(project, "SELECT (SELECT count(*) FROM ticket_facts), (SELECT count(*) FROM ticket_triage)") == counts


def test_incremental_model_sends_only_new_tickets(built):
    project, env, log = built
    seed = project / "seeds" / "raw_tickets.csv"
    new = [
        {
            "ticket_id": TICKETS + n,
            "created_at": f"2030-01-0{n} 09:00:00",
            "channel": "email",
            "customer_email": f"new{n}@example.com",
            "subject": f"New ticket {n}",
            "body": f"NEWTICKET-{n}: the billing page shows a bug after login",
        }
        for n in (1, 2, 3)
    ]
    with seed.open("a", newline="", encoding="utf-8") as handle:
        csv.DictWriter(handle, fieldnames=list(new[0])).writerows(new)
    before = calls(log)
    first_enriched = table(project, "SELECT min(enriched_at), max(enriched_at) FROM ticket_triage")

    selected = ["--select", "raw_tickets", "stg_tickets", "ticket_triage", "--indirect-selection", "cautious"]
    dbt(project, env, "build", *selected)

    sent = calls(log)[len(before) :]
    assert sorted(line.split(":")[0].split()[-1] for line in sent) == ["NEWTICKET-1", "NEWTICKET-2", "NEWTICKET-3"]
    assert table(project, "SELECT count(*) FROM ticket_triage") == [(TICKETS + 3,)]
    old = table(project, f"SELECT min(enriched_at), max(enriched_at) FROM ticket_triage WHERE ticket_id <= {TICKETS}")
    assert old == first_enriched
    (newest,) = table(project, f"SELECT min(enriched_at) FROM ticket_triage WHERE ticket_id > {TICKETS}")
    assert newest[0] >= first_enriched[0][1]


def test_a_replay_build_in_ci_passes_from_the_recorded_cache_with_no_engine_calls(built):
    """What a CI job does: a fresh warehouse, the answer cache committed with the project,
    SUTRO_SQL_CACHE=replay; every model and data test passes and nothing is computed."""
    project, env, log = built
    dbt(project, env, "build")  # record: the tickets added above reach every model
    before, jobs = calls(log), jobs_by_function(project)
    for stale in project.glob("warehouse.duckdb*"):
        stale.unlink()
    result = dbt(project, env | {"SUTRO_SQL_CACHE": "replay"}, "build")
    assert "ERROR=0" in result.stdout
    assert calls(log) == before and jobs_by_function(project) == jobs
    assert table(project, "SELECT count(*) FROM ticket_triage") == [(TICKETS + 3,)]
    assert table(project, "SELECT DISTINCT answer_source FROM ticket_triage") == [("cache",)]


def test_a_replay_build_fails_on_an_input_it_never_recorded_naming_the_function(built):
    project, env, log = built
    before = calls(log)
    seed = project / "seeds" / "raw_tickets.csv"
    with seed.open("a", newline="", encoding="utf-8") as handle:
        row = [TICKETS + 9, "2030-02-01 09:00:00", "email", "late@example.com", "Late", "UNRECORDED: a refund"]
        csv.writer(handle).writerow(row)
    selected = ["--select", "raw_tickets", "stg_tickets", "ticket_triage", "--indirect-selection", "cautious"]
    failed = subprocess.run(
        [str(DBT), "build", *selected, "--profiles-dir", str(project)],
        cwd=project,
        env=env | {"SUTRO_SQL_CACHE": "replay"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert failed.returncode == 1
    assert "ticket-triage" in failed.stdout and "no cached answer" in failed.stdout
    assert calls(log) == before


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def sutro_server(tmp_path):
    """`sutro-sql serve` on a loopback port, over a home holding the example's Functions."""
    home = tmp_path / "server_home"
    shutil.copytree(EXAMPLE / "sutro" / "functions", home / "functions")
    key = "sk-test-" + os.urandom(12).hex()
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SUTRO_")}
    env.update(
        SUTRO_SQL_SERVE_API_KEY=key,
        SUTRO_SQL_ENGINE="tests.support.engines:KeywordEngine",
        SUTRO_TEST_ENGINE_LOG=str(tmp_path / "server_engine.log"),
        PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    )
    server_output = (tmp_path / "server.out").open("w")
    server = subprocess.Popen(
        [str(BIN / "sutro-sql"), "serve", "--home", str(home), "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=server_output,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                server.kill()
                pytest.fail(f"sutro-sql serve did not start: {(tmp_path / 'server.out').read_text()[-2000:]}")
            time.sleep(0.2)
    yield f"http://127.0.0.1:{port}", key, tmp_path / "server_engine.log"
    server.terminate()
    server.wait(timeout=30)
    server_output.close()


def test_api_key_never_reaches_dbt_output_logs_or_artifacts(tmp_path, sutro_server):
    """The README's two ways to pass a key: the environment (read by the plugin itself), or
    the profile through dbt's secret env var, which dbt masks wherever it prints the profile."""
    url, key, server_log = sutro_server
    project = copy_example(tmp_path)
    (project / "dbt_packages").mkdir()
    (project / "dbt_packages" / "sutro_sql").symlink_to(REPO)  # what `dbt deps` does (tested above)
    env = dbt_env(project, SUTRO_API_URL=url, SUTRO_API_KEY=key)
    selected = ["--select", "+leads_qualified", "+ticket_facts", "--indirect-selection", "cautious"]
    outputs = [dbt(project, env, "build", *selected, "--log-level-file", "debug")]

    assert len(calls(server_log)) >= LEADS, "the server's engine answered the build"
    assert table(project, "SELECT count(*), count(qualification) FROM leads_qualified") == [(LEADS, LEADS)]
    assert table(project, "SELECT count(*), count(sentiment) FROM ticket_facts") == [(TICKETS, TICKETS)]

    wrong_key = "sk-wrong-" + os.urandom(12).hex()  # with an empty answer cache, so the key is really sent
    refused = subprocess.run(
        [str(DBT), "run", "--select", "leads_qualified", "--profiles-dir", str(project)],
        cwd=project,
        env={**env, "SUTRO_API_KEY": wrong_key, "SUTRO_SQL_HOME": str(tmp_path / "empty_cache")},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert refused.returncode == 1
    assert "401" in refused.stdout or "uthenticat" in refused.stdout
    outputs.append(refused)

    profile = project / "profiles.yml"
    profile.write_text(
        profile.read_text().replace(
            "            max_concurrency: 8\n",
            "            api_key: \"{{ env_var('DBT_ENV_SECRET_SUTRO_API_KEY') }}\"\n            max_concurrency: 8\n",
        )
    )
    secret_env = {k: v for k, v in env.items() if k != "SUTRO_API_KEY"} | {"DBT_ENV_SECRET_SUTRO_API_KEY": key}
    outputs.append(dbt(project, secret_env, "debug"))  # prints the profile, plugin config included
    assert "api_key" in outputs[-1].stdout

    written = [p for folder in ("target", "logs") for p in (project / folder).rglob("*") if p.is_file()]
    assert {"dbt.log", "manifest.json", "run_results.json"} <= {p.name for p in written}
    for secret in (key, wrong_key):
        assert [str(p.relative_to(project)) for p in written if secret.encode() in p.read_bytes()] == []
        assert not [result.args for result in outputs if secret in result.stdout + result.stderr]


@pytest.mark.slow  # 60-120 s on 2 cores; CI runs it (the whole suite stays far under its limit)
def test_example_builds_offline_on_the_embedded_engine(tmp_path):
    """The README's steps as written: no test engine, no network, the example's own Functions."""
    project = copy_example(tmp_path)
    env = dbt_env(project)
    dbt(project, env, "deps")
    result = dbt(project, env, "build")

    assert "ERROR=0" in result.stdout and "PASS=49" in result.stdout
    counts = table(
        project,
        "SELECT (SELECT count(*) FROM ticket_triage), (SELECT count(*) FROM ticket_facts),"
        " (SELECT count(*) FROM ticket_priorities), (SELECT count(*) FROM leads_qualified)",
    )
    assert counts == [(TICKETS, TICKETS, TICKETS, LEADS)]
    escalated, teams_changed = table(
        project,
        "SELECT count(*) FILTER (r.escalated), count(*) FILTER (r.team <> t.team) "
        "FROM ticket_routing r JOIN ticket_triage t USING (ticket_id)",
    )[0]
    assert 0 < escalated < TICKETS and teams_changed <= escalated  # only escalated tickets can change team
