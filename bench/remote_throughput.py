"""Real-time calls per second through RemoteBackend, next to the official SDK, on one server.

Starts `sutro-sql serve` on a free loopback port with the deterministic KeywordEngine
sleeping 50 ms per answer (what a deployment's model costs a call; the engine itself is
trivial), then measures, phases interleaved (A B C ... A B C ...), medians of the rounds:
- RemoteBackend with 8, 64 and 256 calls in flight (`run_function_many`: the path `sutro_run`
  takes), against the ideal `in_flight / latency`;
- `sutro_run` through SQL on `connect(max_concurrency=64)` and 256, 512 distinct rows a query,
  nothing cached (the issue's measurement);
- the official `sutro` SDK (its own virtualenv) in a plain `run_function` loop, as a user
  would call it (it has no concurrency of its own).
Then a second server with no added latency: 8 vs 64 vs 256 in flight and the SDK loop, which
also gives the ceiling of server and client together (the best of those rates): `sutro-sql
serve` is one Python process on the same 2 shared cores as the client, so the 50 ms figures are read against
`min(in_flight / latency, ceiling)` as well.

Prints a table and one JSON line. Usage: python bench/remote_throughput.py [--rounds N]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sutro_sql.backends.remote import RemoteBackend  # noqa: E402
from sutro_sql.sql_layer import connect  # noqa: E402
from tests.support.sdk_venv import SDKUnavailable, sdk_python  # noqa: E402
from tests.support.serve_process import ServedDeployment, make_home  # noqa: E402

FUNCTION = "ticket-triage"
LATENCY = 0.05
IN_FLIGHT = (8, 64, 256)
SQL_IN_FLIGHT = (64, 256)
SDK_LOOP = r"""
import json, sys, time
from sutro import Sutro
so = Sutro()
calls, tag = int(sys.argv[1]), sys.argv[2]
so.run_function("ticket-triage", {"subject": "warm-up", "body": "billing"})
started = time.perf_counter()
for i in range(calls):
    so.run_function("ticket-triage", {"subject": f"ticket {tag} {i}", "body": f"a bug report number {i}"})
