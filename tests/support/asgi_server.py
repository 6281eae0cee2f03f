"""The v1 ASGI app (`create_app`) in this process, two ways: over a real loopback socket
(uvicorn in a thread), or with no socket at all (`InProcessTransport`, for RemoteBackend's
`transport=`). `serve_process.ServedDeployment` runs `sutro-sql serve` as a subprocess instead.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import anyio.from_thread
import httpx
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


class InProcessTransport(httpx.BaseTransport, httpx.AsyncBaseTransport):
    """An httpx transport that calls an ASGI app in this process: sync, and async (what
    RemoteBackend's Function runs use, on their own event loop).

    httpx's own `ASGITransport` is async-only, so it runs here on an anyio blocking portal (one
    event-loop thread, shared by every calling thread). Everything above the transport
    (RemoteBackend's requests, retries, error mapping) is the production path; only the socket
    is gone. Like `ASGITransport`, a response is read whole before it is returned, so a progress
    stream arrives at once when the job ends (it still ends: the v1 stream closes at a terminal
    status).
    """

    def __init__(self, app) -> None:
        self._asgi = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        self._portal_context = anyio.from_thread.start_blocking_portal()
        self._portal = self._portal_context.__enter__()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        forwarded = httpx.Request(request.method, request.url, headers=request.headers, content=request.read())

        async def call() -> tuple[int, httpx.Headers, bytes]:
            response = await self._asgi.handle_async_request(forwarded)
            return response.status_code, response.headers, await response.aread()

        status, headers, content = self._portal.call(call)
        return httpx.Response(status, headers=headers, content=content, request=request)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await self._asgi.handle_async_request(request)

    def close(self) -> None:
        self._portal_context.__exit__(None, None, None)
