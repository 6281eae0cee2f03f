"""LocalBackend throughput: rows/s for real-time calls and batch jobs, and the share of wall
time spent outside the engine (the local deployment's own overhead).

Every row is a distinct text (fresh for each measurement), so no engine-side
embedding cache can flatter the figures. The engine is wrapped to record when
it is busy; overhead = 1 - (time during which at least one engine call ran) / wall.

    python bench/local_backend.py                      # embedded engine, 1k and 10k rows
    python bench/local_backend.py --rows 200           # smaller
    python bench/local_backend.py --engine keyword     # the deterministic test engine (overhead ceiling)

Prints a table, then one JSON line.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from sutro_sql.backends.local import LocalBackend  # noqa: E402
from sutro_sql.config import HomeConfig  # noqa: E402

WORDS = (
    "invoice refund charged twice login password crash export dashboard error slow billing plan upgrade "
    "account locked two-factor feature integration slack dark mode report totals wrong update payment card "
    "subscription cancel renew api timeout mobile app sync data missing urgent please help thanks"
).split()


class TimedEngine:
    """Wraps an engine and records the intervals during which it was answering."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.name = engine.name
        self._lock = threading.Lock()
        self._active = 0
        self._busy_since = 0.0
        self.busy_seconds = 0.0

    def answer(self, spec, rows):
        with self._lock:
            if self._active == 0:
                self._busy_since = time.perf_counter()
            self._active += 1
        try:
            return self.engine.answer(spec, rows)
        finally:
            with self._lock:
                self._active -= 1
                if self._active == 0:
                    self.busy_seconds += time.perf_counter() - self._busy_since

    def reset(self) -> None:
        with self._lock:
            self.busy_seconds = 0.0


def distinct_rows(count: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    return [
        {
            "id": i,
            "subject": " ".join(rng.choices(WORDS, k=3)) + f" #{seed}-{i}",
            "body": " ".join(rng.choices(WORDS, k=rng.randint(8, 30))) + f" (ticket {seed}-{i})",
        }
        for i in range(count)
    ]


def make_engine(kind: str) -> Any:
    if kind == "keyword":
        from tests.support.engines import KeywordEngine

        return KeywordEngine(delay=0.0)
    from sutro_sql.engines.embedded import EmbeddedEngine

    return EmbeddedEngine()


def measure(backend: LocalBackend, engine: TimedEngine, mode: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
    engine.reset()
    start = time.perf_counter()
    if mode == "realtime":
        for row in rows:
            backend.run_function("ticket-triage", row)
    else:
        job_id = backend.submit_batch("ticket-triage", rows, id_column="id")
        while backend.get_job_status(job_id) not in ("SUCCEEDED", "FAILED", "CANCELLED"):
            time.sleep(0.01)
        results = backend.get_job_results(job_id)
        assert results.num_rows == len(rows) and results.column("error").null_count == len(rows)
    wall = time.perf_counter() - start
    return {
        "mode": mode,
        "rows": len(rows),
        "seconds": round(wall, 3),
        "rows_per_s": round(len(rows) / wall, 1),
        "engine_seconds": round(engine.busy_seconds, 3),
        "overhead_share": round(max(0.0, 1 - engine.busy_seconds / wall), 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="1000,10000", help="comma-separated row counts (default 1000,10000)")
    parser.add_argument("--engine", choices=("embedded", "keyword"), default="embedded")
    parser.add_argument("--workers", type=int, default=None, help="batch worker threads (default: home config)")
    args = parser.parse_args()
    counts = [int(part) for part in args.rows.split(",") if part]

    engine = TimedEngine(make_engine(args.engine))
    home = Path(tempfile.mkdtemp(prefix="sutro-bench-"))
    workers = args.workers or HomeConfig.load(home).workers
    results = []
    try:
        shutil.copytree(REPO / "examples" / "functions", home / "functions")
        with LocalBackend(home, engine=engine, workers=workers) as backend:
            # Warm up: load the model, and let pyarrow do its one-time imports.
            measure(backend, engine, "batch", distinct_rows(10, 0))
            seed = 0
            for count in counts:
                for mode in ("realtime", "batch"):
                    seed += 1
                    results.append(measure(backend, engine, mode, distinct_rows(count, seed)))
                    print(f"  done: {mode} {count} rows", file=sys.stderr)
    finally:
        shutil.rmtree(home, ignore_errors=True)

    print(f"LocalBackend throughput, engine={engine.name}, batch workers={workers}")
    print(f"{'mode':<9} {'rows':>7} {'seconds':>9} {'rows/s':>9} {'engine s':>9} {'overhead':>9}")
    for r in results:
        print(
            f"{r['mode']:<9} {r['rows']:>7} {r['seconds']:>9.2f} {r['rows_per_s']:>9.1f} "
            f"{r['engine_seconds']:>9.2f} {r['overhead_share']:>8.1%}"
        )
    print(json.dumps({"bench": "local_backend", "engine": engine.name, "workers": workers, "results": results}))


if __name__ == "__main__":
    main()
