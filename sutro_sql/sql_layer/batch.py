"""`sutro_batch(fn, query, ...)`: one batch job for a query's rows, served as a typed Parquet table.

DuckDB has no Python table functions, so `sutro_batch` is a TEMP table macro over
``read_parquet(_sutro_batch(...))``: this UDF runs once per bind with constant
arguments, and returns the path of a Parquet file holding the answers.

Steps: the query (validated as one read query) runs on a cursor and streams as
Arrow record batches into a spool Parquet file, every input column cast to text
as the JSON text of its input STRUCT (DuckDB's `to_json`, exactly what `sutro_run`
is given), so each row gets the canonical form `sutro_run` gives the same input
(`sutro_sql.inputs`, the one converter), and the rows are deduplicated. Distinct inputs already in the
answer cache (same backend, Function, revision) are answered from it; only the
others are sent, as one job whose content key is computed over exactly those rows,
so a re-run, a second bind of the same statement, or a re-run after a crash finds
the same job (the Client's ledger, and the backend via `content_key`) and submits
nothing new. The job's answers go into the answer cache
(failed rows do not), where `sutro_run` and later batches find them; when every row
is cached there is no job at all. ``cache := false`` skips the cache both ways (the
job ledger still applies). The client waits with a progress bar on stderr, then
the answers become the id column (or `row_id`, the 0-based ordinal in the query's
order), the typed answer columns, `confidence_score` and `error` (NULL for rows
that were answered), in query order.

The inner query runs on a cursor, which sees committed tables and views only,
not this connection's TEMP tables or uncommitted rows; such a query fails with a
message saying so. `sutro_sql.sql(con, ...)` serves that case: it runs the inner
query on the connection itself first (see `sutro_sql.sql_layer.query`).
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..answer_cache import answer_keys
from ..answers import ANSWER_TYPE, CLASSIFICATION_COLUMNS, PROVENANCE_FIELDS, abstain, check_abstain_below, from_cache
from ..cascade import CascadeRequest, cascade_request
from ..errors import QueryError
from ..functions import output_arrow_schema
from ..inputs import FunctionRef, row_failure
from ..realtime import replay_miss
from ..sql_text import quote
from ..staging import checked_stage
from ..wire import Job
from .cascade import escalate_spool
from .rewrite import validate_read_query
from .session import SutroSession, binding_a_relation
from .spool import (
    SPOOL_BATCH_ROWS,
    DistinctInputs,
    Spool,
    canonical_texts,
    content_key,
    distinct_inputs,
    job_key,
    job_rows,
    release_unused_memory,
    spool_query,
)

#: Good answers of a job cached together: the cache's keys are random (hashes), and inserting
#: many in key order keeps its index writes local (at 1M rows, 8k in random order cost ~27 us
#: per row, 64k in key order ~7 us per row). Written `CACHE_SLICE_ROWS` per transaction.
CACHE_WRITE_ROWS = 32_768
CACHE_SLICE_ROWS = 8_192

ESTIMATE_SCHEMA = pa.schema(
    [
        ("rows", pa.int64()),
        ("input_tokens", pa.int64()),
        ("output_tokens", pa.int64()),
        ("cost_usd", pa.float64()),
        ("job_id", pa.string()),
    ]
)


@dataclass(frozen=True)
class BatchOptions:
    """The named arguments of `sutro_batch`."""

    id_column: str | None = None
    job_priority: int = 0
    dry_run: bool = False
    job_name: str | None = None
    description: str | None = None
    cache: bool = True
    abstain_below: float | None = None
    stage: str | None = None  # an S3 location to send the rows through (see `sutro_sql.staging`)
    cascade: CascadeRequest | None = None


class SpoolAnswers:
    """Per spool row its distinct input (`codes`), and the distinct inputs' `sutro_run` values in
    order, read from `source` as rows ask for them: when every row is a distinct input that the
    job answered (a cold table of distinct rows), the job's answers stream from the backend
    while the result file is written and none is kept once written. `count` gets the number
    of failed rows once every answer has been read."""

    def __init__(self, codes: np.ndarray, source: Iterator[pa.StructArray], count: Callable[[int], None]) -> None:
        self.codes = codes
        self._source = source
        self._count: Callable[[int], None] | None = count
        self._rows_per_input = np.bincount(codes) if len(codes) else np.zeros(0, np.int64)
        self._sequential = bool(np.array_equal(codes, np.arange(len(codes))))
        self._pieces: list[pa.StructArray] = []
        self._dropped = 0  # distinct inputs read and dropped (before the first piece held)
        self._read = 0  # distinct inputs read
        self._failed = 0

    def per_row(self) -> pa.StructArray:
        """Every row's answer, in spool order."""
        return self.answers().take(pa.array(self.codes))

    def answers(self) -> pa.StructArray:
        """Every distinct input's answer, in order (all read, and kept)."""
        while self._next():
            pass
        if self._dropped:
            raise RuntimeError("answers already written and dropped")
        whole = pa.concat_arrays([pa.array([], ANSWER_TYPE), *self._pieces])
        self._pieces = [whole]
        return whole

    def rows(self, start: int, stop: int) -> pa.StructArray:
        """The answers of spool rows [start, stop), asked in order: read up to `stop` and
        sliced when rows are the distinct inputs themselves, else taken from all answers."""
        if not self._sequential:
            return self.answers().take(pa.array(self.codes[start:stop]))
        while self._read < stop and self._next():
            pass
        while self._pieces and self._dropped + len(self._pieces[0]) <= start:
            self._dropped += len(self._pieces.pop(0))
        held = pa.chunked_array(self._pieces, ANSWER_TYPE)
        return held.slice(start - self._dropped, stop - start).combine_chunks()

    def finish(self) -> None:
        """Read whatever is left (so the answers are counted, and cached)."""
        while self._next():
            pass

    def _next(self) -> bool:
        piece = next(self._source, None)
        if piece is None:
            if self._count is not None:
                self._count(self._failed)
                self._count = None
            return False
        failed = piece.field("error").is_valid().cast(pa.uint8()).to_numpy().astype(bool)
        self._failed += int(self._rows_per_input[self._read : self._read + len(piece)][failed].sum())
        self._pieces.append(piece)
        self._read += len(piece)
        return True


