"""Issue 12: an outage met inside `sutro_run` during `sutro-sql run` exits 5 (backend unavailable),
not 4 (bad input); a per-row refusal by the model provider still exits 4.

The deployment is a real HTTP server on loopback answering the v1 run call badly; the CLI is a
real subprocess pointed at it through SUTRO_API_URL / SUTRO_API_KEY.
"""

from __future__ import annotations

import pytest

from tests.support.cli_runner import cli_env, run_cli
from tests.support.fault_server import FaultServer, Reply

KEY = "sk-outage-test-key-0123456789"
SCRIPT = (
    "CREATE TABLE tickets AS SELECT * FROM (VALUES (1, 'Refund', 'Charged twice')) t(id, subject, body);\n"
    "SELECT id, sutro_run('ticket-triage', {'subject': subject, 'body': body}).response AS team FROM tickets;\n"
)
RUN_PATH = "/functions/ticket-triage/run"


def v1_error(status: int, code: str, detail: str, **headers: str) -> Reply:
    return Reply(status, {"detail": detail, "code": code, "request_id": "req_outage"}, headers=headers)


OUTAGES = {
    "500": v1_error(500, "internal_error", "the deployment crashed"),
    "503": Reply(503, body=b"<html><body>Service Unavailable</body></html>", headers={"Content-Type": "text/html"}),
    "malformed-json": Reply(200, body=b'{"request_id": "req_1", "output": {"response": '),
    # Retry-After: 0 keeps the client's retries (it makes them all) instant.
    "429-after-retries": v1_error(429, "rate_limited", "slow down", **{"Retry-After": "0"}),
}


def run_against(server: FaultServer, home, tmp_path):
    script = tmp_path / "enrich.sql"
    script.write_text(SCRIPT, encoding="utf-8")
    env = cli_env(home, SUTRO_API_URL=server.url, SUTRO_API_KEY=KEY)
    return run_cli("run", str(script), "--json", home=home, env=env, timeout=120)


def run_calls(server: FaultServer) -> int:
    return sum(1 for seen in server.seen if seen.path.endswith(RUN_PATH))


@pytest.mark.parametrize("reply", OUTAGES.values(), ids=OUTAGES.keys())
def test_an_outage_during_sutro_run_exits_5(home, tmp_path, reply):
    with FaultServer(default=reply) as server:
        result = run_against(server, home, tmp_path)
    assert result.code == 5, result.stderr
    summary = result.json()
    assert summary["exit_code"] == 5 and summary["failed_statement"] == 2
    assert "ticket-triage" in summary["error"]
    assert KEY not in result.stdout + result.stderr


def test_a_429_fails_the_run_only_after_the_client_retried(home, tmp_path):
    with FaultServer(default=OUTAGES["429-after-retries"]) as server:
        result = run_against(server, home, tmp_path)
    assert result.code == 5, result.stderr
    assert run_calls(server) > 1


def test_a_provider_refusing_the_row_still_exits_4(home, tmp_path):
    refusal = v1_error(502, "provider_error", "the model provider refused this input")
    with FaultServer(default=refusal) as server:
        result = run_against(server, home, tmp_path)
    assert result.code == 4, result.stderr
    summary = result.json()
    assert summary["exit_code"] == 4 and "refused this input" in summary["error"]
    assert run_calls(server) >= 1
