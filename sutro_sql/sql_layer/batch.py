"""`sutro_batch(fn, query, ...)`: one batch job for a query's rows, served as a typed Parquet table.

DuckDB has no Python table functions, so `sutro_batch` is a TEMP table macro over
``read_parquet(_sutro_batch(...))``: this UDF runs once per bind with constant
arguments, and returns the path of a Parquet file holding the answers.

Steps: the query (validated as one read query) runs on a cursor and streams as
Arrow record batches into a spool Parquet file, every input column cast to text
the way a Function converts input. Each row gets the canonical form `sutro_run`
gives the same input, and the rows are deduplicated. Distinct inputs already in the
answer cache (same backend, Function, revision) are answered from it; only the
others are sent, as one job whose content key is computed over exactly those rows,
so a re-run, a second bind of the same statement, or a re-run after a crash finds
the same job (in the ledger under the backend's home, and on the backend via
`content_key`) and submits nothing new. The job's answers go into the answer cache
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

import hashlib
import json
import os
import uuid
from dataclasses import dataclass
from json.encoder import encode_basestring as encode_json_string
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..errors import NotFoundError, QueryError, ServerError
from ..functions import output_arrow_schema
from .answers import ANSWER_TYPE, CLASSIFICATION_COLUMNS, batch_answer
from .cache import answer_key
from .rewrite import validate_read_query
from .session import FunctionInfo, SutroSession, binding_a_relation

#: Rows per Arrow record batch read from the query.
SPOOL_BATCH_ROWS = 65_536
RESTARTABLE_STATUSES = frozenset({"FAILED", "CANCELLED"})
NESTED_TYPE_IDS = frozenset({"struct", "list", "map", "union", "array"})
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


@dataclass
class Spool:
    """A query's rows on disk: the id column (if any) then the Function's inputs as text."""

    path: str
    rows: int
    inputs: list[str]
    id_column: str | None
    input_digest: str
    id_digest: str
    schema: pa.Schema

    def reader(self, columns: list[str]) -> pa.RecordBatchReader:
        parquet = pq.ParquetFile(self.path)
        schema = parquet.schema_arrow
        return pa.RecordBatchReader.from_batches(
            pa.schema([schema.field(c) for c in columns]), parquet.iter_batches(SPOOL_BATCH_ROWS, columns=columns)
        )

    def remove(self) -> None:
        if os.path.exists(self.path):
            os.remove(self.path)


def quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def spool_query(
    con: duckdb.DuckDBPyConnection, info: FunctionInfo, query: str, id_column: str | None, workdir: str
) -> Spool:
    """Run `query` on `con` and stream its rows into a spool file (see the module docstring)."""
    try:
        relation = con.sql(query)
        columns = relation.columns
        types = relation.types
    except duckdb.CatalogException as exc:
        raise QueryError(
            f"sutro_batch: {exc}. The query of sutro_batch runs on a separate cursor, which sees committed "
            "tables and views only, not this connection's TEMP tables or uncommitted rows: commit first, use "
            "a regular table, or run the statement with sutro_sql.sql(con, ...), which runs the inner query "
            "on this connection first."
        ) from None
    except duckdb.Error as exc:
        raise QueryError(f"sutro_batch: the query failed: {exc}") from None
    if id_column is not None and id_column not in columns:
        raise QueryError(f"sutro_batch: id_column {id_column!r} is not a column of the query (columns: {columns})")
    inputs = _input_columns(info, columns, id_column)
    kinds = dict(zip(columns, types, strict=True))
    select = [f"{quote(id_column)}, CAST({quote(id_column)} AS VARCHAR) AS __sutro_id_text"] if id_column else []
    select += [f"{_as_text(quote(c), kinds[c])} AS {quote(c)}" for c in inputs]
    text_query = f"SELECT {', '.join(select)} FROM (\n{query}\n) AS __sutro_input"

    path = os.path.join(workdir, f"spool-{uuid.uuid4().hex}.parquet")
    digests = {c: _ColumnDigest() for c in [*inputs, *(["__sutro_id_text"] if id_column else [])]}
    rows = 0
    writer = None
    try:
        reader = con.sql(text_query).to_arrow_reader(SPOOL_BATCH_ROWS)
        for batch in reader:
            for name, digest in digests.items():
                digest.update(batch.column(name))
            kept = batch.drop_columns(["__sutro_id_text"]) if id_column else batch
            if writer is None:
                writer = pq.ParquetWriter(path, kept.schema)
            writer.write_batch(kept)
            rows += batch.num_rows
    except duckdb.Error as exc:
        raise QueryError(f"sutro_batch: the query failed: {exc}") from None
    finally:
        if writer is not None:
            writer.close()
    input_hash = hashlib.sha256()
    for name in inputs:
        input_hash.update(f"{name}\x1f{digests[name].hexdigest()}\x1e".encode())
    id_digest = digests["__sutro_id_text"].hexdigest() if id_column else ""
    schema = reader.schema.remove(reader.schema.get_field_index("__sutro_id_text")) if id_column else reader.schema
    return Spool(path if writer else "", rows, inputs, id_column, input_hash.hexdigest(), id_digest, schema)


def _input_columns(info: FunctionInfo, columns: list[str], id_column: str | None) -> list[str]:
    if info.spec is None:  # remote: every other column is an input; the deployment checks them
        return [c for c in columns if c != id_column]
    missing = [f.name for f in info.spec.inputs if f.required and f.name not in columns]
    if missing:
        raise QueryError(
            f"sutro_batch: Function {info.name!r} needs input column(s) {missing}, "
            f"which the query does not return (columns: {columns})"
        )
    return [name for name in info.spec.input_names if name in columns]


def _as_text(column: str, kind: duckdb.sqltype) -> str:
    """SQL that turns a column into the text a Function sees (nested values as JSON)."""
    if kind.id in NESTED_TYPE_IDS:
        return f"CAST(to_json({column}) AS VARCHAR)"
    if str(kind) == "VARCHAR":
        return column
    return f"CAST({column} AS VARCHAR)"


class _ColumnDigest:
    """sha256 of a text column's values, the same however the rows are split into batches."""

    def __init__(self) -> None:
        self._valid = hashlib.sha256()
        self._lengths = hashlib.sha256()
        self._data = hashlib.sha256()

    def update(self, column: pa.Array) -> None:
        column = column.cast(pa.large_string())
        self._valid.update(column.is_valid().to_numpy(zero_copy_only=False).astype(np.uint8).tobytes())
        filled = pc.fill_null(column, "")
        self._lengths.update(pc.binary_length(filled).to_numpy().astype("<i8").tobytes())
        offsets = np.frombuffer(filled.buffers()[1], dtype="<i8")[filled.offset : filled.offset + len(filled) + 1]
        data = filled.buffers()[2]
        if data is not None and len(offsets):
            self._data.update(data.slice(int(offsets[0]), int(offsets[-1] - offsets[0])))

    def hexdigest(self) -> str:
        return hashlib.sha256(
            (self._valid.hexdigest() + self._lengths.hexdigest() + self._data.hexdigest()).encode()
        ).hexdigest()