@dataclass
class CachedAnswers:
    """The distinct inputs the cache answered: their positions and their answers, in Arrow."""

    positions: np.ndarray
    answers: pa.StructArray


@dataclass
class Unanswered:
    """A spool's distinct inputs, those the cache answered, and the rest, which a job must answer."""

    distinct: DistinctInputs
    cached: CachedAnswers
    missing: np.ndarray  # positions in `distinct` of the inputs to send, ascending
    sent: pa.Array  # their canonical texts


class BatchRunner:
    """Answers a spool: from the answer cache where it can, by one batch job for the rest.
    Answers travel as Arrow arrays a chunk at a time; no Python object per row is kept."""

    def __init__(self, session: SutroSession) -> None:
        self.session = session

    def answer(self, ref: FunctionRef, spool: Spool, options: BatchOptions) -> SpoolAnswers:
        """Every row's answer: cached distinct inputs from the cache (memory, then disk), the
        others sent as one job (re-attached when it exists), whose answers are cached a chunk
        per transaction as they are read (see `SpoolAnswers`)."""
        session = self.session
        use_cache = session.client.reads_cache(session.cache_enabled and options.cache)
        work = self._unanswered(ref, spool, use_cache)
        if len(work.missing) and session.client.cache_mode == "replay":
            raise row_failure(ref.name, work.sent[0].as_py(), replay_miss(ref.name))
        codes, cached, missing, first_rows = work.distinct.codes, work.cached, work.missing, work.distinct.first_rows
        fresh: Iterator[pa.StructArray] = iter(())
        if len(missing):
            rows = job_rows(ref, spool, work.sent, first_rows[missing])
            job = self.run(ref, job_key(ref, work.sent, False), rows, options)
            del rows  # the job holds its inputs: their texts are read again from the spool, as needed
            fresh = self._fresh(ref, spool, job.job_id, first_rows[missing], use_cache)
        del work
        hits = int(np.bincount(codes, minlength=len(first_rows))[cached.positions].sum())

        def count(failed: int) -> None:
            session.count(cache_hits=hits, rows_answered=spool.rows - failed, rows_failed=failed)

        if not len(cached.positions):  # every answer from the job, in order: read them as asked
            return SpoolAnswers(codes, fresh, count)
        answers = _in_order([cached.answers, *fresh], np.concatenate([cached.positions, missing]))
        release_unused_memory()
        return SpoolAnswers(codes, iter(answers.chunks), count)

    def _fresh(
        self, ref: FunctionRef, spool: Spool, job_id: str, positions: np.ndarray, use_cache: bool
    ) -> Iterator[pa.StructArray]:
        """The job's answers for the spool rows at `positions`, a chunk at a time, each chunk's
        good answers cached as it is read (failed rows are not: a re-run retries them)."""
        client = self.session.client
        sent = _Slices(canonical_texts(ref, spool, positions))
        held: list[tuple[pa.Array, pa.StructArray]] = []  # good answers not cached yet
        for fresh in client.job_answer_batches(ref, job_id, len(positions)):
            if use_cache:
                good = fresh.field("error").is_null()
                held.append((sent.next(len(fresh)).filter(good), fresh.filter(good)))
                if sum(len(answers) for _, answers in held) >= CACHE_WRITE_ROWS:
                    self._remember(ref, held)
            yield fresh
            release_unused_memory()
        self._remember(ref, held)

    def _remember(self, ref: FunctionRef, held: list[tuple[pa.Array, pa.StructArray]]) -> None:
        """Cache the `held` answers, and empty it: in slices of consecutive cache keys (each slice
        one transaction), so the writes stay local while few Python objects exist at a time."""
        if not held:
            return
        client = self.session.client
        sent = pa.concat_arrays([texts for texts, _ in held])
        answers = pa.concat_arrays([answers for _, answers in held])
        held.clear()
        keys = answer_keys(client.backend.identity, ref.name, ref.revision, sent.to_pylist())
        order = sorted(range(len(keys)), key=keys.__getitem__)
        del keys
        for start in range(0, len(order), CACHE_SLICE_ROWS):
            taken = pa.array(order[start : start + CACHE_SLICE_ROWS], pa.int64())
            client.remember_answer_array(ref, sent.take(taken), answers.take(taken))

    def estimate(self, ref: FunctionRef, spool: Spool, options: BatchOptions) -> Job | None:
        """The estimate job of the rows `answer` would send (None when it would send none)."""
        work = self._unanswered(
            ref, spool, self.session.client.reads_cache(self.session.cache_enabled and options.cache)
        )
        if not len(work.missing):
            return None
        rows = job_rows(ref, spool, work.sent, work.distinct.first_rows[work.missing])
        return self.run(ref, job_key(ref, work.sent, True), rows, options)

    def _unanswered(self, ref: FunctionRef, spool: Spool, use_cache: bool) -> Unanswered:
        distinct = distinct_inputs(ref, spool)
        cached = self._cached(ref, distinct.canonicals, use_cache)
        missing = np.setdiff1d(np.arange(len(distinct.canonicals)), cached.positions, assume_unique=True)
        sent = distinct.canonicals if len(missing) == len(distinct.canonicals) else distinct.canonicals.take(missing)
        release_unused_memory()
        return Unanswered(distinct, cached, missing, sent)

    def run(self, ref: FunctionRef, key: str, rows: Any, options: BatchOptions) -> Job:
        """Submit `rows` as the job with content `key` (or re-attach to it) and wait: the final job."""
        return self.session.client.run_batch_job(
            ref,
            rows,
            content_key=key,
            job_priority=options.job_priority,
            dry_run=options.dry_run,
            job_name=options.job_name,
            description=options.description,
            stage=options.stage,
            progress=self.session.progress,
        )

    def _cached(self, ref: FunctionRef, canonicals: pa.Array, use_cache: bool) -> CachedAnswers:
        """The distinct inputs with a cached answer (memory, then disk), looked up a chunk at a
        time; none when the cache is off. Answers found on disk are not copied into the memory
        layer: a batch's rows would pile up there as Python objects."""
        positions: list[np.ndarray] = [np.empty(0, np.int64)]
        answers = [pa.array([], ANSWER_TYPE)]
        if use_cache:
            memory = self.session.memory(ref)
            for start in range(0, len(canonicals), SPOOL_BATCH_ROWS):
                texts = canonicals.slice(start, SPOOL_BATCH_ROWS).to_pylist()
                rows = memory.rows_for_canonicals(texts)
                unknown = [i for i, row in enumerate(rows) if row is None]
                stored = self.session.client.cached_answers(ref, [texts[i] for i in unknown])
                for i, row in zip(unknown, stored, strict=True):
                    rows[i] = row
                found = [i for i, row in enumerate(rows) if row is not None]
                positions.append(np.array(found, np.int64) + start)
                answers.append(from_cache(pa.array([rows[i] for i in found], ANSWER_TYPE)))
        return CachedAnswers(np.concatenate(positions), pa.concat_arrays(answers))


