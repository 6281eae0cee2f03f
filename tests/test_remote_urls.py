"""Which deployment and key RemoteBackend uses: the official SDK's rules (v1 §1.1, §1.2)."""

from __future__ import annotations

import json

import pytest

from sutro_sql.backends.base import Backend
from sutro_sql.backends.remote import RemoteBackend
from sutro_sql.errors import ConfigurationError
from sutro_sql.urls import DIRECT_TENSOR_FACTORY_API_ERROR, normalize_api_url, resolve_credentials


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("https://sutro.example.com", "https://sutro.example.com/v1"),
        ("https://sutro.example.com/v1/", "https://sutro.example.com/v1"),
        ("  https://Sutro.Example.com:8443  ", "https://Sutro.Example.com:8443/v1"),
        ("http://localhost:8000", "http://localhost:8000/v1"),
        ("http://LOCALHOST:8000", "http://LOCALHOST:8000/v1"),
        ("http://127.0.0.2:9/", "http://127.0.0.2:9/v1"),
        ("http://[::1]:8000", "http://[::1]:8000/v1"),
    ],
)
def test_urls_normalize_to_the_v1_prefix(given, expected):
    assert normalize_api_url(given) == expected


@pytest.mark.parametrize(
    ("given", "reason"),
    [
        ("", "cannot be empty"),
        ("ftp://sutro.example.com", "absolute HTTP"),
        ("sutro.example.com", "absolute HTTP"),
        ("https://user:pw@sutro.example.com", "embedded credentials"),
        ("https://sutro.example.com/v1?x=1", "query string"),
        ("https://sutro.example.com/#top", "fragment"),
        ("http://0.0.0.0:8000", "HTTPS"),
        ("http://192.168.1.5:8000", "HTTPS"),
        ("https://x.com/api", "origin or end at its /v1"),
        ("https://x.com/v1/jobs", "origin or end at its /v1"),
    ],
)
def test_bad_urls_are_refused_with_the_reason(given, reason):
    with pytest.raises(ConfigurationError, match=reason):
        normalize_api_url(given)


@pytest.mark.parametrize(
    "retired",
    [
        "https://api.sutro.sh",
        "https://eu.api.sutro.sh/v1",
        "https://SERVE.sutro.sh.",
        "https://%61pi.sutro.sh",
        "https://api.materialized.dev",
        "https://abc--tensor-factory-fastapi-app.modal.run",
    ],
)
def test_retired_centralized_hosts_get_the_sdk_message(retired):
    with pytest.raises(ConfigurationError) as caught:
        normalize_api_url(retired)
    assert caught.value.detail == DIRECT_TENSOR_FACTORY_API_ERROR


@pytest.fixture
def no_login(tmp_path, monkeypatch):
    """No environment credentials and an empty home: tests add what they need."""
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("SUTRO_API_URL", raising=False)
    monkeypatch.delenv("SUTRO_API_KEY", raising=False)
    return tmp_path


def save_login(home, **config):
    (home / ".sutro").mkdir(exist_ok=True)
    (home / ".sutro" / "config.json").write_text(json.dumps(config))


def test_explicit_arguments_win(no_login, monkeypatch):
    monkeypatch.setenv("SUTRO_API_URL", "https://env.example.com")
    monkeypatch.setenv("SUTRO_API_KEY", "env-key")
    assert resolve_credentials("https://mine.example.com", "my-key") == ("https://mine.example.com/v1", "my-key")


def test_environment_beats_the_saved_login_and_is_never_mixed_with_it(no_login, monkeypatch):
    save_login(no_login, api_url="https://saved.example.com", api_key="saved-key")
    monkeypatch.setenv("SUTRO_API_URL", "https://env.example.com")
    with pytest.raises(ConfigurationError, match="key is not configured"):
        resolve_credentials()
    monkeypatch.setenv("SUTRO_API_KEY", "env-key")
    assert resolve_credentials() == ("https://env.example.com/v1", "env-key")


def test_saved_login_is_used_when_the_environment_is_empty(no_login):
    save_login(no_login, base_url="http://localhost:8787/", api_key="saved-key")
    assert resolve_credentials() == ("http://localhost:8787/v1", "saved-key")


def test_an_explicit_key_pairs_with_the_environment_url_but_not_the_saved_one(no_login, monkeypatch):
    save_login(no_login, api_url="https://saved.example.com", api_key="saved-key")
    with pytest.raises(ConfigurationError, match="URL is not configured"):
        resolve_credentials(api_key="my-key")
    monkeypatch.setenv("SUTRO_API_URL", "https://env.example.com")
    assert resolve_credentials(api_key="my-key") == ("https://env.example.com/v1", "my-key")


def test_an_explicit_url_reuses_a_saved_key_only_for_the_same_normalized_url(no_login):
    save_login(no_login, api_url="http://localhost:8787", api_key="saved-key")
    assert resolve_credentials("http://localhost:8787/v1/") == ("http://localhost:8787/v1", "saved-key")
    with pytest.raises(ConfigurationError, match="key is not configured"):
        resolve_credentials("http://LOCALHOST:8787")


def test_a_missing_url_or_key_fails_before_any_request(no_login):
    with pytest.raises(ConfigurationError, match="URL is not configured"):
        RemoteBackend()


def test_identity_names_the_deployment_and_home_is_absolute(no_login, monkeypatch):
    monkeypatch.chdir(no_login)
    with RemoteBackend("http://127.0.0.1:9", "k3y-that-must-not-show", home="state") as backend:
        assert isinstance(backend, Backend)
        assert backend.identity == "remote:http://127.0.0.1:9/v1"
        assert backend.home == str(no_login / "state")
        assert "k3y-that-must-not-show" not in repr(backend)
        assert backend.get_function_spec("anything") is None
