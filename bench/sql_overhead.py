"""Overhead of `sutro_run`, warm and cold, side by side with the Arrow UDFs it is measured against.

Warm path: 10k / 100k / 1M rows over `--distinct` inputs of realistic length (~150 chars as
`to_json` writes them), every answer already cached. Baselines on the same input STRUCT, in the
same process, interleaved A B C A B C, medians of `--rounds` rounds:

- identity UDF: an Arrow UDF returning the input text column as is;
- interface floor: an Arrow UDF returning a constant answer STRUCT of `sutro_run`'s type from
  the same `to_json(input)`: what any UDF with this signature and return type costs.

Cold path: `--cold-rows` distinct inputs, a fresh answer cache each round, an instant backend
(bench/_backends.py: answers in-process at once, so only sutro-sql's own work is measured),
answering one input per call (as a remote deployment) or many (as the embedded one).

Targets: warm `sutro_run` >= 80% of the interface floor's rows/s; cold >= 50k rows/s.

    .venv/bin/python bench/sql_overhead.py [--rows 10000 100000 1000000] [--distinct 1000]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _backends import ECHO_SPEC, InstantBackend, InstantBatchBackend  # noqa: E402

import sutro_sql.sql_layer as sutro_sql_layer  # noqa: E402
from sutro_sql.answers import ANSWER_SQL_TYPE, ANSWER_TYPE, answer_row  # noqa: E402

WARM_TARGET = 0.8  # of the interface floor
COLD_TARGET = 50_000  # rows/s

QUERIES = {
    "identity UDF": "SELECT count(identity_udf(text)) FROM {table}",
    "interface floor": "SELECT count(floor_udf(to_json({'text': text})).response) FROM {table}",
    "sutro_run (warm)": "SELECT count(sutro_run('echo-label', {'text': text}).response) FROM {table}",
}


def input_table(con: duckdb.DuckDBPyConnection, name: str, rows: int, distinct: int) -> None:
    """`rows` rows over `distinct` texts of ~140 characters (a short review with a number)."""
    con.execute(
        f"CREATE OR REPLACE TABLE {name} AS SELECT 'Customer review ' || (i % {distinct}) || ': the delivery "
        "was late but support answered quickly; ' || md5((i % " + str(distinct) + ")::VARCHAR) || "
        f"' would order again.' AS text FROM range({rows}) r(i)"
    )


def register_baselines(con: duckdb.DuckDBPyConnection, backend: InstantBackend) -> None:
    con.create_function("identity_udf", lambda s: s, ["VARCHAR"], "VARCHAR", type="arrow")
    answer = pa.array([answer_row(backend.run_function(ECHO_SPEC.name, {"text": "x"}))] * 4096, ANSWER_TYPE)
    con.create_function(
        "floor_udf", lambda s: answer.slice(0, len(s)), ["VARCHAR"], duckdb.sqltype(ANSWER_SQL_TYPE), type="arrow"
    )


def median_seconds(con: duckdb.DuckDBPyConnection, queries: dict[str, str], rounds: int) -> dict[str, float]:
    """Median wall time per query, the queries interleaved within each round so a busy machine
    slows all of them alike (each query aggregates, so fetching is negligible)."""
    times: dict[str, list[float]] = {name: [] for name in queries}
    for _ in range(rounds):
        for name, query in queries.items():
            start = time.perf_counter()
            con.sql(query).fetchall()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def warm(rows_list: list[int], distinct: int, rounds: int) -> dict[int, dict[str, float]]:
    """Rows/s per query and table size, on a warm cache."""
    backend = InstantBackend(tempfile.mkdtemp(prefix="sutro-bench-"))
    con = duckdb.connect()
    session = sutro_sql_layer.register(con, backend)
    register_baselines(con, backend)
    rates: dict[int, dict[str, float]] = {}
    for rows in rows_list:
        table = f"t_{rows}"
        input_table(con, table, rows, distinct)
        queries = {name: query.replace("{table}", table) for name, query in QUERIES.items()}
        con.sql(queries["sutro_run (warm)"]).fetchall()  # fill the cache
        session.reset_stats()
        seconds = median_seconds(con, queries, rounds)
        if session.stats.calls:
            raise SystemExit(f"the warm runs made {session.stats.calls} backend calls")
        rates[rows] = {name: rows / s for name, s in seconds.items()}
    return rates


def cold(rows: int, rounds: int, backend_class: type[InstantBackend]) -> float:
    """Median rows/s of `sutro_run` over `rows` distinct inputs, each round on an empty cache."""
    times = []
    for _ in range(rounds):
        backend = backend_class(tempfile.mkdtemp(prefix="sutro-bench-cold-"))
        con = duckdb.connect()
        session = sutro_sql_layer.register(con, backend)
        input_table(con, "t", rows, rows)
        start = time.perf_counter()
        con.sql(QUERIES["sutro_run (warm)"].replace("{table}", "t")).fetchall()
        times.append(time.perf_counter() - start)
        if session.stats.calls != rows:
            raise SystemExit(f"the cold run made {session.stats.calls} calls for {rows} distinct inputs")
        con.close()
    return rows / statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--distinct", type=int, default=1000)
    parser.add_argument("--cold-rows", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    rates = warm(args.rows, args.distinct, args.rounds)
    cold_rates = {
        "one input per call": cold(args.cold_rows, max(1, args.rounds // 2), InstantBackend),
        "many inputs per call": cold(args.cold_rows, max(1, args.rounds // 2), InstantBatchBackend),
    }

    print(f"backend: instant in-process Function (bench/_backends.py); {args.distinct:,} distinct inputs")
    print(f"{'rows':>10}  {'query':<20}{'rows/s':>14}{'/ identity':>12}{'/ floor':>10}")
    ratios = {}
    for rows, by_query in rates.items():
        for name, rate in by_query.items():
            identity, floor = rate / by_query["identity UDF"], rate / by_query["interface floor"]
            print(f"{rows:>10,}  {name:<20}{rate:>14,.0f}{identity:>12.2f}{floor:>10.2f}")
        ratios[rows] = {
            "to_identity": round(by_query["sutro_run (warm)"] / by_query["identity UDF"], 3),
            "to_floor": round(by_query["sutro_run (warm)"] / by_query["interface floor"], 3),
        }
    for name, rate in cold_rates.items():
        print(f"cold sutro_run, {args.cold_rows:,} distinct inputs, empty cache, {name}: {rate:,.0f} rows/s")
    largest = ratios[max(ratios)]
    print(
        json.dumps(
            {
                "bench": "sql_overhead",
                "distinct": args.distinct,
                "warm_rows_per_s": {rows: {k: round(v) for k, v in q.items()} for rows, q in rates.items()},
                "warm_ratios": ratios,
                "cold_rows": args.cold_rows,
                "cold_rows_per_s": {name: round(rate) for name, rate in cold_rates.items()},
                "warm_target_met": largest["to_floor"] >= WARM_TARGET,
                "cold_target_met": min(cold_rates.values()) >= COLD_TARGET,
            }
        )
    )


if __name__ == "__main__":
    main()
