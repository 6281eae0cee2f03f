"""Shared fixtures: a fresh home with the example Functions, a LocalBackend on it driven by
the deterministic KeywordEngine (tests/support/engines.py), and `sutro-sql serve` on a
loopback port with a RemoteBackend client."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
EXAMPLE_FUNCTIONS = REPO / "examples" / "functions"


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    """A home folder holding copies of examples/functions; SUTRO_SQL_HOME points at it
    and no remote deployment is configured."""
    home = tmp_path / "home"
    shutil.copytree(EXAMPLE_FUNCTIONS, home / "functions")
    monkeypatch.setenv("SUTRO_SQL_HOME", str(home))
    for var in ("SUTRO_API_URL", "SUTRO_API_KEY", "SUTRO_SQL_ENGINE"):
        monkeypatch.delenv(var, raising=False)
    return home


@pytest.fixture
def keyword_engine():
    from tests.support.engines import KeywordEngine

    return KeywordEngine()


@pytest.fixture
def local_backend(home, keyword_engine):
    """LocalBackend over `home`, every Function answered by the KeywordEngine."""
    from sutro_sql.backends.local import LocalBackend

    backend = LocalBackend(home, engine=keyword_engine)
    yield backend
    backend.close()


@pytest.fixture
def counting(local_backend):
    """`local_backend` behind a wrapper that counts real-time calls and batch submissions."""
    from tests.sql_support import CountingBackend

    return CountingBackend(local_backend)


@pytest.fixture
def client(counting):
    """A Client over `counting`, without progress bars."""
    from sutro_sql.client import Client

    with Client(backend=counting, progress=False) as client:
        yield client


@pytest.fixture(scope="module")
def deployment(tmp_path_factory):
    """`sutro-sql serve` as a real subprocess on a loopback port, one per test module,
    answering the example Functions with the KeywordEngine."""
    from tests.support.serve_process import ServedDeployment, make_home

    with ServedDeployment(make_home(tmp_path_factory.mktemp("served"))) as served:
        yield served


@pytest.fixture
def remote(deployment, tmp_path):
    """A RemoteBackend on `deployment`, with its own client home."""
    from sutro_sql.backends.remote import RemoteBackend

    with RemoteBackend(deployment.url, deployment.api_key, home=tmp_path / "client-home") as backend:
        yield backend