def content_key(info: FunctionInfo, spool: Spool, dry_run: bool) -> str:
    """Same Function revision + same spooled rows in the same order -> same key (ids are not part of
    it): how a second bind of one statement is recognized."""
    parts = ("sutro_batch/1", info.name, info.revision, "estimate" if dry_run else "run", str(spool.rows))
    return hashlib.sha256("\x1f".join((*parts, spool.input_digest)).encode()).hexdigest()


def job_key(info: FunctionInfo, canonicals: list[str], dry_run: bool) -> str:
    """The content key of the job that sends `canonicals` (distinct inputs, in query order)."""
    digest = hashlib.sha256()
    for canonical in canonicals:
        digest.update(canonical.encode())
        digest.update(b"\x1e")
    parts = ("sutro_batch/2", info.name, info.revision, "estimate" if dry_run else "run", str(len(canonicals)))
    return hashlib.sha256("\x1f".join((*parts, digest.hexdigest())).encode()).hexdigest()


@dataclass
class DistinctInputs:
    """A spool's rows grouped by canonical input: what the cache is asked and a job is sent."""

    canonicals: list[str]  # distinct inputs, in order of first appearance
    first_rows: np.ndarray  # per distinct input, the spool row it first appears on
    codes: np.ndarray  # per spool row, its distinct input


