"""dbt-duckdb plugin: Sutro Functions on every connection dbt opens, plus a Python-model helper.

In ``profiles.yml``::

    plugins:
      - module: sutro_sql.dbt
        config:
          home: sutro            # embedded deployment folder (default: SUTRO_SQL_HOME, else ./.sutro)
          functions_dir: specs   # Function specs outside <home>/functions (embedded deployment only)
          api_url: ...           # a Sutro deployment (default: SUTRO_API_URL)
          api_key: ...           # its key: leave it to SUTRO_API_KEY in the environment, or use
                                 # env_var('DBT_ENV_SECRET_...'), since `dbt debug` prints this block
          max_concurrency: 8     # concurrent Function calls per query
          cache: true            # reuse answers already computed for the same input
          cache_mode: replay     # answers from the cache only (CI without a deployment); default
                                 # SUTRO_SQL_CACHE, else record
          progress: false        # progress bars on stderr
          auto_batch: true       # lift sutro_run models over auto_batch_threshold distinct inputs to one
                                 # batch job (needs the package's dispatch, see macros/lift.sql); default
                                 # SUTRO_SQL_AUTO_BATCH, else true
          auto_batch_threshold: 1000

Every key is optional. The plugin registers ``sutro_run``, ``sutro_batch`` and
``sutro_jobs`` (``sutro_sql.sql_layer.register``) on dbt's connection, and their
TEMP macros on each cursor dbt takes from it (DuckDB keeps TEMP macros per
cursor). One session and one backend serve every thread, so they share the
concurrency limit, the workers and the answer cache.

The API key is held only by the backend: it is never logged, never put into
SQL (models call Functions by name) and never written to ``target/``.
"""

from __future__ import annotations

import atexit
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import duckdb
from dbt.adapters.duckdb.plugins import BasePlugin

from . import environment
from .client import CACHE_MODES
from .errors import ConfigurationError

if TYPE_CHECKING:
    from .client import Client

__all__ = ["Plugin", "PluginSettings", "batch"]

_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off", ""}


@dataclass(frozen=True)
class PluginSettings:
    """The plugin's ``config:`` block, checked. Values rendered by ``env_var()`` arrive as
    strings, so numbers and booleans are accepted as text too; empty text means unset."""

    home: str | None = None
    functions_dir: str | None = None
    api_url: str | None = None
    api_key: str | None = field(default=None, repr=False)
    max_concurrency: int = 8
    cache: bool = True
    cache_mode: str | None = None
    progress: bool = False
    auto_batch: bool | None = None  # None: SUTRO_SQL_AUTO_BATCH, else on
    auto_batch_threshold: int | None = None  # None: the SQL session's default

    @classmethod
    def from_config(cls, config: Mapping[str, Any], *, ignore: Iterable[str] = ()) -> PluginSettings:
        """`ignore`: keys dbt-duckdb merges in from the profile's ``settings:`` (DuckDB options)."""
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(config) - known - set(ignore))
        if unknown:
            raise ConfigurationError(
                f"sutro_sql.dbt plugin: unknown config key(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
            )
        values: dict[str, Any] = {}
        for name in ("home", "functions_dir", "api_url", "api_key", "cache_mode"):
            text = config.get(name)
            if text is not None and not isinstance(text, str):
                raise ConfigurationError(f"sutro_sql.dbt plugin: {name} must be text")
            values[name] = text.strip() or None if text else None
        if config.get("max_concurrency") is not None:
            values["max_concurrency"] = _positive_int("max_concurrency", config["max_concurrency"])
        if config.get("auto_batch_threshold") is not None:
            values["auto_batch_threshold"] = _positive_int("auto_batch_threshold", config["auto_batch_threshold"])
        for name in ("cache", "progress", "auto_batch"):
            if config.get(name) is not None:
                values[name] = _flag(name, config[name])
        mode = values.get("cache_mode")
        if mode is not None and mode.lower() not in CACHE_MODES:
            raise ConfigurationError(
                f"sutro_sql.dbt plugin: cache_mode must be one of {', '.join(CACHE_MODES)}, got {mode!r}"
            )
        return cls(**values)


def _positive_int(name: str, value: Any) -> int:
    try:
        number = int(str(value).strip()) if not isinstance(value, bool) else 0
    except ValueError:
        number = 0
    if number < 1:
        raise ConfigurationError(f"sutro_sql.dbt plugin: {name} must be a whole number of at least 1, got {value!r}")
    return number


