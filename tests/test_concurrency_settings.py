"""The concurrency a user asks for reaches the remote deployment's connection wherever the
backend is built: `connect()`, the dbt plugin, the CLI and the Python client."""

from __future__ import annotations

import pytest

from sutro_sql.cli.state import CliState
from sutro_sql.client import Client
from sutro_sql.dbt import PluginSettings, build_client
from sutro_sql.sql_layer import connect, session_for

URL, KEY = "http://127.0.0.1:9", "sk-test"  # nothing listens: building a client makes no call


@pytest.fixture
def remote_env(monkeypatch, tmp_path):
    monkeypatch.setenv("SUTRO_API_URL", URL)
    monkeypatch.setenv("SUTRO_API_KEY", KEY)
    monkeypatch.setenv("SUTRO_SQL_HOME", str(tmp_path))


def test_connect_passes_max_concurrency_to_the_remote_backend(remote_env):
    con = connect(max_concurrency=5, progress=False)
    try:
        client = session_for(con).client
        assert (client.max_concurrency, client.backend.max_concurrency) == (5, 5)
    finally:
        con.close()


def test_the_dbt_plugin_passes_max_concurrency_to_the_remote_backend(tmp_path):
    client = build_client(PluginSettings(api_url=URL, api_key=KEY, home=str(tmp_path), max_concurrency=3))
    backend = client.backend
    try:
        assert (client.max_concurrency, backend.max_concurrency) == (3, 3)
    finally:
        client.close()
        backend.close()


def test_the_cli_passes_max_concurrency_to_the_remote_backend(tmp_path):
    state = CliState(home=str(tmp_path), api_url=URL, api_key=KEY, max_concurrency=7, debug=False, quiet=True)
    try:
        assert state.client().backend.max_concurrency == 7
    finally:
        state.close()


def test_the_python_client_passes_max_concurrency_to_the_remote_backend(tmp_path):
    with Client(KEY, URL, home=tmp_path, max_concurrency=9) as client:
        assert client.backend.max_concurrency == 9
