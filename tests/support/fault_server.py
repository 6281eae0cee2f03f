"""A real HTTP server on 127.0.0.1 that answers as a test tells it to.

Tests queue `Reply`s; each incoming request takes the next one (or the
default once the queue is empty) and is recorded with its arrival time, so a
test can check what a client sent, how often, and how long it waited between
tries. Replies can be errors with any body, slow, cut off mid-body, or
malformed: the bad days a network client must survive without hanging.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    """What to answer. `json` is encoded; `body` is sent raw (e.g. malformed JSON, HTML).
    `delay` sleeps before answering; `drop` sends the headers and half the body, then
    closes the connection. `meet`: wait there until as many requests as the barrier's parties
    are held together (a broken barrier answers 503), which proves that many were in flight."""

    status: int = 200
    json: Any = None
    body: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    drop: bool = False
    meet: threading.Barrier | None = None

    def payload(self) -> bytes:
        if self.body is not None:
            return self.body
        return json.dumps(self.json if self.json is not None else {}).encode()


@dataclass
class Seen:
    """One request as it arrived."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    at: float


class _Server(ThreadingHTTPServer):
    """A listen backlog for many clients connecting at once (the default 5 drops the rest's
    handshakes, which then arrive seconds late or not at all)."""

    request_queue_size = 256


class FaultServer:
    """Context manager: `with FaultServer() as server: server.queue(Reply(...)); server.url`."""

    def __init__(self, default: Reply | None = None) -> None:
        self.default = default or Reply(404, {"detail": "no reply queued", "code": "not_found", "request_id": "rt_0"})
        self.seen: list[Seen] = []
        self.in_flight = 0  # requests received and not yet answered
        self.most_in_flight = 0
        self._replies: list[Reply] = []
        self._lock = threading.Lock()
        self._server = _Server(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def queue(self, *replies: Reply) -> None:
        with self._lock:
            self._replies.extend(replies)

    def _next(self) -> Reply:
        with self._lock:
            return self._replies.pop(0) if self._replies else self.default

    def _record(self, seen: Seen) -> None:
        with self._lock:
            self.seen.append(seen)
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)

    def _answered(self) -> None:
        """Counted before the reply is written: a client cannot start its next call before this."""
        with self._lock:
            self.in_flight -= 1

    def __enter__(self) -> FaultServer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    body = self._read_chunked()
                else:
                    body = self.rfile.read(length) if length else b""
                server._record(Seen(self.command, self.path, dict(self.headers), body, time.monotonic()))
                reply = server._next()
                if reply.delay:
                    time.sleep(reply.delay)
                status = reply.status
                if reply.meet is not None:
                    try:
                        reply.meet.wait(timeout=30)
                    except threading.BrokenBarrierError:
                        status = 503
                payload = reply.payload()
                server._answered()
                self.send_response(status)
                headers = {"Content-Type": "application/json", **reply.headers}
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                if reply.drop:
                    self.wfile.write(payload[: len(payload) // 2])
                    self.wfile.flush()
                    self.connection.shutdown(socket.SHUT_RDWR)
                    self.close_connection = True
                    return
                self.wfile.write(payload)

            def _read_chunked(self) -> bytes:
                chunks = []
                while True:
                    size = int(self.rfile.readline().strip().split(b";")[0], 16)
                    if size == 0:
                        self.rfile.readline()
                        return b"".join(chunks)
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _answer

        return Handler


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
