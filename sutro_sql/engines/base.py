"""The engine interface: how the local deployment asks for answers.

An engine answers a batch of already-converted input rows for one Function.
It returns one `EngineAnswer` or one `RowFailure` per row, in row order, and
never raises for a single bad row (raise only when the whole batch cannot be
answered, e.g. the model server is down). The local deployment owns
everything else: validation, jobs, persistence, usage, cost.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from ..functions import FunctionSpec


@dataclass(frozen=True)
class EngineAnswer:
    """One answer. Classification: `output` is the label and `predictions`
    holds (label, probability) for every label, summing to 1, sorted high to
    low, with `confidence` the top probability. Extraction: `output` is an
    object valid against the Function's schema and `predictions` is empty."""

    output: Any
    confidence: float
    rationale: str
    predictions: list[tuple[str, float]] = field(default_factory=list)
    input_tokens: int = 0
    output_tokens: int = 0


@dataclass(frozen=True)
class RowFailure:
    """A row the engine could not answer; `message` is shown to the user."""

    message: str


@runtime_checkable
class Engine(Protocol):
    """Answers rows for Functions. Must be safe to call from several threads."""

    name: str

    def answer(self, spec: FunctionSpec, rows: list[dict[str, str]]) -> list[EngineAnswer | RowFailure]:
        """Answer `rows` (input name -> text, as `FunctionSpec.convert_input` made them)."""
        ...
