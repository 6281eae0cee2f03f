"""Per-connection state: the Client that answers, the SQL options, the UDFs and macros.

`register(con)` creates one `SutroSession` per DuckDB connection, installs the
Python UDFs behind the SQL surface and the TEMP macros users call:

- ``sutro_run(fn, input, on_error := 'raise', cache := true, abstain_below := NULL)`` -> `_sutro_run`
  (Arrow UDF of the input's JSON, its hash and the options as one constant JSON object; the
  statement's `txid_current()` in it lets it tell dedup from cache hits);
- ``sutro_batch(fn, query, id_column, job_priority, dry_run, job_name, description, cache,
  abstain_below, stage)`` -> a
  table macro reading the Parquet file `_sutro_batch` materializes;
- ``sutro_jobs()`` -> a table macro over `_sutro_jobs`;
- both `sutro_run` and `sutro_batch` also take a cascade: ``escalate_to := NULL, escalate_below :=
  NULL, target_accuracy := NULL, calibrate_on := NULL`` (see `cascade`), and
  ``sutro_cascade_plan(fn, escalate_to, target_accuracy, calibrate_on := NULL, check_strong :=
  false)`` shows what a target picks.

Macros are TEMP so a database file never keeps macros that call functions that
exist only in this process. The session holds the connection weakly; the
connection's UDFs hold the session, so both live exactly as long as the connection.
"""

from __future__ import annotations

import itertools
import os
import shutil
import sys
import tempfile
import threading
import weakref
from functools import partial
from typing import TYPE_CHECKING, Any

import duckdb

from ..answers import ANSWER_SQL_TYPE
from ..backends.base import Backend
from ..errors import QueryError
from ..inputs import FunctionRef
from ..stats import Stats
from .cache import FunctionAnswers, function_answers

if TYPE_CHECKING:
    from ..client import Client

#: The cascade's named parameters of `sutro_run` and `sutro_batch` (see `sql_layer.cascade`), their
#: UDF argument types, and how the macros pass them on.
CASCADE_PARAMETERS = "escalate_to := NULL, escalate_below := NULL, target_accuracy := NULL, calibrate_on := NULL"
CASCADE_TYPES = ("VARCHAR", "DOUBLE", "DOUBLE", "VARCHAR")
CASCADE_ARGUMENTS = "escalate_to, escalate_below, target_accuracy, calibrate_on"

#: Default for `auto_batch`: lift `sutro_run` to one batch job above this many distinct inputs
#: (below it, real-time calls cost about what a job's wait does).
DEFAULT_AUTO_BATCH_THRESHOLD = 1000

#: Statements (DuckDB transactions) whose epoch a session remembers: more than run at once.
LIVE_STATEMENTS = 256
#: Statement epochs, unique in the process; 0 means "no statement".
_STATEMENT_EPOCHS = itertools.count(1)

_SESSIONS: weakref.WeakKeyDictionary[duckdb.DuckDBPyConnection, SutroSession] = weakref.WeakKeyDictionary()
_SESSIONS_LOCK = threading.Lock()


class SutroSession:
    """The state behind one registered DuckDB connection: the Client that answers (and counts),
    the SQL options, a scratch folder for the Parquet files `sutro_batch` reads."""

    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        client: Client,
        *,
        owns_client: bool,
        cache: bool,
        progress: bool | None,
        auto_batch_threshold: int,
        auto_batch: bool = False,
    ) -> None:
        self._con = weakref.ref(con)
        self.client = client
        self.cache_enabled = cache
        self.progress = progress
        self.auto_batch_threshold = auto_batch_threshold
        self.auto_batch = auto_batch  # `sql()`, the CLI and the dbt lift use it when not told otherwise
        self.workdir = tempfile.mkdtemp(prefix="sutro-sql-")
        self._epochs: dict[int, int] = {}
        self._memory: dict[tuple[Any, ...], FunctionAnswers] = {}  # this session's view of `function_answers`
        self._epoch_lock = threading.Lock()
        self._stages: dict[str, SutroSession] = {}  # cascade stages on other backends, by qualified name
        self._finalizer = weakref.finalize(self, _release, client if owns_client else None, self.workdir)

    @property
    def connection(self) -> duckdb.DuckDBPyConnection:
        con = self._con()
        if con is None:
            raise QueryError("the DuckDB connection of this session is closed")
        return con

    @property
    def stats(self) -> Stats:
        """The Client's counters (calls, cache hits, rows, jobs, tokens, cost)."""
        return self.client.stats

    def reset_stats(self) -> None:
        self.client.reset_stats()

    def count(self, **deltas: float) -> None:
        self.client.stats.count(**deltas)

    def epoch(self, txid: int) -> int:
        """A process-wide number for the statement running as DuckDB transaction `txid` on this
        session's database (statements of different cursors run at once, so several are live)."""
        with self._epoch_lock:
            epoch = self._epochs.get(txid)
            if epoch is None:
                epoch = self._epochs[txid] = next(_STATEMENT_EPOCHS)
                while len(self._epochs) > LIVE_STATEMENTS:
                    self._epochs.pop(next(iter(self._epochs)))
            return epoch

    def function(self, name: Any) -> FunctionRef:
        """The Function called `name`, checked: a clear error for a bad or unknown name."""
        if not isinstance(name, str) or not name:
            raise QueryError(f"the Function name must be a non-empty string literal, got {name!r}")
        return self.client.function(name)

    def memory(self, ref: FunctionRef) -> FunctionAnswers:
        """The in-memory answers of `ref` on this session's backend and cache."""
        client = self.client
        key = (client.answers.path, client.backend.identity, ref.name, ref.revision)
        answers = self._memory.get(key)
        if answers is None:
            answers = self._memory[key] = function_answers(str(key[0]), *key[1:])
        return answers

    def cascade_stage(self, name: str) -> tuple[SutroSession, str]:
        """The session a cascade's stronger Function `name` runs on, and its name there: this one,
        or, for `alias:function` on another backend, a session over that backend's Client."""
        client, bare = self.client.route(name)
        if client is self.client:
            return self, name
        with self._epoch_lock:
            stage = self._stages.get(name)
            if stage is None or stage.client is not client:
                stage = self._stages[name] = SutroSession(
                    self.connection,
                    client,
                    owns_client=False,
                    cache=self.cache_enabled,
                    progress=self.progress,
                    auto_batch_threshold=self.auto_batch_threshold,
                )
        return stage, bare

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


