"""Peak memory of submitting a big batch to a remote deployment: the request body is streamed,
never held whole.

A child process submits rows made lazily (a generator: the input itself takes no memory)
through `RemoteBackend.submit_batch` to a loopback server that accepts any body (the fault
server, in this parent process); the child's peak RSS is read from `getrusage`. A small and a
big batch side by side, rounds interleaved: if the body were built in memory, the big one
would cost its body size more.

Prints a table and one JSON line. Usage: python bench/remote_body_memory.py [--rounds N]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.fault_server import FaultServer, Reply  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SIZES = {"small": 5_000, "big": 400_000}
CHILD = r"""
import resource, sys
from sutro_sql.backends.remote import RemoteBackend
url, rows, home = sys.argv[1], int(sys.argv[2]), sys.argv[3]
batch = ({"subject": f"ticket {i}", "body": "a bug report " + "x" * 160} for i in range(rows))
with RemoteBackend(url, "sk_memory_" + "k" * 12, home=home) as backend:
    assert backend.submit_batch("ticket-triage", batch) == "job-1"
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
"""


def peak_rss(url: str, rows: int, home: str) -> int:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, url, str(rows), home],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    return int(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    peaks: dict[str, list[int]] = {name: [] for name in SIZES}
    bodies: dict[str, int] = {}
    with tempfile.TemporaryDirectory() as home, FaultServer(default=Reply(200, {"results": "job-1"})) as server:
        for _ in range(args.rounds):
            for name, rows in SIZES.items():
                peaks[name].append(peak_rss(server.url, rows, home))
                bodies[name] = len(server.seen[-1].body)
    mb = 1 << 20
    peak = {name: statistics.median(values) / mb for name, values in peaks.items()}
    print(f"{'batch':<8}{'rows':>10}{'body MB':>10}{'peak RSS MB':>14}")
    for name, rows in SIZES.items():
        print(f"{name:<8}{rows:>10}{bodies[name] / mb:>10.1f}{peak[name]:>14.1f}")
    growth = peak["big"] - peak["small"]
    body_growth = (bodies["big"] - bodies["small"]) / mb
    print(
        json.dumps(
            {
                "bench": "remote_body_memory",
                "rounds": args.rounds,
                **{f"{name}_rows": rows for name, rows in SIZES.items()},
                **{f"{name}_body_mb": round(bodies[name] / mb, 1) for name in SIZES},
                **{f"{name}_peak_rss_mb": round(peak[name], 1) for name in SIZES},
                "rss_growth_mb": round(growth, 1),
                "rss_growth_vs_body_growth": round(growth / body_growth, 3),
                "targets_met": {"rss_growth<0.25*body_growth": growth < 0.25 * body_growth},
            }
        )
    )


if __name__ == "__main__":
    main()
