"""The KeywordEngine with a gate: a chunk holding a row marked HOLD_ROW waits while the gate
file exists. It holds a job in RUNNING for as long as a test needs (cancel it, ask for its
results) without timing guesses, and works across processes (the `sutro-sql serve`
subprocess finds the gate through SUTRO_TEST_GATE)."""

from __future__ import annotations

import os
import time
from pathlib import Path

from sutro_sql.engines.base import EngineAnswer, RowFailure
from sutro_sql.functions import FunctionSpec
from tests.support.engines import KeywordEngine

HOLD = "HOLD_ROW"
#: A test that dies with the gate closed must not leave a worker waiting forever.
GATE_TIMEOUT = 30.0


class GatedEngine(KeywordEngine):
    def __init__(self, gate: str | Path | None = None) -> None:
        super().__init__(delay=0)
        self.gate = Path(gate or os.environ["SUTRO_TEST_GATE"])

    def answer(self, spec: FunctionSpec, rows: list[dict[str, str]]) -> list[EngineAnswer | RowFailure]:
        if any(HOLD in value for row in rows for value in row.values()):
            deadline = time.monotonic() + GATE_TIMEOUT
            while self.gate.exists() and time.monotonic() < deadline:
                time.sleep(0.01)
        return super().answer(spec, rows)
