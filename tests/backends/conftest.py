"""The Backend conformance suite: every test here runs against each backend through one fixture,
`backend` (Ibis's one-suite-many-backends):

- `local`: LocalBackend in this process;
- `remote-inprocess`: RemoteBackend over `InProcessTransport` to `create_app(LocalBackend(...))`,
  no socket;
- `remote-socket`: RemoteBackend against a real `sutro-sql serve` subprocess on loopback.

All answer with the deterministic GatedEngine (the KeywordEngine plus a gate that can hold a
job RUNNING). Where backends differ by design, a test says which capability it needs with
``@pytest.mark.needs("...")`` or ``@pytest.mark.lacks("...")``, never by backend name.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sutro_sql.backends.local import LocalBackend
from sutro_sql.backends.remote import RemoteBackend
from sutro_sql.server import create_app
from tests.backends.gated_engine import GatedEngine
from tests.support.asgi_server import InProcessTransport
from tests.support.serve_process import ServedDeployment, make_home

BACKENDS = ("local", "remote-inprocess", "remote-socket")
#: What a backend can do beyond the common contract.
CAPABILITIES = {
    "local": frozenset({"function_specs"}),  # knows each Function's spec, not only its name
    "remote-inprocess": frozenset(),
    "remote-socket": frozenset(),
}
KEY = "sk_suite_" + "k" * 16


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "needs(capability): run only on backends that have it")
    config.addinivalue_line("markers", "lacks(capability): run only on backends that lack it")


class Gate:
    """Closed: a chunk with a HOLD_ROW row waits. Tests close it, and it always opens after."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def close(self) -> None:
        self.path.touch()

    def open(self) -> None:
        self.path.unlink(missing_ok=True)


@pytest.fixture(scope="session")
def gate_path(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("gate") / "closed"


@pytest.fixture
def gate(gate_path) -> Iterator[Gate]:
    gate = Gate(gate_path)
    yield gate
    gate.open()


@pytest.fixture(scope="session")
def served(tmp_path_factory, gate_path) -> Iterator[ServedDeployment]:
    """One `sutro-sql serve` subprocess for the whole suite, answering with the GatedEngine."""
    env = {"SUTRO_SQL_ENGINE": "tests.backends.gated_engine:GatedEngine", "SUTRO_TEST_GATE": str(gate_path)}
    with ServedDeployment(make_home(tmp_path_factory.mktemp("served")), env=env) as deployment:
        yield deployment


@pytest.fixture(params=BACKENDS)
def backend(request, home, tmp_path, gate_path):
    """Each backend in turn (see the module docstring), skipped where a capability mark says so."""
    name = request.param
    for mark in request.node.iter_markers("needs"):
        if mark.args[0] not in CAPABILITIES[name]:
            pytest.skip(f"{name} lacks {mark.args[0]}")
    for mark in request.node.iter_markers("lacks"):
        if mark.args[0] in CAPABILITIES[name]:
            pytest.skip(f"{name} has {mark.args[0]}")
    client_home = tmp_path / "client-home"
    if name == "remote-socket":
        served = request.getfixturevalue("served")
        with RemoteBackend(served.url, served.api_key, home=client_home) as remote:
            yield remote
        return
    local = LocalBackend(home, engine=GatedEngine(gate_path))
    if name == "local":
        with local:
            yield local
        return
    with (
        local,
        RemoteBackend(
            "http://localhost", KEY, home=client_home, transport=InProcessTransport(create_app(local, KEY))
        ) as remote,
    ):
        yield remote
