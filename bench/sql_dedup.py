"""Dedup and cache, counted: 100k rows with 1k distinct inputs -> 1k backend calls cold, 0 warm.

Uses the trivial in-process Function of bench/_backends.py (it counts every call it
gets), and a fresh cache folder; the warm run uses a new connection and a new
backend object on the same folder, so only the persistent cache can answer it.

    .venv/bin/python bench/sql_dedup.py [--rows 100000] [--distinct 1000]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import duckdb

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _backends import InstantBackend  # noqa: E402

import sutro_sql.sql_layer as sutro_sql_layer  # noqa: E402


def run_once(home: str, rows: int, distinct: int) -> tuple[int, float, dict]:
    backend = InstantBackend(home)
    con = duckdb.connect()
    session = sutro_sql_layer.register(con, backend)
    con.execute(f"CREATE TABLE t AS SELECT 'input ' || (i * 7919 % {distinct}) AS text FROM range({rows}) r(i)")
    start = time.perf_counter()
    answered = con.sql("SELECT count(sutro_run('echo-label', {'text': text}).response) FROM t").fetchall()[0][0]
    seconds = time.perf_counter() - start
    assert answered == rows
    stats = session.stats.as_dict()
    con.close()
    return backend.calls, seconds, stats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--distinct", type=int, default=1_000)
    args = parser.parse_args()

    home = tempfile.mkdtemp(prefix="sutro-bench-")
    cold_calls, cold_seconds, cold_stats = run_once(home, args.rows, args.distinct)
    warm_calls, warm_seconds, warm_stats = run_once(home, args.rows, args.distinct)

    print(f"backend: trivial in-process Function (bench/_backends.py); {args.rows:,} rows, {args.distinct:,} distinct")
    print(f"{'run':<8}{'backend calls':>15}{'cache hits':>12}{'seconds':>10}")
    print(f"{'cold':<8}{cold_calls:>15,}{cold_stats['cache_hits']:>12,}{cold_seconds:>10.2f}")
    print(f"{'warm':<8}{warm_calls:>15,}{warm_stats['cache_hits']:>12,}{warm_seconds:>10.2f}")
    print(
        json.dumps(
            {
                "bench": "sql_dedup",
                "rows": args.rows,
                "distinct": args.distinct,
                "cold_calls": cold_calls,
                "warm_calls": warm_calls,
                "target_met": cold_calls == args.distinct and warm_calls == 0,
            }
        )
    )


if __name__ == "__main__":
    main()
