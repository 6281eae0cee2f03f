"""A deterministic engine whose answers and confidences the input text states, for cascade tests.

An input reads like ``"gold=billing say=bug conf=0.62"``: a first-stage Function answers `say`
(else `gold`) with confidence `conf`; a Function whose name ends in ``-strong`` answers `gold`
with confidence 0.97. Text holding ``FAIL_STRONG`` fails on the strong Function, ``FAIL_ROW``
on every Function. It plugs in through the real engine interface, so everything above it is
production code; `SUTRO_SQL_ENGINE=tests.support.graded_engine:GradedEngine` serves it from
`sutro-sql serve`. Every answered row is appended to SUTRO_TEST_ENGINE_LOG when set (one line,
``<function>\t<text>``), so tests count calls per stage across processes.
"""

from __future__ import annotations

import os
import threading

from sutro_sql.engines.base import EngineAnswer, RowFailure
from sutro_sql.functions import FunctionSpec

#: Confidence of every answer of a strong Function.
STRONG_CONFIDENCE = 0.97


class GradedEngine:
    name = "graded"

    def __init__(self) -> None:
        self.log_path = os.environ.get("SUTRO_TEST_ENGINE_LOG")
        self.answered: list[tuple[str, str]] = []  # (Function, text) per row answered by this instance
        self._lock = threading.Lock()

    def answer(self, spec: FunctionSpec, rows: list[dict[str, str]]) -> list[EngineAnswer | RowFailure]:
        strong = spec.name.endswith("-strong")
        results: list[EngineAnswer | RowFailure] = []
        for row in rows:
            text = " ".join(row[name] for name in spec.input_names)
            with self._lock:
                self.answered.append((spec.name, text))
                if self.log_path:
                    with open(self.log_path, "a", encoding="utf-8") as log:
                        log.write(f"{spec.name}\t{text}\n")
            fields = dict(part.split("=", 1) for part in text.split() if "=" in part)
            if "FAIL_ROW" in text or (strong and "FAIL_STRONG" in text):
                results.append(RowFailure(f"engine refused the row: {text[:40]!r}"))
                continue
            label = fields.get("gold", "other") if strong else fields.get("say", fields.get("gold", "other"))
            confidence = STRONG_CONFIDENCE if strong else float(fields.get("conf", "0.5"))
            others = [other for other in spec.labels or {} if other != label]
            rest = (1 - confidence) / len(others) if others else 0.0
            predictions = sorted([(label, confidence), *((o, rest) for o in others)], key=lambda p: -p[1])
            results.append(EngineAnswer(label, confidence, "stated by the input", predictions, len(text.split()), 1))
        return results
