"""Per-connection state: which backend answers, the thread pool, the cache, the counters.

`register(con)` creates one `SutroSession` per DuckDB connection, installs the
Python UDFs behind the SQL surface and the TEMP macros users call:

- ``sutro_run(fn, input, on_error := 'raise', cache := true)`` -> `_sutro_run` (Arrow UDF);
- ``sutro_batch(fn, query, id_column, job_priority, dry_run, job_name, description, cache)`` -> a
  table macro reading the Parquet file `_sutro_batch` materializes;
- ``sutro_jobs()`` -> a table macro over `_sutro_jobs`.

Macros are TEMP so a database file never keeps macros that call functions that
exist only in this process. The session holds the connection weakly; the
connection's UDFs hold the session, so both live exactly as long as the connection.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import threading
import time
import weakref
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

import duckdb

from ..backends.base import Backend
from ..errors import NotFoundError, QueryError
from ..functions import FunctionSpec
from .answers import ANSWER_SQL_TYPE
from .cache import AnswerStore

if TYPE_CHECKING:
    from ..client import Client

#: Default for `auto_batch`: lift `sutro_run` to one batch job above this many distinct inputs.
DEFAULT_AUTO_BATCH_THRESHOLD = 1000
#: How long a looked-up Function spec is reused before asking the backend again (seconds).
SPEC_TTL = 2.0

_SESSIONS: weakref.WeakKeyDictionary[duckdb.DuckDBPyConnection, SutroSession] = weakref.WeakKeyDictionary()
_SESSIONS_LOCK = threading.Lock()


@dataclass
class SessionStats:
    """Exact counters since `register` (or `reset_stats`).

    calls: real-time backend calls made; cache_hits: rows answered by the answer
    cache (memory or disk) instead of a call; rows_answered /
    rows_failed: rows given an answer / an error (scalar and batch); jobs_submitted /
    jobs_reattached: batch jobs created / found again for the same content; tokens
    and cost: usage of the calls and jobs this session paid for (cache hits and
    re-attached jobs cost nothing again).
    """

    calls: int = 0
    cache_hits: int = 0
    rows_answered: int = 0
    rows_failed: int = 0
    jobs_submitted: int = 0
    jobs_reattached: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class FunctionInfo:
    """What the SQL layer knows about a Function: its spec when the backend has one, and the
    cache-key revision: the spec's content hash, or "" for remote Functions (keyed by name alone)."""

    name: str
    spec: FunctionSpec | None
    revision: str

    def payload(self, value: dict[str, Any]) -> Any:
        """What the backend is sent for one input object (the spec's input conversion, if known)."""
        return self.spec.convert_input(value) if self.spec is not None else value


class SutroSession:
    """The state behind one registered DuckDB connection."""

    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        backend: Backend,
        client: Client,
        *,
        max_concurrency: int,
        cache: bool,
        progress: bool | None,
        auto_batch_threshold: int,
    ) -> None:
        if max_concurrency < 1:
            raise ValueError("max_concurrency must be at least 1")
        self._con = weakref.ref(con)
        self.backend = backend
        self.client = client
        self.max_concurrency = max_concurrency
        self.cache_enabled = cache
        self.progress = progress
        self.auto_batch_threshold = auto_batch_threshold
        self.stats = SessionStats()
        self.answers = AnswerStore.open(backend.home)
        self.executor = ThreadPoolExecutor(max_workers=max_concurrency, thread_name_prefix="sutro-sql")
        self.workdir = tempfile.mkdtemp(prefix="sutro-sql-")
        self._stats_lock = threading.Lock()
        self._specs: dict[str, tuple[FunctionInfo, float]] = {}
        self._finalizer = weakref.finalize(self, _release, self.executor, self.workdir)

    @property
    def connection(self) -> duckdb.DuckDBPyConnection:
        con = self._con()
        if con is None:
            raise QueryError("the DuckDB connection of this session is closed")
        return con

    @property
    def identity(self) -> str:
        return self.backend.identity

    def count(self, **deltas: float) -> None:
        """Add to the counters atomically (UDFs run on several DuckDB threads)."""
        with self._stats_lock:
            for name, delta in deltas.items():
                setattr(self.stats, name, getattr(self.stats, name) + delta)

    def reset_stats(self) -> None:
        with self._stats_lock:
            self.stats = SessionStats()

    def function(self, name: Any) -> FunctionInfo:
        """The Function called `name`, checked: a clear error for a bad or unknown name."""
        if not isinstance(name, str) or not name:
            raise QueryError(f"the Function name must be a non-empty string literal, got {name!r}")
        now = time.monotonic()
        cached = self._specs.get(name)
        if cached is not None and now - cached[1] < SPEC_TTL:
            return cached[0]
        try:
            spec = self.backend.get_function_spec(name)
        except NotFoundError as exc:
            raise NotFoundError(f"unknown Function {name!r} on backend {self.identity}: {exc.detail}") from None
        info = FunctionInfo(name, spec, spec.revision if spec is not None else "")
        self._specs[name] = (info, now)
        return info

    def close(self) -> None:
        self._finalizer()


