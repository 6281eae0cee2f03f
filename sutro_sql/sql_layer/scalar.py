"""`sutro_run(fn, input)`: the Arrow UDF that answers one DuckDB vector at a time.

Per vector (up to 2048 rows) the input STRUCTs arrive as JSON text (the macro
wraps them in `to_json`) with DuckDB's `hash()` of each. Warm path: the memory
cache finds every row's answer by hash (confirmed by text) and one Arrow `take`
builds the result. A row is a cache hit when its answer was there before the
statement (its `txid_current()`) began; a repeat of an input the statement itself
computed is dedup, counted neither as a call nor as a hit. Otherwise Arrow `dictionary_encode` dedups the vector; each
distinct input is found in memory, else converted and canonicalized (the one
converter, `sutro_sql.inputs`) and handed to the Client, which answers from the
disk cache or calls the backend (concurrently, each input once, sharing calls in
flight between vectors). Results are spread back with `take`, so row order is
the input order. NULL input -> NULL answer and no call.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..answers import ANSWER_TYPE, SOURCE_CACHE, abstain, check_abstain_below, error_row, from_cache
from ..errors import QueryError, SutroSQLError, ValidationError
from ..inputs import FunctionRef, row_failure
from .cache import FunctionAnswers
from .session import SutroSession, binding_a_relation

ON_ERROR_MODES = ("raise", "null")


class ScalarRunner:
    """The `_sutro_run(fn, input_json, input_hash, on_error, cache, txid, abstain_below)` Arrow UDF
    of one session.

    Row counters skip the bind-time evaluation of constant calls (DuckDB's Python
    relations evaluate them again when they run); backend calls are always counted."""

    def __init__(self, session: SutroSession) -> None:
        self.session = session

    def __call__(
        self,
        fn: pa.ChunkedArray,
        inputs: pa.ChunkedArray,
        hashes: pa.ChunkedArray,
        on_error: Any,
        cache: Any,
        txid: pa.ChunkedArray,
        abstain_below: pa.ChunkedArray,
    ) -> pa.Array:
        inputs = _array(inputs)
        rows = len(inputs)
        if inputs.null_count == rows:
            return pa.nulls(rows, ANSWER_TYPE)
        ref = self.session.function(_literal(fn))
        mode = _array(on_error)[0].as_py() or "raise"
        if mode not in ON_ERROR_MODES:
            raise QueryError(f"sutro_run: on_error must be 'raise' or 'null', got {mode!r}")
        below = check_abstain_below(_array(abstain_below)[0].as_py(), "sutro_run")
        use_cache = self.session.cache_enabled and _array(cache)[0].as_py() is not False
        answers = self.session.memory(ref)
        epoch = self.session.epoch(_array(txid)[0].as_py())
        row_hashes = _array(hashes).to_numpy(zero_copy_only=False)
        if use_cache:  # the warm path: every input seen before
            slots = answers.lookup_rows(row_hashes, inputs)
            if slots is not None:
                answered = rows - inputs.null_count
                deduped = 0
                if answered and answers.computed_during(epoch):
                    deduped = int(answers.computed_in(slots.drop_null().to_numpy(), epoch).sum())
                self._count_rows(cache_hits=answered - deduped, rows_answered=answered)
                return abstain(_sourced(answers, slots, epoch), below)
        return abstain(self._answer_vector(ref, answers, inputs, row_hashes, mode, use_cache, epoch), below)

    def _answer_vector(
        self,
        ref: FunctionRef,
        answers: FunctionAnswers,
        inputs: pa.Array,
        row_hashes: np.ndarray,
        mode: str,
        use_cache: bool,
        epoch: int,
    ) -> pa.Array:
        """Dedup the vector, answer each distinct input (memory, then the Client), spread back to rows."""
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
        failures: dict[int, SutroSQLError] = {}
        if misses:
            resolved = self._resolve(ref, answers, texts, text_hashes, misses, use_cache, failures, epoch)
            for i in misses:
                slots[i] = resolved.get(i)
        failed = int(rows_per_input[list(failures)].sum()) if failures else 0
        hits = 0
        if use_cache:  # an answer is a hit unless this statement computed it
            held = [i for i in range(len(texts)) if i not in failures]
            fresh = answers.computed_in(np.array([slots[i] for i in held], np.int64), epoch)
            hits = int(rows_per_input[held].sum() - rows_per_input[held][fresh].sum()) if held else 0
        self._count_rows(cache_hits=hits, rows_answered=len(valid_codes) - failed, rows_failed=failed)
        if failures and mode == "raise":
            first = min(failures)
            raise row_failure(ref.name, texts[first], failures[first])
        if use_cache and not failures:  # every distinct input has a memory slot
            return _sourced(answers, _row_slots(slots, encoded.indices), epoch)
        uniques = [
            error_row(failures[i].detail) if i in failures else _row_of(answers, slots[i], epoch)
            for i in range(len(texts))
        ]
        return pa.array(uniques, ANSWER_TYPE).take(encoded.indices)

    def _resolve(
        self,
        ref: FunctionRef,
        answers: FunctionAnswers,
        texts: list[str],
        hashes: list[int],
        misses: list[int],
        use_cache: bool,
        failures: dict[int, SutroSQLError],
        epoch: int,
    ) -> dict[int, int | dict[str, Any]]:
        """Answer the inputs at `misses`: memory by canonical form, else the Client (its disk
        cache, else the backend); answers computed for statement `epoch` are marked with it.

        Returns, per index, a memory slot (cache on) or the answer row (cache off); failed rows
        go to `failures` instead."""
        resolved: dict[int, int | dict[str, Any]] = {}
        payloads: dict[str, Any] = {}
        pending: dict[str, list[int]] = {}  # canonical input -> indices still to answer
        for i in misses:
            try:
                payload, canonical = ref.canonical_from_json(texts[i])
            except ValidationError as exc:  # e.g. a missing required field: this row's failure
                failures[i] = exc
                continue
            slot = answers.slot_for_canonical(canonical) if use_cache else None
            if slot is not None:
                resolved[i] = answers.add(texts[i], hashes[i], canonical)
                continue
            payloads[canonical] = payload
            pending.setdefault(canonical, []).append(i)
        if not pending:
            return resolved
        client = self.session.client
        for canonical, answer in client.answer_inputs(ref, payloads, cache=use_cache, epoch=epoch).items():
            indices = pending[canonical]
            if isinstance(answer, SutroSQLError):
                for i in indices:
                    failures[i] = answer
                continue
            computed_by = 0 if answer.cached else epoch
            for i in indices:
                resolved[i] = (
                    answers.add(texts[i], hashes[i], canonical, answer.row, computed_by) if use_cache else answer.row
                )
        return resolved

    def _count_rows(self, **deltas: int) -> None:
        if not binding_a_relation():
            self.session.count(**deltas)


def _row_of(answers: FunctionAnswers, slot: int | dict[str, Any], epoch: int) -> dict[str, Any]:
    if isinstance(slot, dict):
        return slot
    row = answers.row(slot)
    return row if answers.computed_in(np.array([slot]), epoch)[0] else row | {"source": SOURCE_CACHE}


def _sourced(answers: FunctionAnswers, slots: pa.Array, epoch: int) -> pa.StructArray:
    """The answers at `slots`, saying `source` 'cache' unless statement `epoch` computed them:
    a constant column when it computed none here (the warm path), else one vectorized mask."""
    rows = answers.take(slots)
    if not answers.computed_during(epoch):
        return from_cache(rows)
    return from_cache(rows, ~answers.computed_in(slots.fill_null(0).to_numpy(zero_copy_only=False), epoch))


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