def distinct_inputs(info: FunctionInfo, spool: Spool) -> DistinctInputs:
    """Canonicalize every spooled row the way `sutro_run` canonicalizes an input, and dedup."""
    index: dict[str, int] = {}
    first_rows: list[int] = []
    codes = [np.empty(0, np.int64)]
    offset = 0
    for batch in spool.reader(spool.inputs) if spool.rows else []:
        batch_codes = np.empty(batch.num_rows, np.int64)
        for row, canonical in enumerate(canonical_rows(info, batch)):
            code = index.get(canonical)
            if code is None:
                code = index[canonical] = len(first_rows)
                first_rows.append(offset + row)
            batch_codes[row] = code
        codes.append(batch_codes)
        offset += batch.num_rows
    return DistinctInputs(list(index), np.array(first_rows, np.int64), np.concatenate(codes))


def canonical_rows(info: FunctionInfo, batch: pa.RecordBatch) -> list[str]:
    """`canonical_json(info.payload(row))` of each row of text columns, built column by column
    (string values only, so JSON's own string encoder gives exactly what `json.dumps` would)."""
    if info.spec is not None:  # the spec's input conversion: every input, NULL or absent -> ""
        values = {
            name: pc.fill_null(batch.column(name), "").to_pylist() if name in batch.schema.names else None
            for name in info.spec.input_names
        }
    else:
        values = {name: batch.column(name).to_pylist() for name in batch.schema.names}
    pieces = []
    for name in sorted(values):
        key = encode_json_string(name) + ":"
        column = values[name]
        if column is None:
            pieces.append([key + '""'] * batch.num_rows)
        else:
            pieces.append([key + ("null" if v is None else encode_json_string(v)) for v in column])
    return ["{" + ",".join(row) + "}" for row in zip(*pieces, strict=True)] if pieces else ["{}"] * batch.num_rows


def spool_rows(spool: Spool, positions: np.ndarray) -> pa.RecordBatchReader:
    """The spool's input columns at `positions` (ascending), streamed batch by batch."""
    reader = spool.reader(spool.inputs)

    def batches() -> Any:
        offset = 0
        for batch in reader:
            low, high = np.searchsorted(positions, [offset, offset + batch.num_rows])
            if high > low:
                yield batch.take(pa.array(positions[low:high] - offset))
            offset += batch.num_rows

    return pa.RecordBatchReader.from_batches(reader.schema, batches())


@dataclass
class SpoolAnswers:
    """Per distinct input its `sutro_run` STRUCT value, and per spool row its distinct input."""

    answers: pa.StructArray
    codes: np.ndarray

    def per_row(self) -> pa.StructArray:
        return self.answers.take(pa.array(self.codes))