class _Slices:
    """Consecutive slices of a stream of arrays: `next(n)` is the next `n` values."""

    def __init__(self, arrays: Iterator[pa.Array]) -> None:
        self._arrays = arrays
        self._rest: pa.Array | None = None

    def next(self, count: int) -> pa.Array:
        parts = []
        while count:
            if self._rest is None or len(self._rest) == 0:
                self._rest = next(self._arrays)
            part = self._rest.slice(0, count)
            self._rest = self._rest.slice(len(part))
            parts.append(part)
            count -= len(part)
        return pa.concat_arrays(parts)


def _in_order(pieces: list[pa.StructArray], positions: np.ndarray) -> pa.ChunkedArray:
    """The answers of `pieces` put at their `positions`: the pieces themselves when they are
    already in order (a cold run: every answer from the job), else one array taken in order."""
    answers = pa.chunked_array(pieces, ANSWER_TYPE)
    if np.all(positions[1:] > positions[:-1]):
        return answers
    return pa.chunked_array([answers.combine_chunks().take(pa.array(np.argsort(positions, kind="stable")))])


def batch_columns(ref: FunctionRef, answers: pa.StructArray) -> dict[str, pa.Array]:
    """`sutro_run` values -> the typed answer columns of `sutro_batch` (extraction fields become columns)."""
    kind = ref.spec.kind if ref.spec is not None else None
    if kind == "classification" or (kind is None and answers.field("response").null_count < len(answers)):
        columns = {f.name: answers.field(f.name) for f in CLASSIFICATION_COLUMNS}
    else:
        parsed = [json.loads(text) if text is not None else {} for text in answers.field("output").to_pylist()]
        parsed = [value if isinstance(value, dict) else {} for value in parsed]
        if ref.spec is not None:
            fields = list(output_arrow_schema(ref.spec))
        else:
            names = list(dict.fromkeys(name for answer in parsed for name in answer))
            fields = [pa.field(name, pa.array([p.get(name) for p in parsed]).type) for name in names]
        columns = {f.name: _typed([p.get(f.name) for p in parsed], f.type) for f in fields}
    return columns


