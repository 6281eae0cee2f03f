"""SIGTERM and Ctrl-C while DuckDB holds the main thread: a watcher thread gets them instead."""

from __future__ import annotations

import contextlib
import signal
import socket
import threading
from collections.abc import Callable, Iterator


@contextlib.contextmanager
def handing_back_work_on_signal(on_signal: Callable[[int], None]) -> Iterator[None]:
    """Call `on_signal(signum)` on a watcher thread when SIGTERM or SIGINT arrives while the block runs.

    The main thread may sit inside DuckDB for minutes (waiting on a batch job)
    and would never run a Python signal handler; so the signals get a no-op
    handler (so they no longer kill the process) and CPython's wakeup fd hands
    their numbers to the watcher thread. Signals the process ignores stay ignored.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    reader, writer = socket.socketpair()
    writer.setblocking(False)
    watched = [s for s in (signal.SIGTERM, signal.SIGINT) if signal.getsignal(s) is not signal.SIG_IGN]
    previous_handlers = {s: signal.signal(s, lambda *_: None) for s in watched}
    previous_fd = signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)

    def watch() -> None:
        with reader:
            received = reader.recv(1)
        if received and received[0] in watched:
            on_signal(received[0])

    threading.Thread(target=watch, name="sutro-sql-signals", daemon=True).start()
    try:
        yield
    finally:
        signal.set_wakeup_fd(previous_fd)
        for signum, handler in previous_handlers.items():
            signal.signal(signum, handler)
        writer.send(b"\0")  # not a signal: the watcher returns
        writer.close()