def binding_a_relation() -> bool:
    """True while DuckDB's Python relation layer binds a statement, which it runs again after:
    constant UDF calls in a table function's arguments (`sutro_batch`) are evaluated in both
    phases, and must not be counted twice.

    DuckDB offers no public signal for the phase (checked in 2.0.1: same thread, same
    arguments, `query_progress()` is -1 in both), so this looks for the relation layer's
    `bind` on the call stack. Only the counters depend on it: if a DuckDB upgrade renamed
    that module, the second evaluation would still submit nothing (its rows are cached by
    then) but would be counted again, which the exact-stats tests would catch."""
    frame = sys._getframe(1)
    while frame is not None:
        code = frame.f_code
        if code.co_name == "bind" and code.co_filename.endswith(os.path.join("duckdb", "_seam.py")):
            return True
        frame = frame.f_back
    return False


def _release(executor: ThreadPoolExecutor, workdir: str) -> None:
    executor.shutdown(wait=False, cancel_futures=True)
    shutil.rmtree(workdir, ignore_errors=True)


def register(
    con: duckdb.DuckDBPyConnection,
    backend: Backend | None = None,
    *,
    client: Client | None = None,
    max_concurrency: int = 8,
    cache: bool = True,
    progress: bool | None = None,
    auto_batch_threshold: int = DEFAULT_AUTO_BATCH_THRESHOLD,
) -> SutroSession:
    """Put Sutro Functions into `con`: `sutro_run`, `sutro_batch`, `sutro_jobs`.

    `backend` (or `client.backend`) answers; by default the one `default_backend()`
    picks (SUTRO_API_URL + SUTRO_API_KEY -> remote, else the local home).
    `max_concurrency`: real-time calls in flight per session. `cache=False` turns
    the answer cache off for every call. `progress`: the batch progress bar
    (None: on when stderr is a terminal). Registering again replaces the session.
    """
    from ..client import Client, default_backend
    from .batch import BatchMaterializer
    from .jobs import JobsTable
    from .scalar import ScalarRunner

    if backend is None:
        backend = client.backend if client is not None else default_backend()
    if client is None:
        client = Client(backend, progress=progress)
    session = SutroSession(
        con,
        backend,
        client,
        max_concurrency=max_concurrency,
        cache=cache,
        progress=progress,
        auto_batch_threshold=auto_batch_threshold,
    )
    with _SESSIONS_LOCK:
        previous = _SESSIONS.get(con)
        if previous is not None:
            for name in ("_sutro_run", "_sutro_batch", "_sutro_jobs"):
                con.remove_function(name)
            previous.close()
        _SESSIONS[con] = session

    con.create_function(
        "_sutro_run",
        ScalarRunner(session),
        ["VARCHAR", "VARCHAR", "UBIGINT", "VARCHAR", "BOOLEAN"],
        duckdb.sqltype(ANSWER_SQL_TYPE),
        type="arrow",
        null_handling="special",
    )
    con.create_function(
        "_sutro_batch",
        BatchMaterializer(session),
        ["VARCHAR", "VARCHAR", "VARCHAR", "BIGINT", "BOOLEAN", "VARCHAR", "VARCHAR", "BOOLEAN"],
        "VARCHAR",
        null_handling="special",
    )
    con.create_function("_sutro_jobs", JobsTable(session), ["UBIGINT"], "VARCHAR", null_handling="special")
    install_macros(con)
    return session


def install_macros(con: duckdb.DuckDBPyConnection) -> None:
    """Create the TEMP macros users call (`register` does this). TEMP macros belong to one
    connection or cursor while the UDFs behind them belong to the database, so a cursor of a
    registered connection (dbt runs every model on one) needs only this call."""
    con.execute(
        "CREATE OR REPLACE TEMP MACRO sutro_run(fn, input, on_error := 'raise', cache := true) "
        "AS _sutro_run(fn, to_json(input), hash(input), on_error, cache)"
    )
    con.execute(
        "CREATE OR REPLACE TEMP MACRO sutro_batch(fn, query, id_column := NULL, job_priority := 0, "
        "dry_run := false, job_name := NULL, description := NULL, cache := true) AS TABLE "
        "SELECT * FROM read_parquet(_sutro_batch(fn, query, id_column, job_priority, dry_run, job_name, "
        "description, cache))"
    )
    # The parameter keeps DuckDB from evaluating the body when the macro is created.
    con.execute(
        "CREATE OR REPLACE TEMP MACRO sutro_jobs(refresh := 0) AS TABLE "
        "SELECT * FROM read_parquet(_sutro_jobs(txid_current() + refresh))"
    )


def connect(
    database: str = ":memory:",
    *,
    read_only: bool = False,
    config: dict[str, Any] | None = None,
    **register_kwargs: Any,
) -> duckdb.DuckDBPyConnection:
    """Open a DuckDB connection with Sutro Functions registered (see `register` for the options).

    This is how Python readers should open a warehouse whose views call `sutro_run`."""
    con = duckdb.connect(database, read_only=read_only, config=config or {})
    register(con, **register_kwargs)
    return con


def session_for(con: duckdb.DuckDBPyConnection) -> SutroSession:
    """The session `register` created for `con`."""
    session = _SESSIONS.get(con)
    if session is None:
        raise QueryError("this DuckDB connection has no Sutro Functions: call sutro_sql.register(con) first")
    return session
