"""Real-time calls per second through RemoteBackend, next to the official SDK, on one server.

Starts `sutro-sql serve` on a free loopback port with the deterministic KeywordEngine
(a trivial engine: the figures measure HTTP, JSON and server overhead, not a model),
then runs `run_function`:
- through RemoteBackend with 1, 8 and 64 calls in flight (threads over one pooled client);
- through the official `sutro` SDK in its own virtualenv, in a plain loop (it has no
  concurrency of its own), as a user would call it.

Prints a table and one JSON line. Usage: python bench/remote_throughput.py [--calls N]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sutro_sql.backends.remote import RemoteBackend  # noqa: E402
from tests.support.sdk_venv import SDKUnavailable, sdk_python  # noqa: E402
from tests.support.serve_process import ServedDeployment, make_home  # noqa: E402

FUNCTION = "ticket-triage"
SDK_LOOP = r"""
import json, sys, time
from sutro import Sutro
so = Sutro()
calls = int(sys.argv[1])
so.run_function("ticket-triage", {"subject": "warm-up", "body": "billing"})
started = time.perf_counter()
for i in range(calls):
    so.run_function("ticket-triage", {"subject": f"ticket {i}", "body": f"a bug report number {i}"})
print(json.dumps({"calls": calls, "seconds": time.perf_counter() - started}))
"""


def row(i: int) -> dict[str, str]:
    return {"subject": f"ticket {i}", "body": f"a bug report number {i}"}


def remote_rate(backend: RemoteBackend, concurrency: int, calls: int) -> float:
    backend.run_function(FUNCTION, row(-1))  # warm the connection pool
    with ThreadPoolExecutor(concurrency) as pool:
        started = time.perf_counter()
        answers = list(pool.map(lambda i: backend.run_function(FUNCTION, row(i))["output"], range(calls)))
        elapsed = time.perf_counter() - started
    assert answers == ["bug"] * calls, "unexpected answers"
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
            [str(python), "-c", SDK_LOOP, str(calls)],
            env={**env, "HOME": home, "PATH": "/usr/bin:/bin"},
            capture_output=True,
            text=True,
            timeout=600,
            check=True,
        )
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return result["calls"] / result["seconds"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=400, help="calls per measurement (default 400)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        with ServedDeployment(make_home(Path(folder) / "home")) as served:
            rates: dict[str, float | None] = {}
            with RemoteBackend(served.url, served.api_key, home=folder, max_concurrency=64) as backend:
                for concurrency in (1, 8, 64):
                    rates[f"remote_c{concurrency}"] = remote_rate(backend, concurrency, args.calls)
            rates["sdk_loop"] = sdk_rate(served, args.calls)
    sdk = rates["sdk_loop"]
    print(f"{'client':<28}{'calls/s':>10}{'vs SDK':>10}")
    for name, label in [
        ("remote_c1", "RemoteBackend, 1 in flight"),
        ("remote_c8", "RemoteBackend, 8 in flight"),
        ("remote_c64", "RemoteBackend, 64 in flight"),
        ("sdk_loop", "official SDK, loop"),
    ]:
        rate = rates[name]
        ratio = f"{rate / sdk:.2f}x" if rate and sdk else "-"
        print(f"{label:<28}{(f'{rate:.1f}' if rate else 'n/a'):>10}{ratio:>10}")
    summary = {
        "bench": "remote_throughput",
        "engine": "KeywordEngine (trivial)",
        "calls": args.calls,
        **{f"{name}_calls_per_s": round(rate, 1) if rate else None for name, rate in rates.items()},
        **{f"ratio_c{c}_vs_sdk": round(rates[f"remote_c{c}"] / sdk, 2) if sdk else None for c in (1, 8, 64)},
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
