"""Overhead of `sutro_run` on a warm cache, side by side with a plain scan and a trivial Arrow UDF.

One run, 1M rows (10k distinct inputs), a trivial in-process Function
(bench/_backends.py: no engine, so only the SQL layer is measured). Target:
warm-cache `sutro_run` at least 25% of the trivial Arrow UDF's rows/s.

    .venv/bin/python bench/sql_overhead.py [--rows 1000000] [--distinct 10000]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _backends import InstantBackend  # noqa: E402

import sutro_sql.sql_layer as sutro_sql_layer  # noqa: E402
from sutro_sql.answers import ANSWER_SQL_TYPE, ANSWER_TYPE, answer_row  # noqa: E402


def best_times(con: duckdb.DuckDBPyConnection, queries: dict[str, str], rounds: int) -> dict[str, float]:
    """Best wall time per query over `rounds` rounds, the queries interleaved within each round so a
    busy machine slows all of them alike (each query aggregates, so fetching is negligible)."""
    best = dict.fromkeys(queries, float("inf"))
    for _ in range(rounds):
        for name, query in queries.items():
            start = time.perf_counter()
            con.sql(query).fetchall()
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--distinct", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    home = tempfile.mkdtemp(prefix="sutro-bench-")
    backend = InstantBackend(home)
    con = duckdb.connect()
    session = sutro_sql_layer.register(con, backend)
    con.execute(
        f"CREATE TABLE t AS SELECT 'text number ' || (i % {args.distinct}) AS text FROM range({args.rows}) r(i)"
    )
    con.create_function("trivial_udf", lambda s: pc.utf8_length(s), ["VARCHAR"], "INTEGER", type="arrow")
    # The same no-op, returning a constant answer of sutro_run's STRUCT type: the cost of the type alone.
    answer = pa.array([answer_row(backend.run_function("echo-label", {"text": "x"}))] * 4096, ANSWER_TYPE)
    con.create_function(
        "trivial_struct_udf",
        lambda s: answer.slice(0, len(s)),
        ["VARCHAR"],
        duckdb.sqltype(ANSWER_SQL_TYPE),
        type="arrow",
    )

    queries = {
        "plain scan": "SELECT sum(length(text)) FROM t",
        "trivial Arrow UDF": "SELECT sum(trivial_udf(to_json({'text': text}))) FROM t",
        "trivial UDF, answer STRUCT": "SELECT count(trivial_struct_udf(to_json({'text': text})).response) FROM t",
        "sutro_run (warm cache)": "SELECT count(sutro_run('echo-label', {'text': text}).response) FROM t",
    }
    cold_start = time.perf_counter()
    con.sql(queries["sutro_run (warm cache)"]).fetchall()
    cold = time.perf_counter() - cold_start
    cold_calls = session.stats.calls
    session.reset_stats()
    seconds = best_times(con, queries, args.rounds)
    rates = {name: args.rows / s for name, s in seconds.items()}
    ratio = rates["sutro_run (warm cache)"] / rates["trivial Arrow UDF"]
    struct_ratio = rates["sutro_run (warm cache)"] / rates["trivial UDF, answer STRUCT"]

    print(f"backend: trivial in-process Function (bench/_backends.py); {args.rows:,} rows, {args.distinct:,} distinct")
    print(f"cold fill: {cold:.2f} s, {cold_calls:,} backend calls; warm runs made {session.stats.calls} calls")
    print(f"{'query':<30}{'seconds':>10}{'rows/s':>16}")
    for name in queries:
        print(f"{name:<30}{seconds[name]:>10.3f}{rates[name]:>16,.0f}")
    print(f"sutro_run / trivial UDF: {ratio:.2%} (target >= 25%)")
    print(f"sutro_run / trivial UDF returning the answer STRUCT: {struct_ratio:.2%}")
    print(
        json.dumps(
            {
                "bench": "sql_overhead",
                "rows": args.rows,
                "distinct": args.distinct,
                "rows_per_s": {k: round(v) for k, v in rates.items()},
                "ratio_to_trivial_udf": round(ratio, 4),
                "ratio_to_trivial_struct_udf": round(struct_ratio, 4),
                "warm_calls": session.stats.calls,
                "target_met": ratio >= 0.25,
            }
        )
    )


if __name__ == "__main__":
    main()
