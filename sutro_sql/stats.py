"""Exact counters of what a Client did and what the SQL rows it served cost."""

from __future__ import annotations

import threading
from dataclasses import dataclass, fields
from typing import Any


@dataclass
class Stats:
    """Counters since the Client was made (or `reset`).

    calls: real-time backend calls made; cache_hits: rows answered by the answer cache
    (memory or disk) instead of a call; rows_answered / rows_failed: SQL rows given an
    answer / an error (scalar and batch), each once, by its final answer; rows_escalated: rows
    a cascade sent to its stronger Function (whose calls, hits and jobs count as any); jobs_submitted / jobs_reattached: batch jobs
    created / found again for the same content; tokens and cost: usage of the calls and
    jobs this client paid for (cache hits cost nothing again; a re-attached job counts what it
    did after this client re-attached to it). A cache hit is a row whose answer was there
    before its statement began: a repeat of an input its own statement computed is dedup,
    counted neither as a call nor as a hit.
    Thread-safe: DuckDB runs UDFs on several threads at once.
    """

    calls: int = 0
    cache_hits: int = 0
    rows_answered: int = 0
    rows_failed: int = 0
    rows_escalated: int = 0
    jobs_submitted: int = 0
    jobs_reattached: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0

    def __post_init__(self) -> None:
        self._lock = threading.Lock()  # not a field: `dataclasses.asdict` gives the counters only

    def count(self, **deltas: float) -> None:
        """Add to the counters atomically."""
        with self._lock:
            for name, delta in deltas.items():
                setattr(self, name, getattr(self, name) + delta)

    def count_usage(self, usage: dict[str, Any] | None) -> None:
        """Add a v1 `usage` object's tokens and cost."""
        usage = usage or {}
        self.count(
            input_tokens=int(usage.get("input_tokens") or 0),
            output_tokens=int(usage.get("output_tokens") or 0),
            cost_usd=float(usage.get("cost_usd") or 0.0),
        )

    def usage(self) -> dict[str, Any]:
        """The usage counters (tokens, cost), to add to another Stats in one `count`."""
        return {"input_tokens": self.input_tokens, "output_tokens": self.output_tokens, "cost_usd": self.cost_usd}

    def as_dict(self) -> dict[str, Any]:
        return {counter.name: getattr(self, counter.name) for counter in fields(self)}
