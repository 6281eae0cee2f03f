"""HTTP/2 where the deployment speaks it: RemoteBackend's Function runs over TLS to a server that
offers h2 (hypercorn; uvicorn speaks HTTP/1.1 only) are negotiated as HTTP/2 and answered
correctly, many multiplexed on few connections."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from sutro_sql.backends.local import LocalBackend
from sutro_sql.backends.remote import RemoteBackend
from sutro_sql.server import create_app
from tests.support.engines import KeywordEngine
from tests.support.fault_server import free_port
from tests.support.tls import HAS_OPENSSL, self_signed_certificate

hypercorn_asyncio = pytest.importorskip("hypercorn.asyncio")
from hypercorn.config import Config  # noqa: E402

KEY = "sk_http2_" + "k" * 16
pytestmark = pytest.mark.skipif(not HAS_OPENSSL, reason="needs openssl to make a certificate")


@pytest.fixture
def certificate(tmp_path, monkeypatch):
    cert, key = self_signed_certificate(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # trust it, as a user would their CA's
    return cert, key


@contextmanager
def hypercorn_server(app, cert, key) -> Iterator[str]:
    """`app` served by hypercorn (h2 and http/1.1 offered over TLS) on a thread; yields its URL."""
    port = free_port()
    config = Config()
    config.bind = [f"127.0.0.1:{port}"]
    config.certfile, config.keyfile = str(cert), str(key)
    config.loglevel = "WARNING"
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    thread = threading.Thread(
        target=lambda: loop.run_until_complete(hypercorn_asyncio.serve(app, config, shutdown_trigger=stop.wait)),
        daemon=True,
    )
    thread.start()
    deadline = time.monotonic() + 10
    while True:  # until it accepts connections
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            assert time.monotonic() < deadline, "hypercorn did not start"
            time.sleep(0.02)
    try:
        yield f"https://127.0.0.1:{port}"
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(timeout=10)


def test_function_runs_use_http2_when_the_server_offers_it(home, tmp_path, certificate):
    versions: list[str] = []
    with LocalBackend(home, engine=KeywordEngine(delay=0)) as local:
        app = create_app(local, KEY)

        async def recording(scope, receive, send):
            if scope["type"] == "http" and scope["path"].endswith("/run"):
                versions.append(scope["http_version"])
            await app(scope, receive, send)

        with (
            hypercorn_server(recording, *certificate) as url,
            RemoteBackend(url, KEY, home=tmp_path, max_concurrency=8) as backend,
        ):
            rows = [{"subject": f"s{i}", "body": "billing" if i % 2 else "a bug"} for i in range(24)]
            answers = backend.run_function_many("ticket-triage", rows)
    assert [a["output"] for a in answers] == ["bug", "billing"] * 12
    assert versions == ["2"] * 24
