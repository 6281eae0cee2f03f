"""Throughput of `sutro_run` against a backend with a fixed added latency per call.

The backend (bench/_backends.py, in-process) sleeps `--latency` seconds per call, like a
remote deployment would. `sutro_run` runs the calls of a DuckDB vector concurrently
(up to `max_concurrency`); a naive per-row Python UDF calls the backend one row at a
time. Target: `sutro_run` at least 80% of max_concurrency / latency rows/s.

    .venv/bin/python bench/sql_latency.py [--latency 0.05] [--concurrency 8] [--rows 400]
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rows", type=int, default=400, help="distinct rows for sutro_run")
    parser.add_argument("--naive-rows", type=int, default=40, help="rows for the one-call-at-a-time UDF")
    args = parser.parse_args()

    backend = InstantBackend(tempfile.mkdtemp(prefix="sutro-bench-"), latency=args.latency)
    con = duckdb.connect()
    session = sutro_sql_layer.register(con, backend, max_concurrency=args.concurrency)
    con.execute(f"CREATE TABLE t AS SELECT 'distinct text ' || i AS text FROM range({args.rows}) r(i)")

    # Warm up what every session does once (thread pool, spec lookup, cache file), outside the timing.
    con.sql("SELECT sutro_run('echo-label', {'text': 'warm-up'})").fetchall()
    session.reset_stats()
    start = time.perf_counter()
    answered = con.sql("SELECT count(sutro_run('echo-label', {'text': text}).response) FROM t").fetchall()[0][0]
    sutro_seconds = time.perf_counter() - start
    assert answered == args.rows and session.stats.calls == args.rows

    def naive(text: str) -> str:
        return backend.run_function("echo-label", {"text": text})["response"]

    con.create_function("naive_udf", naive, ["VARCHAR"], "VARCHAR", side_effects=True)
    start = time.perf_counter()
    con.sql(f"SELECT count(naive_udf(text)) FROM (SELECT text FROM t LIMIT {args.naive_rows})").fetchall()
    naive_seconds = time.perf_counter() - start

    sutro_rate = args.rows / sutro_seconds
    naive_rate = args.naive_rows / naive_seconds
    ceiling = args.concurrency / args.latency
    print(f"backend: in-process Function with {args.latency * 1000:.0f} ms added latency per call (bench/_backends.py)")
    print(f"{'UDF':<34}{'rows':>8}{'seconds':>10}{'rows/s':>10}")
    print(
        f"{'sutro_run (max_concurrency=' + str(args.concurrency) + ')':<34}{args.rows:>8}{sutro_seconds:>10.2f}{sutro_rate:>10.1f}"
    )
    print(f"{'naive per-row Python UDF':<34}{args.naive_rows:>8}{naive_seconds:>10.2f}{naive_rate:>10.1f}")
    print(
        f"ceiling max_concurrency/latency: {ceiling:.1f} rows/s; sutro_run reaches {sutro_rate / ceiling:.1%} (target >= 80%)"
    )
    print(f"sutro_run / naive UDF: {sutro_rate / naive_rate:.1f}x")
    print(
        json.dumps(
            {
                "bench": "sql_latency",
                "latency_s": args.latency,
                "max_concurrency": args.concurrency,
                "sutro_run_rows_per_s": round(sutro_rate, 1),
                "naive_rows_per_s": round(naive_rate, 1),
                "fraction_of_ceiling": round(sutro_rate / ceiling, 3),
                "ratio_to_naive": round(sutro_rate / naive_rate, 1),
                "target_met": sutro_rate >= 0.8 * ceiling,
            }
        )
    )


if __name__ == "__main__":
    main()