class BatchRunner:
    """Answers a spool: from the answer cache where it can, by one batch job for the rest."""

    def __init__(self, session: SutroSession) -> None:
        self.session = session

    def answer(self, info: FunctionInfo, spool: Spool, options: BatchOptions) -> SpoolAnswers:
        """Every row's answer: cached distinct inputs from the cache (memory, then disk), the
        others sent as one job (re-attached when it exists), whose answers are then cached."""
        session = self.session
        distinct = distinct_inputs(info, spool)
        rows = self._cached(info, distinct.canonicals, options)
        hits = [i for i, row in enumerate(rows) if row is not None]
        missing = [i for i, row in enumerate(rows) if row is None]
        if missing:
            canonicals = [distinct.canonicals[i] for i in missing]
            job_id, _ = self.run(
                info, job_key(info, canonicals, False), spool_rows(spool, distinct.first_rows[missing]), options
            )
            results = session.backend.get_job_results(job_id)
            if results.num_rows != len(missing):
                raise ServerError(f"job {job_id} returned {results.num_rows} result rows for {len(missing)} input rows")
            fresh = answer_rows(info, results)
            for i, row in zip(missing, fresh, strict=True):
                rows[i] = row
            if session.cache_enabled and options.cache:  # failed rows are not cached: a re-run retries them
                self._remember(
                    info, [(c, row) for c, row in zip(canonicals, fresh, strict=True) if row.get("error") is None]
                )
        answers = pa.array(rows, ANSWER_TYPE)
        rows_per_input = np.bincount(distinct.codes, minlength=len(rows))
        failed = int(rows_per_input[answers.field("error").is_valid().to_numpy(zero_copy_only=False)].sum())
        session.count(cache_hits=int(rows_per_input[hits].sum()), rows_answered=spool.rows - failed, rows_failed=failed)
        return SpoolAnswers(answers, distinct.codes)

    def estimate(self, info: FunctionInfo, spool: Spool, options: BatchOptions) -> dict[str, Any] | None:
        """The estimate job of the rows `answer` would send (None when it would send none)."""
        distinct = distinct_inputs(info, spool)
        missing = [i for i, row in enumerate(self._cached(info, distinct.canonicals, options)) if row is None]
        if not missing:
            return None
        canonicals = [distinct.canonicals[i] for i in missing]
        reader = spool_rows(spool, distinct.first_rows[missing])
        _, job = self.run(info, job_key(info, canonicals, True), reader, options)
        return job

    def run(
        self, info: FunctionInfo, key: str, rows: pa.RecordBatchReader, options: BatchOptions
    ) -> tuple[str, dict[str, Any]]:
        """Submit `rows` as the job with content `key` (or re-attach to it) and wait: (job id, job)."""
        session = self.session
        job_id = self._known_job(key)
        if job_id is None:
            job_id = session.backend.submit_batch(
                info.name,
                rows,
                job_priority=options.job_priority,
                dry_run=options.dry_run,
                job_name=options.job_name,
                description=options.description,
                content_key=key,
            )
            session.answers.record_job(session.identity, key, job_id)
            session.count(jobs_submitted=1)
            job = session.client.wait_for_job(job_id, progress=session.progress)
            if not options.dry_run:
                session.count(
                    input_tokens=int(job.get("input_tokens") or 0),
                    output_tokens=int(job.get("output_tokens") or 0),
                    cost_usd=float(job.get("job_cost") or 0.0),
                )
        else:
            session.count(jobs_reattached=1)
            job = session.client.wait_for_job(job_id, progress=session.progress)
        return job_id, job

    def _cached(self, info: FunctionInfo, canonicals: list[str], options: BatchOptions) -> list[dict[str, Any] | None]:
        """Per canonical input its cached answer (memory, then disk, which also fills memory), or
        None; all None when the cache is off."""
        session = self.session
        if not (session.cache_enabled and options.cache):
            return [None] * len(canonicals)
        memory = session.answers.memory(session.identity, info.name, info.revision)
        rows = [memory.row_for_canonical(c) for c in canonicals]
        keys = {
            i: answer_key(session.identity, info.name, info.revision, canonicals[i])
            for i, row in enumerate(rows)
            if row is None
        }
        stored = session.answers.get_many(list(keys.values())) if keys else {}
        for i, key in keys.items():
            row = stored.get(key)
            if row is not None:
                rows[i] = row
                memory.remember(canonicals[i], row)
        return rows

    def _remember(self, info: FunctionInfo, answered: list[tuple[str, dict[str, Any]]]) -> None:
        session = self.session
        memory = session.answers.memory(session.identity, info.name, info.revision)
        for canonical, row in answered:
            memory.remember(canonical, row)
        session.answers.put_many(
            [(answer_key(session.identity, info.name, info.revision, c), row) for c, row in answered]
        )

    def _known_job(self, key: str) -> str | None:
        """The job this content already has on this backend, unless it failed or was cancelled."""
        job_id = self.session.answers.find_job(self.session.identity, key)
        if job_id is None:
            return None
        try:
            status = self.session.backend.get_job_status(job_id)
        except NotFoundError:
            return None
        return None if status in RESTARTABLE_STATUSES else job_id


def answer_rows(info: FunctionInfo, results: pa.Table) -> list[dict[str, Any]]:
    """Batch results -> `sutro_run` STRUCT values; `usage` is per job, so NULL."""
    kind = info.spec.kind if info.spec is not None else None
    rows = []
    for text, score, error in zip(
        results.column("outputs").to_pylist(),
        results.column("confidence_score").to_pylist(),
        results.column("error").to_pylist(),
        strict=True,
    ):
        if error is not None or text is None:
            rows.append({"error": error or "no answer"})
            continue
        answer = batch_answer(text, kind)
        if "response" in answer:  # classification
            confidence = answer.get("confidence")
            rows.append(
                {
                    "response": answer["response"],
                    "output": json.dumps(answer["response"], ensure_ascii=False),
                    "confidence": score if confidence is None else confidence,
                    "predictions": answer.get("predictions"),
                    "rationale": answer.get("rationale"),
                }
            )
        else:
            rows.append({"output": json.dumps(answer, ensure_ascii=False), "confidence": score})
    return rows