def _typed(values: list[Any], kind: pa.DataType) -> pa.Array:
    """Values as `kind`; a value of another type becomes NULL rather than failing the whole column."""
    try:
        return pa.array(values, kind)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return pa.array([_coerce(v, kind) for v in values], kind)


def _coerce(value: Any, kind: pa.DataType) -> Any:
    try:
        return pa.scalar(value, kind).as_py()
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError):
        return None


class BatchMaterializer:
    """The `_sutro_batch(...)` UDF of one session: returns the Parquet file `sutro_batch` reads."""

    def __init__(self, session: SutroSession) -> None:
        self.session = session
        self.runner = BatchRunner(session)
        self._bound: dict[tuple[Any, ...], tuple[tuple[str, ...], str]] = {}

    def __call__(
        self,
        fn: str | None,
        query: str | None,
        id_column: str | None,
        job_priority: int | None,
        dry_run: bool | None,
        job_name: str | None,
        description: str | None,
        cache: bool | None,
        abstain_below: float | None,
        stage: str | None,
        escalate_to: str | None = None,
        escalate_below: float | None = None,
        target_accuracy: float | None = None,
        calibrate_on: str | None = None,
    ) -> str:
        session = self.session
        ref = session.function(fn)
        options = BatchOptions(
            id_column,
            int(job_priority or 0),
            bool(dry_run),
            job_name,
            description,
            cache is not False,
            check_abstain_below(abstain_below, "sutro_batch"),
            checked_stage(stage),
            cascade_request(ref, escalate_to, escalate_below, target_accuracy, calibrate_on, "sutro_batch"),
        )
        sql_text = validate_read_query(query)
        cursor = session.connection.cursor()
        try:
            spool = spool_query(cursor, ref, sql_text, id_column, session.workdir)
            if id_column is not None and spool.rows:
                _check_unique(cursor, spool)
        finally:
            cursor.close()
        # DuckDB's Python relations bind a statement, then run it: the second call of the same
        # statement reuses the first one's file instead of counting a re-attach.
        arguments = (fn, query, options)
        fingerprint = (content_key(ref, spool, options.dry_run), spool.id_digest)
        bound = self._bound.pop(arguments, None)
        if bound is not None and bound[0] == fingerprint and os.path.exists(bound[1]):
            spool.remove()
            return bound[1]
        try:
            path = self._materialize(ref, spool, options)
        finally:
            spool.remove()
        if binding_a_relation():
            self._bound[arguments] = (fingerprint, path)
        return path

    def _materialize(self, ref: FunctionRef, spool: Spool, options: BatchOptions) -> str:
        path = os.path.join(self.session.workdir, f"result-{uuid.uuid4().hex}.parquet")
        try:
            if options.dry_run:
                pq.write_table(self._estimate(ref, spool, options), path)
            else:
                self._write_answers(ref, spool, options, path)
        except BaseException:
            if os.path.exists(path):  # answers are read while the file is written: do not leave half of it
                os.remove(path)
            raise
        return path

    def _estimate(self, ref: FunctionRef, spool: Spool, options: BatchOptions) -> pa.Table:
        job = self.runner.estimate(ref, spool, options)
        if job is None:  # nothing would be sent: no job
            return pa.table([[0], [0], [0], [0.0], [None]], schema=ESTIMATE_SCHEMA)
        values = [
            job.num_rows,
            job.input_tokens if job.estimated_input_tokens is None else job.estimated_input_tokens,
            job.output_tokens if job.estimated_output_tokens is None else job.estimated_output_tokens,
            job.cost_estimate,
            job.job_id,
        ]
        return pa.table([[v] for v in values], schema=ESTIMATE_SCHEMA)

    def _write_answers(self, ref: FunctionRef, spool: Spool, options: BatchOptions, path: str) -> None:
        """The result file, written a spool batch at a time (distinct inputs -> rows, in query
        order): the id column (or `row_id`), the typed answer columns, `confidence_score`, `error`.
        A remote Function's columns are inferred from all its answers at once; a local one's
        come from its spec, so each batch is typed alone and no answer array is built whole."""
        answered = self.runner.answer(ref, spool, options)
        if options.cascade is not None:  # the second stage: one more job, for the rows escalated
            merged = escalate_spool(
                lambda stage, strong, rows: BatchRunner(stage).answer(strong, rows, options),
                self.session,
                ref,
                spool,
                answered.answers(),
                answered.codes,
                options.cascade,
            )
            answered = SpoolAnswers(answered.codes, iter([merged]), lambda failed: None)
        if ref.spec is None:
            template = _answer_table(ref, answered.answers(), options)

            def rows(start: int, stop: int) -> pa.Table:
                return template.take(pa.array(answered.codes[start:stop]))
        else:
            template = _answer_table(ref, pa.array([], ANSWER_TYPE), options)

            def rows(start: int, stop: int) -> pa.Table:
                return _answer_table(ref, answered.rows(start, stop), options)

        first_name = options.id_column or "row_id"
        first_type = spool.schema.field(options.id_column).type if options.id_column else pa.int64()
        schema = template.schema.insert(0, pa.field(first_name, first_type))
        with pq.ParquetWriter(path, schema) as writer:
            offset = 0
            for first in _first_column(spool, options.id_column):
                writer.write_table(rows(offset, offset + len(first)).add_column(0, schema.field(0), first).cast(schema))
                offset += len(first)
            if offset == 0:
                writer.write_table(schema.empty_table())
        answered.finish()
        release_unused_memory()


