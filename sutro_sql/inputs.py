"""The one input converter: what a Function is sent for a row, and the canonical text its
answers are cached and its batch jobs are keyed under.

Every path goes through here: `Client.run_function` with a dict, `sutro_run` and
`sutro_batch` (both hand over DuckDB's `to_json` of the input STRUCT, so SQL values
convert the same whichever function the user calls), the `auto_batch` lift and
`batch_run_function`. A local Function converts as v1 Batch converts a row (see
`FunctionSpec.convert_input`); a remote Function's input is sent as given, since
only the deployment knows its fields.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

from .errors import FunctionCallError, QueryError, SutroSQLError, ValidationError

if TYPE_CHECKING:
    from .functions import FunctionSpec

#: How much of an input an error message quotes.
PREVIEW_CHARS = 200


def preview(text: str) -> str:
    return text if len(text) <= PREVIEW_CHARS else text[:PREVIEW_CHARS] + "..."


#: The canonical JSON writer (one encoder: `json.dumps` with options builds a new one per call).
_CANONICAL_JSON = json.JSONEncoder(sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)


def canonical_json(payload: Any) -> str:
    """The canonical form of a Function input (what cache keys and batch job keys hash).
    Text that is not valid Unicode (a lone surrogate) is refused here, naming the problem."""
    text = _CANONICAL_JSON.encode(payload)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValidationError(
            f"the input is not valid Unicode text (a lone surrogate {text[exc.start]!r} in {preview(text)!r})"
        ) from None
    return text


def row_failure(function: str, row_text: str, cause: SutroSQLError | str) -> SutroSQLError:
    """The error for a failed row: names the Function, the row (truncated) and the backend's detail.

    A row's own problem is a FunctionCallError; an outage met on the row (a 5xx, a 429 after
    retries) keeps its class, so the CLI's exit code still says the deployment failed."""
    detail = cause if isinstance(cause, str) else cause.detail
    message = f"Function {function!r} failed for input {preview(row_text)}: {detail}"
    if isinstance(cause, str) or cause.about_the_row:
        return FunctionCallError(message)
    return type(cause)(message, code=cause.code, request_id=cause.request_id, status_code=cause.status_code)


@dataclass(frozen=True)
class FunctionRef:
    """A Function as the client knows it: its spec when the backend has one (local Functions),
    and the revision cache keys use: the spec's content hash, or "" for remote Functions, whose
    answers are keyed by name alone. `deployment`: the remote deployment's URL (no key), which
    answers' provenance names as the engine of a Function without a spec."""

    name: str
    spec: FunctionSpec | None = None
    deployment: str | None = None

    @cached_property
    def revision(self) -> str:
        """Computed once per ref: hashing the spec costs ~30 us, and a batch asks once per row."""
        return self.spec.revision if self.spec is not None else ""

    @property
    def engine(self) -> str | None:
        """What computes this Function's answers: the spec's engine, else the deployment."""
        return self.spec.engine if self.spec is not None else self.deployment

    @property
    def kind(self) -> str | None:
        return self.spec.kind if self.spec is not None else None

    def payload(self, value: dict[str, Any] | str) -> dict[str, Any] | str:
        """What the backend is sent for one input (the spec's conversion, when there is a spec)."""
        return self.spec.convert_input(value) if self.spec is not None else value

    def canonical(self, value: dict[str, Any] | str) -> tuple[dict[str, Any] | str, str]:
        """(what to send, its canonical text) for one input given as a Python value."""
        payload = self.payload(value)
        return payload, canonical_json(payload)

    def canonical_from_json(self, text: str) -> tuple[dict[str, Any] | str, str]:
        """(what to send, its canonical text) for one input STRUCT as DuckDB's `to_json` wrote it."""
        value = json.loads(text)
        if not isinstance(value, dict):
            raise QueryError(
                f"sutro_run: the input must be a STRUCT such as {{'query': q, 'region': r}} or a table row, "
                f"got the {type(value).__name__} {preview(text)}"
            )
        return self.canonical(value)
