"""The openai engine's throughput against the loopback chat completions server.

No model server runs here, so the model's latency is simulated (the fake server waits
`--latency` seconds per reply). The figures show what the engine itself costs per row
(latency 0) and how rows/s scales with `max_concurrency` when the model is the bottleneck.

    python bench/openai_engine.py                  # 200 rows, latency 0 and 50 ms, concurrency 1/4/16
    python bench/openai_engine.py --rows 500 --latency 0.1

Prints a table, then one JSON line.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from sutro_sql.config import OpenAISettings  # noqa: E402
from sutro_sql.engines.base import EngineAnswer  # noqa: E402
from sutro_sql.engines.openai import OpenAIEngine  # noqa: E402
from sutro_sql.functions import load_spec_file  # noqa: E402
from tests.support.fake_openai import FakeOpenAIServer  # noqa: E402


def measure(base_url: str, spec, rows: list[dict[str, str]], concurrency: int) -> float:
    """Seconds to answer `rows` with a fresh engine (every answer checked); the one-time
    calibration fit on the Function's reviewed examples runs before the clock starts."""
    with OpenAIEngine("bench-model", OpenAISettings(base_url=base_url, max_concurrency=concurrency)) as engine:
        engine.calibration_for(spec)
        started = time.perf_counter()
        answers = engine.answer(spec, rows)
        elapsed = time.perf_counter() - started
    assert all(isinstance(answer, EngineAnswer) for answer in answers)
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200)
    parser.add_argument("--latency", type=float, default=0.05, help="simulated model seconds per reply")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16])
    args = parser.parse_args()
    spec = load_spec_file(REPO / "examples" / "functions" / "ticket-triage.yaml")[0]
    rows = [{"subject": f"ticket {i}", "body": f"billing question number {i}"} for i in range(args.rows)]
    results = []
    with FakeOpenAIServer() as server:
        for latency in sorted({0.0, args.latency}):
            server.reply_delay = latency
            for concurrency in args.concurrency:
                seconds = measure(server.base_url, spec, rows, concurrency)
                results.append(
                    {
                        "latency_s": latency,
                        "concurrency": concurrency,
                        "rows": args.rows,
                        "seconds": round(seconds, 3),
                        "rows_per_s": round(args.rows / seconds, 1),
                        "ms_per_row": round(1000 * seconds / args.rows, 2),
                    }
                )
    print(f"openai engine vs loopback server, {args.rows} ticket-triage rows")
    print(f"{'latency':>8} {'concurrency':>11} {'seconds':>8} {'rows/s':>8} {'ms/row':>7}")
    for r in results:
        print(
            f"{r['latency_s']:>8.3f} {r['concurrency']:>11} {r['seconds']:>8.2f} {r['rows_per_s']:>8.1f} {r['ms_per_row']:>7.2f}"
        )
    print(json.dumps({"bench": "openai_engine", "results": results}))


if __name__ == "__main__":
    main()