def _release(client: Client | None, workdir: str) -> None:
    if client is not None:
        client.close()
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
    auto_batch: bool = False,
) -> SutroSession:
    """Put Sutro Functions into `con`: `sutro_run`, `sutro_batch`, `sutro_jobs`.

    `client` answers (everything below SQL goes through it); by default a new Client over
    `backend`, or over the one `open_backend()` picks (SUTRO_API_URL + SUTRO_API_KEY ->
    remote, else the local home), with `max_concurrency` real-time calls in flight.
    `cache=False` turns the answer cache off for every call. `progress`: the batch
    progress bar (None: on when stderr is a terminal). `auto_batch`: whether `sutro_sql.sql()` and
    `_sutro_lift` (the dbt lift) turn `sutro_run` queries over more than `auto_batch_threshold`
    distinct inputs into one batch job. Registering again replaces the session.
    """
    from ..client import Client
    from .batch import BatchMaterializer
    from .cascade import CascadePlanTable, CascadingScalarRunner
    from .jobs import JobsTable
    from .query import lift_query

    if client is not None and backend is not None:
        raise QueryError("register: pass a client or a backend, not both")
    owns_client = client is None
    if client is None:
        client = Client(backend=backend, progress=progress, max_concurrency=max_concurrency)
    session = SutroSession(
        con,
        client,
        owns_client=owns_client,
        cache=cache,
        progress=progress,
        auto_batch_threshold=auto_batch_threshold,
        auto_batch=auto_batch,
    )
    with _SESSIONS_LOCK:
        previous = _SESSIONS.get(con)
        if previous is not None:
            for name in ("_sutro_run", "_sutro_batch", "_sutro_jobs", "_sutro_cascade_plan", "_sutro_lift"):
                con.remove_function(name)
            previous.close()
        _SESSIONS[con] = session

    con.create_function(
        "_sutro_run",
        CascadingScalarRunner(session),
        ["VARCHAR", "UBIGINT", "VARCHAR"],
        duckdb.sqltype(ANSWER_SQL_TYPE),
        type="arrow",
        null_handling="special",
    )
    con.create_function(
        "_sutro_batch",
        BatchMaterializer(session),
        [
            "VARCHAR",
            "VARCHAR",
            "VARCHAR",
            "BIGINT",
            "BOOLEAN",
            "VARCHAR",
            "VARCHAR",
            "BOOLEAN",
            "DOUBLE",
            "VARCHAR",
            *CASCADE_TYPES,
        ],
        "VARCHAR",
        null_handling="special",
    )
    con.create_function(
        "_sutro_cascade_plan",
        CascadePlanTable(session),
        ["VARCHAR", "VARCHAR", "DOUBLE", "VARCHAR", "BOOLEAN"],
        "VARCHAR",
        null_handling="special",
    )
    con.create_function("_sutro_jobs", JobsTable(session), ["UBIGINT"], "VARCHAR", null_handling="special")
    con.create_function("_sutro_lift", partial(lift_query, session), ["VARCHAR"], "VARCHAR", side_effects=True)
    install_macros(con)
    return session


def install_macros(con: duckdb.DuckDBPyConnection) -> None:
    """Create the TEMP macros users call (`register` does this). TEMP macros belong to one
    connection or cursor while the UDFs behind them belong to the database, so a cursor of a
    registered connection (dbt runs every model on one) needs only this call."""
    con.execute(
        "CREATE OR REPLACE TEMP MACRO sutro_run(fn, input, on_error := 'raise', cache := true, "
        f"abstain_below := NULL, {CASCADE_PARAMETERS}) AS _sutro_run(to_json(input), hash(input), "
        "to_json({'function': fn::VARCHAR, 'on_error': on_error::VARCHAR, 'cache': cache::BOOLEAN, "
        "'abstain_below': abstain_below::DOUBLE, 'statement': txid_current(), "
        "'escalate_to': escalate_to::VARCHAR, 'escalate_below': escalate_below::DOUBLE, "
        "'target_accuracy': target_accuracy::DOUBLE, 'calibrate_on': calibrate_on::VARCHAR})::VARCHAR)"
    )
    con.execute(
        "CREATE OR REPLACE TEMP MACRO sutro_batch(fn, query, id_column := NULL, job_priority := 0, "
        "dry_run := false, job_name := NULL, description := NULL, cache := true, abstain_below := NULL, "
        f"stage := NULL, {CASCADE_PARAMETERS}) AS TABLE SELECT * FROM read_parquet(_sutro_batch(fn, query, id_column, job_priority, "
        f"dry_run, job_name, description, cache, abstain_below, stage, {CASCADE_ARGUMENTS}))"
    )
    con.execute(
        "CREATE OR REPLACE TEMP MACRO sutro_cascade_plan(fn, escalate_to, target_accuracy, calibrate_on := NULL, "
        "check_strong := false) AS TABLE SELECT * FROM read_parquet(_sutro_cascade_plan(fn, escalate_to, "
        "target_accuracy, calibrate_on, check_strong))"
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