print(json.dumps({"calls": calls, "seconds": time.perf_counter() - started}))
"""
_tags = itertools.count()


def rows(calls: int) -> list[dict[str, str]]:
    """`calls` inputs nobody has sent before (no phase or round is answered from a cache)."""
    tag = next(_tags)
    return [{"subject": f"ticket {tag} {i}", "body": f"a bug report number {i}"} for i in range(calls)]


def remote_rate(backend: RemoteBackend, calls: int) -> float:
    batch = rows(calls)
    started = time.perf_counter()
    answers = backend.run_function_many(FUNCTION, batch)
    elapsed = time.perf_counter() - started
    assert [a["output"] for a in answers] == ["bug"] * calls, "unexpected answers"
    return calls / elapsed


def sql_rate(served: ServedDeployment, home: str, in_flight: int, calls: int) -> float:
    os.environ.update(SUTRO_API_URL=served.url, SUTRO_API_KEY=served.api_key, SUTRO_SQL_HOME=home)
    con = connect(max_concurrency=in_flight, progress=False)
    try:
        tag = next(_tags)
        query = (
            f"SELECT sutro_run('{FUNCTION}', {{'subject': 'sql {tag} ' || i, 'body': 'a bug report ' || i}}).response "
            f"FROM range({calls}) t(i)"
        )
        started = time.perf_counter()
        answers = con.sql(query).fetchall()
        elapsed = time.perf_counter() - started
    finally:
        con.close()
    assert answers == [("bug",)] * calls, "unexpected answers"
    return calls / elapsed


def sdk_rate(served: ServedDeployment, calls: int) -> float | None:
    try:
        python = sdk_python()
    except SDKUnavailable as exc:
        print(f"official SDK skipped: {exc}", file=sys.stderr)
        return None
    env = {"SUTRO_API_URL": served.url, "SUTRO_API_KEY": served.api_key, "NO_PROXY": "127.0.0.1,localhost"}
    with tempfile.TemporaryDirectory() as home:
        done = subprocess.run(
            [str(python), "-c", SDK_LOOP, str(calls), str(next(_tags))],
            env={**env, "HOME": home, "PATH": "/usr/bin:/bin"},
            capture_output=True,
            text=True,
            timeout=600,
            check=True,
        )
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return result["calls"] / result["seconds"]


def interleaved(phases: dict[str, Callable[[], float | None]], rounds: int) -> dict[str, float | None]:
    """Each phase once per round, in order (A B C A B C ...): the median rate of each."""
    seen: dict[str, list[float]] = {name: [] for name in phases}
    for _ in range(rounds):
        for name, measure in phases.items():
            rate = measure()
            if rate is not None:
                seen[name].append(rate)
    return {name: statistics.median(rates) if rates else None for name, rates in seen.items()}


def measure(
    folder: Path, delay: float, rounds: int, calls: int, sdk_calls: int, sql_rows: int
) -> dict[str, float | None]:
    """The phases on one server answering after `delay` seconds (`sql_rows` 0: no SQL phases)."""
    env = {"SUTRO_TEST_ENGINE_DELAY": str(delay)}
    with ServedDeployment(make_home(folder / f"home-{delay}"), env=env) as served:
        backends = {n: RemoteBackend(served.url, served.api_key, home=folder, max_concurrency=n) for n in IN_FLIGHT}
        try:
            for n, backend in backends.items():
                remote_rate(backend, n)  # open the connections
            phases: dict[str, Callable[[], float | None]] = {
                f"remote_c{n}": (lambda b=backend, n=n: remote_rate(b, calls if n > 8 else calls // 4))
                for n, backend in backends.items()
            }
            if sql_rows:
                for n in SQL_IN_FLIGHT:
                    phases[f"sql_c{n}"] = lambda n=n: sql_rate(served, str(folder / "sql-home"), n, sql_rows)
            phases["sdk_loop"] = lambda: sdk_rate(served, sdk_calls)
            return interleaved(phases, rounds)
        finally:
            for backend in backends.values():
                backend.close()


def ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 2) if a and b else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    parser.add_argument("--calls", type=int, default=2000, help="calls per RemoteBackend phase (default 2000)")
    parser.add_argument("--sdk-calls", type=int, default=100, help="calls per SDK loop phase (default 100)")
    parser.add_argument("--sql-rows", type=int, default=512, help="distinct rows per sutro_run query (default 512)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        slow = measure(folder, LATENCY, args.rounds, args.calls, args.sdk_calls, args.sql_rows)
        fast = measure(folder, 0.0, args.rounds, args.calls, 3 * args.sdk_calls, 0)
    ceiling = max(fast[f"remote_c{n}"] or 0 for n in IN_FLIGHT)
    print(
        f"server adds {LATENCY * 1000:.0f} ms per call; ceiling (no added latency, best in flight) "
        f"{ceiling:.0f} calls/s"
    )
    print(f"{'client':<30}{'calls/s':>10}{'vs ideal':>10}{'vs ideal|ceiling':>18}{'vs SDK':>9}")
    fractions: dict[str, float | None] = {}
    for name, in_flight in [*((f"remote_c{n}", n) for n in IN_FLIGHT), *((f"sql_c{n}", n) for n in SQL_IN_FLIGHT)]:
        rate, ideal = slow[name], in_flight / LATENCY
        fractions[name] = ratio(rate, ideal)
        fractions[f"{name}_of_reachable"] = ratio(rate, min(ideal, ceiling or ideal))
        print(
            f"{name:<30}{rate:>10.0f}{fractions[name]:>10.2f}{fractions[f'{name}_of_reachable']:>18.2f}"
            f"{(ratio(rate, slow['sdk_loop']) or 0):>8.1f}x"
        )
    print(f"{'sdk_loop':<30}{(slow['sdk_loop'] or 0):>10.1f}")
    print("no added latency:")
    for name, rate in fast.items():
        print(f"{name:<30}{(rate or 0):>10.0f}{'':>28}{(ratio(rate, fast['sdk_loop']) or 0):>8.2f}x")
    c64_vs_sdk = ratio(slow["remote_c64"], slow["sdk_loop"])
    c64_vs_c8_no_latency = ratio(fast["remote_c64"], fast["remote_c8"])
    summary = {
        "bench": "remote_throughput",
        "engine": f"KeywordEngine sleeping {LATENCY * 1000:.0f} ms per call",
        "rounds": args.rounds,
        "calls_per_phase": args.calls,
        "sdk_calls_per_phase": args.sdk_calls,
        **{f"{name}_calls_per_s": round(rate, 1) if rate else None for name, rate in slow.items()},
        **{f"no_latency_{name}_calls_per_s": round(rate, 1) if rate else None for name, rate in fast.items()},
        "no_latency_ceiling_calls_per_s": round(ceiling, 1) if ceiling else None,
        **{f"{name}_fraction_of_ideal": value for name, value in fractions.items() if "reachable" not in name},
        **{
            name.replace("_of_reachable", "_fraction_of_reachable"): v
            for name, v in fractions.items()
            if "reach" in name
        },
        "c64_vs_sdk": c64_vs_sdk,
        "no_latency_c64_vs_c8": c64_vs_c8_no_latency,
        "no_latency_c64_vs_sdk": ratio(fast["remote_c64"], fast["sdk_loop"]),
        "targets_met": {
            "c64_fraction_of_ideal>=0.85": (fractions["remote_c64"] or 0) >= 0.85,
            "c256_fraction_of_ideal>=0.85": (fractions["remote_c256"] or 0) >= 0.85,
            "sql_c64_fraction_of_ideal>=0.85": (fractions["sql_c64"] or 0) >= 0.85,
            "sql_c256_fraction_of_ideal>=0.85": (fractions["sql_c256"] or 0) >= 0.85,
            "c64_vs_sdk>=40": (c64_vs_sdk or 0) >= 40,
            "no_latency_c64_vs_c8>=1": (c64_vs_c8_no_latency or 0) >= 1.0,
        },
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