def _flag(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE | _FALSE:
        return text in _TRUE
    raise ConfigurationError(f"sutro_sql.dbt plugin: {name} must be true or false, got {value!r}")


def build_client(settings: PluginSettings) -> Client:
    """The Client the settings ask for, over `open_backend`: a remote deployment when a URL or
    key is configured (here or in SUTRO_API_URL/SUTRO_API_KEY), else the embedded deployment in
    `home`, reading Function specs from `functions_dir` when set (remote Functions live in their
    deployment); `max_concurrency` reaches the backend too."""
    from .backends import open_backend
    from .client import Client

    backend = open_backend(
        settings.home,
        settings.api_url,
        settings.api_key,
        functions_dir=settings.functions_dir,
        max_concurrency=settings.max_concurrency,
    )
    return Client(
        backend=backend,
        max_concurrency=settings.max_concurrency,
        cache=settings.cache,
        cache_mode=settings.cache_mode,
        progress=settings.progress,
    )


class Plugin(BasePlugin):
    """Registers sutro_sql on dbt-duckdb's connection and cursors (see the module docstring)."""

    def initialize(self, plugin_config: dict[str, Any]) -> None:
        duckdb_settings = (self.creds.settings or {}) if self.creds is not None else {}
        self.settings = PluginSettings.from_config(plugin_config, ignore=duckdb_settings)
        self._client: Client | None = None
        self._lock = threading.Lock()

    @property
    def client(self) -> Client:
        """Built on first use and shared by every connection (one cache, one concurrency limit,
        one set of counters); closed with its backend when dbt exits."""
        with self._lock:
            if self._client is None:
                self._client = client = build_client(self.settings)
                atexit.register(client.backend.close)
                atexit.register(client.close)  # runs first: atexit is last in, first out
            return self._client

    def configure_connection(self, conn: duckdb.DuckDBPyConnection) -> None:
        from .sql_layer import register

        settings = self.settings
        auto_batch = settings.auto_batch
        if auto_batch is None:
            auto_batch = _flag(environment.AUTO_BATCH, environment.get(environment.AUTO_BATCH) or "true")
        threshold = (
            {} if settings.auto_batch_threshold is None else {"auto_batch_threshold": settings.auto_batch_threshold}
        )
        register(
            conn,
            client=self.client,
            cache=settings.cache,
            progress=settings.progress,
            auto_batch=auto_batch,
            **threshold,
        )

    def configure_cursor(self, cursor: duckdb.DuckDBPyConnection) -> None:
        """dbt runs every model on a cursor of the registered connection: the UDFs (and the
        session behind them) are shared database-wide, but TEMP macros must be made per cursor."""
        from .sql_layer.session import install_macros

        install_macros(cursor)


def batch(
    session: duckdb.DuckDBPyConnection,
    function: str,
    relation: duckdb.DuckDBPyRelation | str,
    id_column: str | None = None,
    columns: Sequence[str] | None = None,
    **options: Any,
) -> duckdb.DuckDBPyRelation:
    """Answer every row of `relation` with one batch job of Function `function`, in a dbt Python model.

    `session` is the model's DuckDB session; `relation` is a relation (``dbt.ref("stg_tickets")``)
    or a SELECT text over committed tables. `columns` picks the Function's inputs (default: all
    columns); `id_column` is carried into the answers so they join back exactly (without it they
    carry ``row_id``, the row's ordinal). Other keyword options (``job_priority``, ``job_name``,
    ``description``, ``dry_run``) pass to ``sutro_batch``. Returns a DuckDB relation, which dbt
    materializes::

        from sutro_sql.dbt import batch

        def model(dbt, session):
            tickets = dbt.ref("stg_tickets")
            answers = batch(session, "ticket-priority", tickets, id_column="ticket_id",
                            columns=["subject", "body"])
            return tickets.join(answers, "ticket_id")
    """
    if isinstance(relation, duckdb.DuckDBPyRelation):
        query = relation.sql_query()
    elif isinstance(relation, str):
        query = relation
    else:
        raise TypeError(
            f"sutro_sql.dbt.batch: relation must be a DuckDB relation (dbt.ref(...)) or a SELECT text, "
            f"not {type(relation).__name__}"
        )
    if columns is not None:
        if isinstance(columns, str):
            raise TypeError("sutro_sql.dbt.batch: columns must be a list of column names, not a string")
        names = list(columns)
        if id_column is not None and id_column not in names:
            names.insert(0, id_column)
        query = f"SELECT {', '.join(map(quote_identifier, names))} FROM ({query}) AS sutro_input"
    if id_column is not None:
        options = {"id_column": id_column, **options}
    named = "".join(f", {_option_name(name)} := {quote_literal(value)}" for name, value in options.items())
    return session.sql(f"SELECT * FROM sutro_batch({quote_literal(function)}, {quote_literal(query)}{named})")


def quote_literal(value: Any) -> str:
    """A SQL literal for a plain value; text is single-quoted with quotes doubled."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return "'" + str(value).replace("'", "''") + "'"


def quote_identifier(name: str) -> str:
    """A double-quoted identifier with double quotes doubled."""
    return '"' + name.replace('"', '""') + '"'


def _option_name(name: str) -> str:
    if not name.isidentifier() or not name.isascii():
        raise ValueError(f"sutro_sql.dbt.batch: option name {name!r} is not a plain identifier")
    return name