def _answer_table(ref: FunctionRef, answers: pa.StructArray, options: BatchOptions) -> pa.Table:
    """Answers as `sutro_batch` columns: the typed answer columns (after abstention), then
    `confidence_score`, `error` and the provenance fields."""
    answers = abstain(answers, options.abstain_below)
    columns = batch_columns(ref, answers)
    clash = {options.id_column or "row_id", "confidence_score", "error", *PROVENANCE_FIELDS} & set(columns)
    if clash:
        raise QueryError(f"sutro_batch: answer field(s) {sorted(clash)} clash with result columns; rename them")
    columns["confidence_score"] = answers.field("confidence")
    columns["error"] = answers.field("error")
    columns.update((name, answers.field(name)) for name in PROVENANCE_FIELDS)
    return pa.table(columns)


def _first_column(spool: Spool, id_column: str | None) -> Iterator[pa.Array]:
    """The spool's id column (or its `row_id`, the 0-based ordinal), a spool batch at a time."""
    if id_column is None:
        for start in range(0, spool.rows, SPOOL_BATCH_ROWS):
            yield pa.array(np.arange(start, min(start + SPOOL_BATCH_ROWS, spool.rows), dtype=np.int64))
    elif spool.rows:
        for batch in spool.reader([id_column]):
            yield batch.column(0)


def _check_unique(con: duckdb.DuckDBPyConnection, spool: Spool) -> None:
    column = quote(spool.id_column or "")
    nulls, duplicates = con.sql(
        f"SELECT count(*) - count({column}), count({column}) - count(DISTINCT {column}) "
        f"FROM read_parquet('{spool.path}')"
    ).fetchall()[0]
    if nulls:
        raise QueryError(f"sutro_batch: id_column {spool.id_column!r} has {nulls} NULL value(s); ids must be set")
    if duplicates:
        raise QueryError(
            f"sutro_batch: id_column {spool.id_column!r} is not unique ({duplicates} duplicate value(s)); "
            "use a key column or leave id_column out to get row_id"
        )
