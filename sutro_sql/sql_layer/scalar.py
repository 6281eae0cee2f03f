"""`sutro_run(fn, input)`: the Arrow UDF that answers one DuckDB vector at a time.

Per vector (up to 2048 rows) the input STRUCTs arrive as JSON text (the macro
wraps them in `to_json`) with DuckDB's `hash()` of each. Warm path: the memory
cache finds every row's answer by hash (confirmed by text) and one Arrow `take`
builds the result. Otherwise Arrow `dictionary_encode` dedups the vector; each
distinct input is found in memory, else canonicalized (the Function's input
conversion, or sorted-key JSON for remote Functions) and looked up on disk, else
called on the session's thread pool, at most `max_concurrency` at a time, with
in-flight calls shared between vectors so an input is never sent twice. Results
are spread back with `take`, so row order is the input order. NULL input -> NULL
answer and no call.
"""

from __future__ import annotations

import json
from concurrent.futures import Future
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import FunctionCallError, QueryError, SutroSQLError, ValidationError
from .answers import ANSWER_TYPE, answer_row, error_row
from .cache import FunctionAnswers, answer_key, canonical_json
from .session import FunctionInfo, SutroSession, binding_a_relation

ON_ERROR_MODES = ("raise", "null")
#: How much of an input row an error message quotes.
ROW_PREVIEW_CHARS = 200


def preview(text: str) -> str:
    return text if len(text) <= ROW_PREVIEW_CHARS else text[:ROW_PREVIEW_CHARS] + "..."


def row_failure(function: str, row_text: str, cause: SutroSQLError | str) -> SutroSQLError:
    """The error for a failed row: names the Function, the row (truncated) and the backend's detail.

    A row's own problem is a FunctionCallError; an outage met on the row (a 5xx, a 429 after
    retries) keeps its class, so the CLI's exit code still says the deployment failed."""
    detail = cause if isinstance(cause, str) else cause.detail
    message = f"Function {function!r} failed for input {preview(row_text)}: {detail}"
    if isinstance(cause, str) or cause.about_the_row:
        return FunctionCallError(message)
    return type(cause)(message, code=cause.code, request_id=cause.request_id, status_code=cause.status_code)


