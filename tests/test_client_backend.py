"""open_backend: which deployment the environment and the arguments choose."""

from __future__ import annotations

import pytest

from sutro_sql.backends import open_backend
from sutro_sql.backends.local import LocalBackend
from sutro_sql.backends.remote import RemoteBackend
from sutro_sql.client import Client
from sutro_sql.errors import ConfigurationError

SECRET = "sk-test-secret-value-123"


def test_nothing_configured_gives_the_local_deployment_in_sutro_sql_home(home):
    backend = open_backend()
    try:
        assert isinstance(backend, LocalBackend)
        assert backend.home == str(home)
    finally:
        backend.close()


def test_an_explicit_home_beats_sutro_sql_home(home, tmp_path):
    backend = open_backend(home=tmp_path / "elsewhere")
    try:
        assert backend.home == str(tmp_path / "elsewhere")
    finally:
        backend.close()


def test_url_and_key_in_the_environment_give_the_remote_deployment(home, monkeypatch):
    monkeypatch.setenv("SUTRO_API_URL", "http://127.0.0.1:8787")
    monkeypatch.setenv("SUTRO_API_KEY", SECRET)
    backend = open_backend()
    try:
        assert isinstance(backend, RemoteBackend)
        assert backend.identity.startswith("remote:http://127.0.0.1:8787")
        assert SECRET not in repr(backend)
    finally:
        backend.close()


def test_explicit_url_and_key_beat_the_environment(home, monkeypatch):
    monkeypatch.setenv("SUTRO_API_URL", "http://127.0.0.1:1111")
    monkeypatch.setenv("SUTRO_API_KEY", SECRET)
    with Client(api_url="http://127.0.0.1:2222", api_key="other-key") as client:
        assert isinstance(client.backend, RemoteBackend)
        assert "127.0.0.1:2222" in client.backend.identity


def test_an_explicit_url_may_take_its_key_from_the_environment(home, monkeypatch):
    monkeypatch.setenv("SUTRO_API_KEY", SECRET)
    backend = open_backend(api_url="http://127.0.0.1:3333")
    try:
        assert isinstance(backend, RemoteBackend)
    finally:
        backend.close()


def test_a_url_without_a_key_is_refused_naming_what_is_missing(home, monkeypatch):
    monkeypatch.setenv("SUTRO_API_URL", "http://127.0.0.1:8787")
    with pytest.raises(ConfigurationError, match="SUTRO_API_KEY is not"):
        open_backend()


def test_a_key_without_a_url_is_refused_without_echoing_the_key(home, monkeypatch):
    monkeypatch.setenv("SUTRO_API_KEY", SECRET)
    with pytest.raises(ConfigurationError, match="SUTRO_API_URL is not") as refused:
        open_backend()
    assert SECRET not in str(refused.value)
    with pytest.raises(ConfigurationError) as refused_explicit:
        Client(api_key=SECRET)
    assert SECRET not in str(refused_explicit.value)


def test_a_backend_and_connection_settings_together_are_refused(local_backend):
    with pytest.raises(ConfigurationError, match="not both"):
        Client(backend=local_backend, api_url="http://127.0.0.1:1")
