"""A small deterministic engine for tests of the job system, SQL layer, server and CLI.

It plugs in through the real engine interface (`sutro_sql.engines.base.Engine`),
so everything above it is production code. Its answers are a pure function of
the input text, so tests can predict them:

- classification: the first label whose name appears in the text (case-insensitive)
  wins with probability 0.8 (rest shared); otherwise a hash of the text picks one.
- extraction: each schema property gets a value of its type derived from the text.
- a row whose text contains "FAIL_ROW" is a per-row failure.

Environment knobs (so subprocesses started by tests use the same engine through
``SUTRO_SQL_ENGINE=tests.support.engines:KeywordEngine``):
- SUTRO_TEST_ENGINE_DELAY: seconds to sleep per row (makes jobs slow enough to kill);
- SUTRO_TEST_ENGINE_LOG: a file to which every answered row's text is appended, one line each,
  so tests can count calls across processes.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from typing import Any

from sutro_sql.engines.base import EngineAnswer, RowFailure
from sutro_sql.functions import FunctionSpec


def _stable_int(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


class KeywordEngine:
    name = "keyword"

    def __init__(self, delay: float | None = None, log_path: str | None = None) -> None:
        self.delay = float(os.environ.get("SUTRO_TEST_ENGINE_DELAY", "0")) if delay is None else delay
        self.log_path = log_path or os.environ.get("SUTRO_TEST_ENGINE_LOG")
        self.calls = 0  # rows answered by this instance
        self._lock = threading.Lock()

    def answer(self, spec: FunctionSpec, rows: list[dict[str, str]]) -> list[EngineAnswer | RowFailure]:
        results: list[EngineAnswer | RowFailure] = []
        for row in rows:
            text = " ".join(row[name] for name in spec.input_names)
            if self.delay:
                time.sleep(self.delay)
            with self._lock:
                self.calls += 1
                if self.log_path:
                    with open(self.log_path, "a", encoding="utf-8") as log:
                        log.write(text.replace("\n", " ") + "\n")
            if "FAIL_ROW" in text:
                results.append(RowFailure(f"engine refused the row: {text[:40]!r}"))
            elif spec.kind == "classification":
                results.append(self._classify(spec, text))
            else:
                results.append(self._extract(spec, text))
        return results

    def _classify(self, spec: FunctionSpec, text: str) -> EngineAnswer:
        labels = list(spec.labels or {})
        lowered = text.lower()
        hits = [label for label in labels if label.lower() in lowered]
        chosen = hits[0] if hits else labels[_stable_int(text) % len(labels)]
        if len(labels) == 1:
            probabilities = {chosen: 1.0}
        else:
            rest = 0.2 / (len(labels) - 1)
            probabilities = {label: (0.8 if label == chosen else rest) for label in labels}
        predictions = sorted(probabilities.items(), key=lambda item: (-item[1], item[0]))
        return EngineAnswer(
            output=chosen,
            confidence=predictions[0][1],
            predictions=predictions,
            rationale=f"keyword match on {chosen!r}" if hits else "no label named in the text",
            input_tokens=len(text.split()),
            output_tokens=1,
        )

    def _extract(self, spec: FunctionSpec, text: str) -> EngineAnswer:
        words = text.split()
        output = {name: _value_for(prop, words, text) for name, prop in (spec.output or {})["properties"].items()}
        return EngineAnswer(
            output=output,
            confidence=0.5,
            rationale="derived from the text by the keyword test engine",
            input_tokens=len(words),
            output_tokens=len(output),
        )


def _value_for(prop: dict[str, Any], words: list[str], text: str) -> Any:
    if "enum" in prop:
        options = prop["enum"]
        return options[_stable_int(text) % len(options)]
    kind = prop.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "string")
    if kind == "integer":
        return len(words)
    if kind == "number":
        return float(len(text))
    if kind == "boolean":
        return len(words) % 2 == 0
    if kind == "array":
        return words[:3] if prop.get("items", {}).get("type", "string") == "string" else []
    if kind == "object":
        return {}
    return words[0] if words else ""