class ScalarRunner:
    """The `_sutro_run(fn, input_json, input_hash, on_error, cache)` Arrow UDF of one session.

    Row counters skip the bind-time evaluation of constant calls (DuckDB's Python
    relations evaluate them again when they run); backend calls are always counted."""

    def __init__(self, session: SutroSession) -> None:
        self.session = session
        self._inflight: dict[tuple[str, str, str, str], Future] = {}

    def __call__(
        self, fn: pa.ChunkedArray, inputs: pa.ChunkedArray, hashes: pa.ChunkedArray, on_error: Any, cache: Any
    ) -> pa.Array:
        inputs = _array(inputs)
        rows = len(inputs)
        if inputs.null_count == rows:
            return pa.nulls(rows, ANSWER_TYPE)
        info = self.session.function(_literal(fn))
        mode = _array(on_error)[0].as_py() or "raise"
        if mode not in ON_ERROR_MODES:
            raise QueryError(f"sutro_run: on_error must be 'raise' or 'null', got {mode!r}")
        use_cache = self.session.cache_enabled and _array(cache)[0].as_py() is not False
        answers = self.session.answers.memory(self.session.identity, info.name, info.revision)
        row_hashes = _array(hashes).to_numpy(zero_copy_only=False)
        if use_cache:  # the warm path: every input seen before
            slots = answers.lookup_rows(row_hashes, inputs)
            if slots is not None:
                answered = rows - inputs.null_count
                self._count_rows(cache_hits=answered, rows_answered=answered)
                return answers.take(slots)
        return self._answer_vector(info, answers, inputs, row_hashes, mode, use_cache)

    def _answer_vector(
        self,
        info: FunctionInfo,
        answers: FunctionAnswers,
        inputs: pa.Array,
        row_hashes: np.ndarray,
        mode: str,
        use_cache: bool,
    ) -> pa.Array:
        """Dedup the vector, answer each distinct input (memory, disk, backend), spread back to rows."""
        encoded = pc.dictionary_encode(inputs)
        texts: list[str] = encoded.dictionary.to_pylist()
        codes = encoded.indices.fill_null(-1).to_numpy()
        valid_codes = codes[codes >= 0]
        rows_per_input = np.bincount(valid_codes, minlength=len(texts))
        first_row = np.empty(len(texts), np.int64)
        first_row[valid_codes[::-1]] = np.nonzero(codes >= 0)[0][::-1]
        text_hashes = row_hashes[first_row].tolist()

        slots = answers.slots_for_texts(texts, text_hashes) if use_cache else [None] * len(texts)
        misses = [i for i, slot in enumerate(slots) if slot is None]
        from_cache = [i for i, slot in enumerate(slots) if slot is not None]
        failures: dict[int, SutroSQLError] = {}
        if misses:
            resolved, cached = self._resolve(info, answers, texts, text_hashes, misses, use_cache, failures)
            from_cache += cached
            for i in misses:
                slots[i] = resolved.get(i)
        failed = int(rows_per_input[list(failures)].sum()) if failures else 0
        self._count_rows(
            cache_hits=int(rows_per_input[from_cache].sum()) if from_cache else 0,
            rows_answered=len(valid_codes) - failed,
            rows_failed=failed,
        )
        if failures and mode == "raise":
            first = min(failures)
            raise row_failure(info.name, texts[first], failures[first])
        if use_cache and not failures:  # every distinct input has a memory slot
            return answers.take(_row_slots(slots, encoded.indices))
        uniques = [
            error_row(failures[i].detail) if i in failures else _row_of(answers, slots[i]) for i in range(len(texts))
        ]
        return pa.array(uniques, ANSWER_TYPE).take(encoded.indices)

    def _resolve(
        self,
        info: FunctionInfo,
        answers: FunctionAnswers,
        texts: list[str],
        hashes: list[int],
        misses: list[int],
        use_cache: bool,
        failures: dict[int, SutroSQLError],
    ) -> tuple[dict[int, int | dict[str, Any]], list[int]]:
        """Answer the inputs at `misses`: memory by canonical form, then disk, then the backend.

        Returns, per index, a memory slot (cache on) or the answer row (cache off), and the
        indices the cache answered; failed rows go to `failures` instead."""
        resolved: dict[int, int | dict[str, Any]] = {}
        cached: list[int] = []
        payloads: dict[str, Any] = {}
        pending: dict[str, list[int]] = {}  # canonical input -> indices still to answer
        for i in misses:
            try:
                payload, canonical = _canonical_input(info, texts[i])
            except ValidationError as exc:  # e.g. a missing required field: this row's failure
                failures[i] = exc
                continue
            slot = answers.slot_for_canonical(canonical) if use_cache else None
            if slot is not None:
                resolved[i] = answers.add(texts[i], hashes[i], canonical)
                cached.append(i)
                continue
            payloads[canonical] = payload
            pending.setdefault(canonical, []).append(i)

        identity = self.session.identity
        if use_cache and pending:
            keys = {canonical: answer_key(identity, info.name, info.revision, canonical) for canonical in pending}
            stored = self.session.answers.get_many(list(keys.values()))
            for canonical in [c for c in pending if keys[c] in stored]:
                row = stored[keys[canonical]]
                for i in pending.pop(canonical):
                    resolved[i] = answers.add(texts[i], hashes[i], canonical, row)
                    cached.append(i)

        fresh: list[tuple[str, dict[str, Any]]] = []
        for canonical, call in self._call_all(info, answers, payloads, pending, use_cache):
            if isinstance(call, int):  # another vector answered it meanwhile
                for i in pending[canonical]:
                    resolved[i] = answers.add(texts[i], hashes[i], canonical)
                    cached.append(i)
                continue
            try:
                row = call.result()
            except BaseException as exc:  # a failed call is forgotten, so a later query tries again
                self._inflight.pop((identity, info.name, info.revision, canonical), None)
                if not isinstance(exc, SutroSQLError) or exc.fatal:
                    raise
                for i in pending[canonical]:
                    failures[i] = exc
                continue
            if use_cache:
                fresh.append((answer_key(identity, info.name, info.revision, canonical), row))
                with answers.lock:  # memory first, then forget the in-flight call: never neither
                    for i in pending[canonical]:
                        resolved[i] = answers.add(texts[i], hashes[i], canonical, row)
                    self._inflight.pop((identity, info.name, info.revision, canonical), None)
            else:
                for i in pending[canonical]:
                    resolved[i] = row
        if use_cache:
            self.session.answers.put_many(fresh)
        return resolved, cached

    def _call_all(
        self,
        info: FunctionInfo,
        answers: FunctionAnswers,
        payloads: dict[str, Any],
        pending: dict[str, list[int]],
        use_cache: bool,
    ) -> list[tuple[str, Future | int]]:
        """Per distinct input: its memory slot if another vector answered it meanwhile, else its
        call, started now or joined when another vector already started it."""
        calls: list[tuple[str, Future | int]] = []
        for canonical in pending:
            key = (self.session.identity, info.name, info.revision, canonical)
            if not use_cache:
                calls.append((canonical, self.session.executor.submit(self._call, info.name, payloads[canonical])))
                continue
            with answers.lock:
                slot = answers.slot_for_canonical(canonical)
                future = self._inflight.get(key)
                if slot is None and future is None:
                    future = self._inflight[key] = self.session.executor.submit(
                        self._call, info.name, payloads[canonical]
                    )
            calls.append((canonical, slot if slot is not None else future))
        return calls

    def _count_rows(self, **deltas: int) -> None:
        if not binding_a_relation():
            self.session.count(**deltas)

    def _call(self, name: str, payload: Any) -> dict[str, Any]:
        self.session.count(calls=1)
        response = self.session.backend.run_function(name, payload)
        usage = response.get("usage") or {}
        self.session.count(
            input_tokens=int(usage.get("input_tokens") or 0),
            output_tokens=int(usage.get("output_tokens") or 0),
            cost_usd=float(usage.get("cost_usd") or 0.0),
        )
        return answer_row(response)


