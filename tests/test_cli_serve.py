"""`sutro-sql serve` on 127.0.0.1, and the CLI as a client of it through --api-url (real processes, real HTTP)."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
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


@dataclasses.dataclass
class Served:
    url: str
    process: subprocess.Popen
    stderr: str = ""  # what the server wrote, once it has stopped


@contextlib.contextmanager
def serving(home: Path, *args: str, env: dict[str, str]) -> Iterator[Served]:
    """`sutro-sql serve --home HOME ARGS` on a free loopback port until the block ends (then SIGTERM)."""
    port = closed_port()
    process = subprocess.Popen(
        [str(SUTRO_SQL), "serve", "--home", str(home), "--port", str(port), *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    served = Served(f"http://127.0.0.1:{port}", process)
    try:
        wait_for_port(port, process)
        yield served
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            served.stderr = process.communicate(timeout=10)[1]
        except subprocess.TimeoutExpired:
            process.kill()
            served.stderr = process.communicate()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """One server for the module: starting it costs more than the tests."""
    home = tmp_path_factory.mktemp("served") / "home"
    shutil.copytree(REPO / "examples" / "functions", home / "functions")
    with serving(home, env=cli_env(home, SUTRO_SQL_SERVE_API_KEY=SERVER_KEY)) as served:
        yield served.url, served.process


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


# -- where serve's key comes from ---------------------------------------------------------------


def auth_check(url: str, key: str) -> int:
    return httpx.get(f"{url}/v1/auth/check", headers={"Authorization": f"Key {key}"}, timeout=10).status_code


def test_serve_reads_the_key_from_a_file_without_its_trailing_newline(home, tmp_path):
    key_file = tmp_path / "serve.key"
    key_file.write_text(SERVER_KEY + "\n")
    with serving(home, "--api-key-file", str(key_file), env=cli_env(home)) as served:
        assert auth_check(served.url, SERVER_KEY) == 200
        assert auth_check(served.url, "another-key-0123456789") == 401
    assert "warning" not in served.stderr and SERVER_KEY not in served.stderr


def test_an_api_key_on_the_command_line_still_works_but_warns(home):
    with serving(home, "--api-key", SERVER_KEY, env=cli_env(home)) as served:
        assert auth_check(served.url, SERVER_KEY) == 200
    assert "--api-key on the command line is visible to every local user" in served.stderr
    assert SERVER_KEY not in served.stderr


@pytest.mark.parametrize(
    ("content", "message"),
    [(None, "does not exist"), ("", "is empty"), ("\n  \n", "is empty")],
    ids=["missing", "empty", "blank"],
)
def test_an_unusable_key_file_is_refused_before_serving(home, tmp_path, content, message):
    key_file = tmp_path / "serve.key"
    if content is not None:
        key_file.write_text(content)
    result = run_cli("serve", "--api-key-file", str(key_file), "--port", str(closed_port()), home=home)
    assert result.code == 2
    assert message in result.stderr and "--api-key-file" in result.stderr


def test_a_key_and_a_key_file_together_are_refused(home, tmp_path):
    key_file = tmp_path / "serve.key"
    key_file.write_text(SERVER_KEY)
    result = run_cli("serve", "--api-key", SERVER_KEY, "--api-key-file", str(key_file), home=home)
    assert result.code == 2
    assert "not both" in result.stderr and SERVER_KEY not in result.stderr
