"""sutro-sql: Sutro Functions in SQL (DuckDB, dbt, warehouse jobs).

This module is the whole public surface. Names load lazily so that
``import sutro_sql`` stays fast and optional parts (server, dbt) pull their
dependencies only when used.
"""

from __future__ import annotations

import importlib
from typing import Any

from .errors import (
    AuthenticationError,
    BackendUnavailableError,
    ConfigurationError,
    ConflictError,
    FunctionCallError,
    JobFailedError,
    JobTimeoutError,
    NotFoundError,
    QueryError,
    RateLimitError,
    ServerError,
    SpecError,
    SutroSQLError,
    ValidationError,
)
from .functions import FunctionExample, FunctionInput, FunctionSpec, load_spec_file, load_specs

_LAZY = {
    # the official SDK's Function surface: the Client, and module-level functions on a default one
    "Client": "sutro_sql.client",
    "FunctionRunResult": "sutro_sql.client",
    "run_function": "sutro_sql.default_client",
    "batch_run_function": "sutro_sql.default_client",
    "await_job_completion": "sutro_sql.default_client",
    "get_job_results": "sutro_sql.default_client",
    "get_job_status": "sutro_sql.default_client",
    "cancel_job": "sutro_sql.default_client",
    "list_jobs": "sutro_sql.default_client",
    "get_quotas": "sutro_sql.default_client",
    "attach": "sutro_sql.default_client",
    "results_download_url": "sutro_sql.default_client",
    "download_job_results": "sutro_sql.default_client",
    "wait_for_job": "sutro_sql.default_client",
    "set_api_url": "sutro_sql.default_client",
    "set_base_url": "sutro_sql.default_client",
    "set_api_key": "sutro_sql.default_client",
    "try_authentication": "sutro_sql.default_client",
    "publish_function": "sutro_sql.default_client",
    # backends
    "open_backend": "sutro_sql.backends",
    "LocalBackend": "sutro_sql.backends.local",
    "RemoteBackend": "sutro_sql.backends.remote",
    # SQL
    "register": "sutro_sql.sql_layer",
    "connect": "sutro_sql.sql_layer",
    "sql": "sutro_sql.sql_layer",
    "session_for": "sutro_sql.sql_layer",
}

__all__ = [
    "AuthenticationError",
    "BackendUnavailableError",
    "ConfigurationError",
    "ConflictError",
    "FunctionCallError",
    "FunctionExample",
    "FunctionInput",
    "FunctionSpec",
    "JobFailedError",
    "JobTimeoutError",
    "NotFoundError",
    "QueryError",
    "RateLimitError",
    "ServerError",
    "SpecError",
    "SutroSQLError",
    "ValidationError",
    "load_spec_file",
    "load_specs",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'sutro_sql' has no attribute {name!r}")