def _row_of(answers: FunctionAnswers, slot: int | dict[str, Any]) -> dict[str, Any]:
    return slot if isinstance(slot, dict) else answers.row(slot)


def _array(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    if isinstance(values, pa.ChunkedArray):
        return values.chunk(0) if values.num_chunks == 1 else values.combine_chunks()
    return values


def _literal(fn: pa.ChunkedArray) -> Any:
    """The Function name, which must be the same on every row (a string literal)."""
    names = _array(fn)
    first = names[0]
    if names.null_count not in (0, len(names)) or pc.equal(names, first).false_count:
        distinct = names.unique()
        raise QueryError(
            f"sutro_run: the Function name must be a string literal, got {len(distinct)} different names "
            f"({', '.join(map(str, distinct.to_pylist()[:3]))}, ...)"
        )
    return first.as_py()


def _row_slots(slots: list[Any], indices: pa.Array) -> pa.Array:
    """Per row, the memory slot of its input (NULL for NULL input)."""
    per_input = np.fromiter(slots, np.int64, len(slots))
    if indices.null_count:
        valid = indices.is_valid().to_numpy(zero_copy_only=False)
        return pa.array(per_input[indices.fill_null(0).to_numpy()], mask=~valid)
    return pa.array(per_input[indices.to_numpy()])


def _canonical_input(info: FunctionInfo, text: str) -> tuple[Any, str]:
    """(what to send, canonical JSON for cache keys) for one input; a clear error if it is not a STRUCT."""
    value = json.loads(text)
    if not isinstance(value, dict):
        raise QueryError(
            f"sutro_run: the input must be a STRUCT such as {{'query': q, 'region': r}} or a table row, "
            f"got the {type(value).__name__} {preview(text)}"
        )
    payload = info.payload(value)
    return payload, canonical_json(payload)
