"""`sutro-sql serve` on 127.0.0.1, and the CLI as a client of it through --api-url (real processes, real HTTP)."""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import time

import pytest

from tests.support.cli_runner import REPO, SUTRO_SQL, cli_env, closed_port, run_cli

SERVER_KEY = "serve-test-key-0123456789"


def wait_for_port(port: int, process: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"server exited: {process.communicate()[1]}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise AssertionError("server did not start")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """One server for the module: starting it costs more than the tests."""
    home = tmp_path_factory.mktemp("served") / "home"
    shutil.copytree(REPO / "examples" / "functions", home / "functions")
    port = closed_port()
    env = cli_env(home, SUTRO_SQL_SERVE_API_KEY=SERVER_KEY)
    process = subprocess.Popen(
        [str(SUTRO_SQL), "serve", "--home", str(home), "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for_port(port, process)
        yield f"http://127.0.0.1:{port}", process
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()


def test_functions_run_against_the_served_deployment(server, tmp_path):
    url, _ = server
    env = cli_env(tmp_path / "client-home", SUTRO_API_KEY=SERVER_KEY)
    result = run_cli(
        "--api-url", url, "functions", "run", "ticket-triage", "--input", '{"subject": "s", "body": "a bug"}',
        home=tmp_path / "client-home", env=env,
    )  # fmt: skip
    assert result.code == 0, result.stderr
    assert json.loads(result.stdout)["response"] == "bug"


def test_a_wrong_key_exits_7_and_no_key_is_printed(server, tmp_path):
    url, process = server
    wrong = "wrong-key-abcdefghijkl"
    env = cli_env(tmp_path / "client-home", SUTRO_API_KEY=wrong)
    result = run_cli(
        "--api-url", url, "functions", "run", "ticket-triage", "--input", '{"subject": "s", "body": "b"}',
        home=tmp_path / "client-home", env=env,
    )  # fmt: skip
    assert result.code == 7, result.stderr
    assert wrong not in result.stdout + result.stderr
    assert SERVER_KEY not in result.stdout + result.stderr


def test_functions_list_needs_the_local_deployment(server, tmp_path):
    url, _ = server
    env = cli_env(tmp_path / "client-home", SUTRO_API_KEY=SERVER_KEY)
    result = run_cli("--api-url", url, "functions", "list", home=tmp_path / "client-home", env=env)
    assert result.code == 2
    assert "local deployment" in result.stderr


def test_serve_refuses_to_start_without_a_key(home):
    env = cli_env(home)
    result = run_cli("serve", "--home", str(home), "--port", str(closed_port()), home=home, env=env)
    assert result.code == 2
    assert "--api-key" in result.stderr