def batch_columns(info: FunctionInfo, answers: pa.StructArray) -> dict[str, pa.Array]:
    """`sutro_run` values -> the typed answer columns of `sutro_batch` (extraction fields become columns)."""
    kind = info.spec.kind if info.spec is not None else None
    if kind == "classification" or (kind is None and answers.field("response").null_count < len(answers)):
        columns = {f.name: answers.field(f.name) for f in CLASSIFICATION_COLUMNS}
    else:
        parsed = [json.loads(text) if text is not None else {} for text in answers.field("output").to_pylist()]
        parsed = [value if isinstance(value, dict) else {} for value in parsed]
        if info.spec is not None:
            fields = list(output_arrow_schema(info.spec))
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
    ) -> str:
        session = self.session
        info = session.function(fn)
        options = BatchOptions(
            id_column, int(job_priority or 0), bool(dry_run), job_name, description, cache is not False
        )
        sql_text = validate_read_query(query)
        cursor = session.connection.cursor()
        try:
            spool = spool_query(cursor, info, sql_text, id_column, session.workdir)
            if id_column is not None and spool.rows:
                _check_unique(cursor, spool)
        finally:
            cursor.close()
        # DuckDB's Python relations bind a statement, then run it: the second call of the same
        # statement reuses the first one's file instead of counting a re-attach.
        arguments = (fn, query, options)
        fingerprint = (content_key(info, spool, options.dry_run), spool.id_digest)
        bound = self._bound.pop(arguments, None)
        if bound is not None and bound[0] == fingerprint and os.path.exists(bound[1]):
            spool.remove()
            return bound[1]
        try:
            path = self._materialize(info, spool, options)
        finally:
            spool.remove()
        if binding_a_relation():
            self._bound[arguments] = (fingerprint, path)
        return path

    def _materialize(self, info: FunctionInfo, spool: Spool, options: BatchOptions) -> str:
        path = os.path.join(self.session.workdir, f"result-{uuid.uuid4().hex}.parquet")
        if options.dry_run:
            table = self._estimate(info, spool, options)
        else:
            table = self._answers(info, spool, options)
        pq.write_table(table, path)
        return path

    def _estimate(self, info: FunctionInfo, spool: Spool, options: BatchOptions) -> pa.Table:
        job = self.runner.estimate(info, spool, options)
        if job is None:  # nothing would be sent: no job
            return pa.table([[0], [0], [0], [0.0], [None]], schema=ESTIMATE_SCHEMA)
        values = [
            job.get("num_rows"),
            _first_set(job, "estimated_input_tokens", "input_tokens"),
            _first_set(job, "estimated_output_tokens", "output_tokens"),
            job.get("cost_estimate"),
            job["job_id"],
        ]
        return pa.table([[v] for v in values], schema=ESTIMATE_SCHEMA)

    def _answers(self, info: FunctionInfo, spool: Spool, options: BatchOptions) -> pa.Table:
        answered = self.runner.answer(info, spool, options)
        columns = batch_columns(info, answered.answers)
        first_name = options.id_column or "row_id"
        clash = {first_name, "confidence_score", "error"} & set(columns)
        if clash:
            raise QueryError(f"sutro_batch: answer field(s) {sorted(clash)} clash with result columns; rename them")
        columns["confidence_score"] = answered.answers.field("confidence")
        columns["error"] = answered.answers.field("error")
        per_row = pa.table(columns).take(pa.array(answered.codes))  # distinct inputs -> rows, in query order
        if options.id_column is None:
            first = pa.array(np.arange(spool.rows, dtype=np.int64))
        elif spool.rows:
            first = pq.read_table(spool.path, columns=[options.id_column]).column(0)
        else:
            first = spool.schema.empty_table().column(options.id_column)
        return per_row.add_column(0, first_name, first)


def _first_set(job: dict[str, Any], *keys: str) -> Any:
    return next((job[key] for key in keys if job.get(key) is not None), None)


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
