"""A trivial in-process Backend for the SQL benchmarks: answers instantly (or after a fixed latency).

It implements only what `sutro_run` uses (identity, home, get_function_spec,
run_function), so the benchmarks measure the SQL layer, not an engine. Every
benchmark that uses it says so in its output.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from sutro_sql.functions import FunctionSpec

ECHO_SPEC = FunctionSpec(
    name="echo-label",
    kind="classification",
    description="Label a text by the parity of its length (benchmark Function).",
    inputs=[{"name": "text"}],
    labels={"even": "", "odd": ""},
)
#: Hashed once: an instant backend must not spend its time hashing its own spec per call.
ECHO_REVISION = ECHO_SPEC.revision


class InstantBackend:
    """Answers `echo-label` in-process; `latency` seconds of sleep per call (0: none)."""

    def __init__(self, home: str, latency: float = 0.0) -> None:
        self._home = home
        self.latency = latency
        self.calls = 0
        self._lock = threading.Lock()

    @property
    def identity(self) -> str:
        return f"bench:{self._home}"

    @property
    def home(self) -> str:
        return self._home

    def get_function_spec(self, name: str) -> FunctionSpec:
        return ECHO_SPEC

    def run_function(
        self, name: str, input: dict[str, Any] | str, *, confidence_scoring: bool = True
    ) -> dict[str, Any]:
        with self._lock:
            self.calls += 1
        if self.latency:
            time.sleep(self.latency)
        text = input["text"] if isinstance(input, dict) else input
        label = "even" if len(text) % 2 == 0 else "odd"
        other = "odd" if label == "even" else "even"
        return {
            "request_id": f"rt_{self.calls}",
            "function": {"name": name, "revision": ECHO_REVISION},
            "output": label,
            "response": label,
            "confidence": 0.9,
            "predictions": [{"label": label, "confidence": 0.9}, {"label": other, "confidence": 0.1}],
            "rationale": "length parity",
            "usage": {"input_tokens": 1, "output_tokens": 1, "cost_usd": 0.0},
        }

    def close(self) -> None:
        pass


class InstantBatchBackend(InstantBackend):
    """`InstantBackend` that also answers many inputs in one call (`RunsFunctionsInBatches`), as
    the embedded deployment does."""

    def run_function_many(
        self, name: str, inputs: list[dict[str, Any] | str], *, confidence_scoring: bool = True
    ) -> list[dict[str, Any]]:
        return [self.run_function(name, input, confidence_scoring=confidence_scoring) for input in inputs]
