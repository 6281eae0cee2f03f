"""`sutro_batch` at warehouse scale: peak memory and the time spent outside the engine.

Each size runs twice, each time in a fresh CHILD process so its peak RSS is its own:
a plain streamed scan of the same rows (the baseline), then a cold `sutro_batch` over
them on the local deployment with an instant engine (answers in no time, through the
real engine interface), every row a distinct input. Reported: peak RSS of each child
and their difference, rows/s of the cold `sutro_batch`, and its time outside the engine
per row (wall time minus the time during which the engine was answering).

    python bench/batch_scale.py                        # 10k, 100k and 1M rows
    python bench/batch_scale.py --rows 10000 100000    # smaller

Prints a table, then one JSON line with the targets met or not.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

#: Targets from issue 13.
TARGET_EXTRA_MB_AT_1M = 300.0
TARGET_US_PER_ROW = 10.0
TARGET_ROWS_PER_SECOND = 50_000.0

FUNCTION = {
    "name": "scale-triage",
    "kind": "classification",
    "description": "Route a ticket.",
    "inputs": [{"name": "body"}],
    "labels": {"billing": "Money.", "other": "Anything else."},
}


def source_sql(rows: int) -> str:
    """`rows` distinct inputs, each a few words long, with an id."""
    return (
        f"SELECT i AS id, 'ticket ' || i || ' about a charge on my card, please help' AS body FROM range({rows}) r(i)"
    )


class InstantEngine:
    """Answers every row at once (the same label); records how long it was busy."""

    name = "instant"

    def __init__(self) -> None:
        from sutro_sql.engines.base import EngineAnswer

        self._answer = EngineAnswer(
            output="billing",
            confidence=0.9,
            rationale="instant",
            predictions=[("billing", 0.9), ("other", 0.1)],
            input_tokens=8,
            output_tokens=1,
        )
        self.busy_seconds = 0.0
        self._lock = threading.Lock()

    def answer(self, spec: Any, rows: list[dict[str, str]]) -> list[Any]:
        start = time.perf_counter()
        answers = [self._answer] * len(rows)
        with self._lock:
            self.busy_seconds += time.perf_counter() - start
        return answers


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child_scan(rows: int) -> dict[str, Any]:
    """The baseline: stream the same rows out of DuckDB as Arrow batches."""
    import duckdb

    con = duckdb.connect()
    con.execute(f"CREATE TABLE t AS {source_sql(rows)}").fetchall()
    start = time.perf_counter()
    seen = 0
    for batch in con.sql("SELECT id, body FROM t").to_arrow_reader(65_536):
        seen += batch.num_rows
    assert seen == rows
    return {"seconds": time.perf_counter() - start, "peak_rss_mb": peak_rss_mb()}


def child_batch(rows: int) -> dict[str, Any]:
    """A cold `sutro_batch` over the rows on a fresh home, with the instant engine."""
    import duckdb

    import sutro_sql.sql_layer as sql_layer
    from sutro_sql.backends.local import LocalBackend
    from sutro_sql.client import Client

    home = tempfile.mkdtemp(prefix="sutro-batch-scale-")
    engine = InstantEngine()
    backend = LocalBackend(home, engine=engine)
    backend.publish(FUNCTION)
    client = Client(backend=backend, progress=False)
    con = duckdb.connect()
    con.execute(f"CREATE TABLE t AS {source_sql(rows)}").fetchall()
    sql_layer.register(con, client=client)
    start = time.perf_counter()
    answered, labelled = con.sql(
        f"SELECT count(*), count(response) FROM sutro_batch('{FUNCTION['name']}', 'SELECT id, body FROM t', "
        "id_column := 'id')"
    ).fetchall()[0]
    seconds = time.perf_counter() - start
    assert answered == labelled == rows, (answered, labelled, rows)
    con.close()
    client.close()
    backend.close()
    return {"seconds": seconds, "engine_seconds": engine.busy_seconds, "peak_rss_mb": peak_rss_mb()}


def in_child(kind: str, rows: int) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, __file__, "--child", kind, "--rows", str(rows)],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--child", choices=["scan", "batch"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        run = child_scan if args.child == "scan" else child_batch
        print(json.dumps(run(args.rows[0])))
        return

    results = []
    print(f"{'rows':>9} {'scan MB':>8} {'batch MB':>9} {'extra MB':>9} {'rows/s':>9} {'outside us/row':>15}")
    for rows in args.rows:
        scan = in_child("scan", rows)
        batch = in_child("batch", rows)
        outside = (batch["seconds"] - batch["engine_seconds"]) / rows * 1e6
        result = {
            "rows": rows,
            "scan_peak_rss_mb": round(scan["peak_rss_mb"], 1),
            "batch_peak_rss_mb": round(batch["peak_rss_mb"], 1),
            "extra_mb": round(batch["peak_rss_mb"] - scan["peak_rss_mb"], 1),
            "rows_per_second": round(rows / batch["seconds"]),
            "outside_engine_us_per_row": round(outside, 2),
            "engine_seconds": round(batch["engine_seconds"], 3),
        }
        results.append(result)
        print(
            f"{rows:>9} {result['scan_peak_rss_mb']:>8} {result['batch_peak_rss_mb']:>9} {result['extra_mb']:>9} "
            f"{result['rows_per_second']:>9} {result['outside_engine_us_per_row']:>15}"
        )
    largest = max(results, key=lambda r: r["rows"])
    targets = {
        "extra_mb_at_largest_within_300": largest["extra_mb"] <= TARGET_EXTRA_MB_AT_1M,
        "outside_engine_at_most_10_us_per_row": all(
            r["outside_engine_us_per_row"] <= TARGET_US_PER_ROW for r in results
        ),
        "cold_at_least_50k_rows_per_second": all(r["rows_per_second"] >= TARGET_ROWS_PER_SECOND for r in results),
    }
    print(json.dumps({"bench": "batch_scale", "results": results, "targets_met": targets}))


if __name__ == "__main__":
    main()
