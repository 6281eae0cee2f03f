"""`sutro_run(fn, input)`: the Arrow UDF that answers one DuckDB vector at a time.

Per vector (up to 2048 rows) the input STRUCTs arrive as JSON text (the macro wraps them in
`to_json`) with DuckDB's `hash()` of each, and one JSON object of the call's options (the
Function, on_error, cache, abstain_below, the statement's `txid_current()`), which DuckDB
folds to a constant: three columns, so the UDF costs DuckDB little more than any UDF of one
column. Warm path: the memory cache finds every row's answer by hash (confirmed by text), and
the result is a dictionary array over the answers the rows use, which DuckDB reads without a
per-row copy. A row is a cache hit when its answer was there before the statement began; a
repeat of an input the statement itself computed is dedup, counted neither as a call nor as a
hit. Otherwise Arrow `dictionary_encode` dedups the vector; each distinct input is found in
memory (by text, then by canonical form), else converted and canonicalized (the one converter,
`sutro_sql.inputs`) and handed to the Client, which answers from the disk cache or calls the
backend (concurrently, each input once, sharing calls in flight between vectors). The answers
of the distinct inputs are the result's dictionary, so row order is the input order. NULL
input -> NULL answer and no call.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..answers import ANSWER_TYPE, abstain, check_abstain_below, error_row
from ..errors import QueryError, SutroSQLError, ValidationError
from ..inputs import FunctionRef, row_failure
from .cache import Found, FunctionAnswers, answers_by_row
from .session import SutroSession, binding_a_relation

ON_ERROR_MODES = ("raise", "null")


@dataclass(frozen=True)
class RunOptions:
    """The options of one `sutro_run` call site, as the macro passes them (one JSON object)."""

    function: Any
    on_error: str
    cache: bool
    abstain_below: float | None
    statement: int


@functools.lru_cache(maxsize=256)
def parse_options(text: str) -> RunOptions:
    """The options object (parsed once per distinct text: it is the same for a whole statement)."""
    options = json.loads(text)
    mode = options["on_error"] or "raise"
    if mode not in ON_ERROR_MODES:
        raise QueryError(f"sutro_run: on_error must be 'raise' or 'null', got {mode!r}")
    return RunOptions(
        function=options["function"],
        on_error=mode,
        cache=options["cache"] is not False,
        abstain_below=check_abstain_below(options["abstain_below"], "sutro_run"),
        statement=options["statement"],
    )


class ScalarRunner:
    """The `_sutro_run(input_json, input_hash, options_json)` Arrow UDF of one session.

    Row counters skip the bind-time evaluation of constant calls (DuckDB's Python
    relations evaluate them again when they run); backend calls are always counted."""

    def __init__(self, session: SutroSession) -> None:
        self.session = session

    def __call__(self, inputs: pa.ChunkedArray, hashes: pa.ChunkedArray, options: pa.ChunkedArray) -> pa.Array:
        inputs = _array(inputs)
        if inputs.type != pa.string():  # a connection set to give large strings or string views
            inputs = inputs.cast(pa.string())
        rows = len(inputs)
        if inputs.null_count == rows:
            return pa.nulls(rows, ANSWER_TYPE)
        run = _call_options(_array(options))
        ref = self.session.function(run.function)
        use_cache = self.session.client.reads_cache(self.session.cache_enabled and run.cache)  # replay: always
        answers = self.session.memory(ref)
        epoch = self.session.epoch(run.statement)
        row_hashes = _array(hashes).to_numpy(zero_copy_only=False)
        if use_cache:  # the warm path: every input seen before
            warm = answers.answer_rows(row_hashes, inputs, epoch)
            if warm is not None:
                result, computed_now = warm
                answered = rows - inputs.null_count
                self._count_rows(cache_hits=answered - computed_now, rows_answered=answered)
                return _abstain(result, run.abstain_below)
        result = self._answer_vector(ref, answers, inputs, row_hashes, run.on_error, use_cache, epoch)
        return _abstain(result, run.abstain_below)

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
        hashes = row_hashes[first_row].tolist()

        found = [answers.find_texts(texts, hashes, epoch)] if use_cache else []
        known = {position for part in found for position in part.positions}
        failures: dict[int, SutroSQLError] = {}
        pending: dict[str, list[int]] = {}  # canonical input -> positions of the texts that have it
        payloads: dict[str, Any] = {}
        for i in range(len(texts)):
            if i in known:
                continue
            try:
                payload, canonical = ref.canonical_from_json(texts[i])
            except ValidationError as exc:  # e.g. a missing required field: this row's failure
                failures[i] = exc
                continue
            payloads[canonical] = payload
            pending.setdefault(canonical, []).append(i)
        if use_cache and pending:
            by_form = answers.find_canonicals(
                ((i, texts[i], hashes[i], canonical) for canonical, indices in pending.items() for i in indices), epoch
            )
            found.append(by_form)
            known = set(by_form.positions)  # a canonical form's texts are all found, or none
            pending = {canonical: indices for canonical, indices in pending.items() if indices[0] not in known}
            payloads = {canonical: payloads[canonical] for canonical in pending}
        computed = self._compute(ref, answers, texts, hashes, pending, payloads, use_cache, epoch, failures)
        if computed is not None:
            found.append(computed)

        failed = int(rows_per_input[list(failures)].sum()) if failures else 0
        hits = 0
        for part in found:  # an answer is a hit unless this statement computed it
            if use_cache and len(part.positions):
                per_input = rows_per_input[part.positions]
                hits += int(per_input.sum() - per_input[part.computed_now].sum())
        self._count_rows(cache_hits=hits, rows_answered=len(valid_codes) - failed, rows_failed=failed)
        if failures and mode == "raise":
            first = min(failures)
            raise row_failure(ref.name, texts[first], failures[first])
        if failures:
            failed_at = list(failures)
            rows = [error_row(failures[i].detail, ref) for i in failed_at]
            found.append(Found(failed_at, pa.array(rows, ANSWER_TYPE), np.zeros(len(rows), bool)))
        return _spread(found, len(texts), encoded.indices)

    def _compute(
        self,
        ref: FunctionRef,
        answers: FunctionAnswers,
        texts: list[str],
        hashes: list[int],
        pending: dict[str, list[int]],
        payloads: dict[str, Any],
        use_cache: bool,
        epoch: int,
        failures: dict[int, SutroSQLError],
    ) -> Found | None:
        """Answer the `pending` canonical inputs through the Client (its disk cache, else the
        backend), remembering them in memory; failed ones go to `failures`."""
        if not pending:
            return None
        positions: list[int] = []
        rows: list[dict[str, Any]] = []
        canonicals: list[str] = []
        computed_by: list[int] = []  # per answer, the statement that computed it (0: the cache had it)
        client = self.session.client
        for canonical, answer in client.answer_inputs(ref, payloads, cache=use_cache, epoch=epoch).items():
            indices = pending[canonical]
            if isinstance(answer, SutroSQLError):
                for i in indices:
                    failures[i] = answer
                continue
            for i in indices:
                positions.append(i)
                rows.append(answer.row)
                canonicals.append(canonical)
                computed_by.append(0 if answer.cached else epoch)
        computed = pa.array(rows, ANSWER_TYPE)
        if use_cache and positions:
            answers.add(
                [texts[i] for i in positions], [hashes[i] for i in positions], canonicals, computed, computed_by
            )
        return Found(positions, computed, np.array(computed_by, np.int64) == epoch)

    def _count_rows(self, **deltas: int) -> None:
        if not binding_a_relation():
            self.session.count(**deltas)


def _spread(parts: list[Found], inputs: int, indices: pa.Array) -> pa.DictionaryArray:
    """Per row, the answer of its input (`indices`: the row's input, NULL for NULL input), from
    `parts` that together answer every input: a dictionary array over their answers."""
    order = np.empty(inputs, np.int32)
    start = 0
    for part in parts:
        order[part.positions] = np.arange(start, start + len(part.positions), dtype=np.int32)
        start += len(part.positions)
    dictionary = pa.concat_arrays([part.answers for part in parts])
    null_rows = None if indices.null_count == 0 else indices.is_null().to_numpy(zero_copy_only=False)
    return answers_by_row(order[indices.fill_null(0).to_numpy()], dictionary, null_rows)


def _abstain(result: pa.DictionaryArray, below: float | None) -> pa.DictionaryArray:
    """Abstention applied once per distinct answer (the dictionary), not per row."""
    if below is None:
        return result
    return pa.DictionaryArray.from_arrays(result.indices, abstain(result.dictionary, below), safe=False)


def _call_options(options: pa.Array) -> RunOptions:
    """The call's options, which must be the same on every row (literals)."""
    first = options[0].as_py()
    if pc.equal(options, first).false_count:
        names = sorted({str(parse_options(text).function) for text in options.unique().to_pylist()})
        if len(names) > 1:
            raise QueryError(
                f"sutro_run: the Function name must be a string literal, got {len(names)} different names "
                f"({', '.join(names[:3])}, ...)"
            )
        raise QueryError("sutro_run: on_error, cache and abstain_below must be literals, the same on every row")
    return parse_options(first)


def _array(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    if isinstance(values, pa.ChunkedArray):
        return values.chunk(0) if values.num_chunks == 1 else values.combine_chunks()
    return values
