"""Serve an ASGI app (the v1 `create_app`) with uvicorn on a free loopback port, in a thread.

For tests that need the real HTTP server in-process, e.g. to reach its backend's internals;
`serve_process.ServedDeployment` runs `sutro-sql serve` as a subprocess instead.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn


@contextmanager
def serve_app(app) -> Iterator[str]:
    """Yield the server's origin (``http://127.0.0.1:PORT``) once it accepts connections."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
