"""Sutro Functions in DuckDB: `register(con)` / `connect()`, `sql()`, and the session behind them.

SQL surface (after `register`): ``sutro_run(fn, input, on_error := 'raise', cache := true,
abstain_below := NULL)``, ``sutro_batch(fn, query, id_column := NULL, job_priority := 0,
dry_run := false, job_name := NULL, description := NULL, cache := true, abstain_below := NULL)``,
``sutro_jobs()``, and ``sutro_cascade_plan(fn, escalate_to, target_accuracy, calibrate_on := NULL)``;
`sutro_run` and `sutro_batch` also take a cascade (``escalate_to``, ``escalate_below``,
``target_accuracy``, ``calibrate_on``). See the modules: `cascade` (cascades in SQL),
`session` (state), `scalar` (sutro_run), `batch` (sutro_batch), `cache`
(the answers in memory; the disk cache is the Client's), `rewrite` + `query` (sqlglot: validation, subquery form,
auto_batch), `jobs` (sutro_jobs).
"""

from __future__ import annotations

from .query import sql
from .session import SutroSession, connect, register, session_for

__all__ = ["SutroSession", "connect", "register", "session_for", "sql"]
