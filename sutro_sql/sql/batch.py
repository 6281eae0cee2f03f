"""`sutro_batch(fn, query, ...)`: one batch job for a query's rows, served as a typed Parquet table.

DuckDB has no Python table functions, so `sutro_batch` is a TEMP table macro over
``read_parquet(_sutro_batch(...))``: this UDF runs once per bind with constant
arguments, and returns the path of a Parquet file holding the answers.

Steps: the query (validated as one read query) runs on a cursor and streams as
Arrow record batches into a spool Parquet file, every input column cast to text
the way a Function converts input, while a digest of the rows is computed
(independent of how DuckDB chunks them). That digest, with the Function and its
revision, is the job's content key: a re-run, a second bind of the same
statement, or a re-run after a crash finds the same job (in the ledger under the
backend's home, and on the backend via `content_key`) and submits nothing new.
The client waits with a progress bar on stderr, then the results become the id
column (or `row_id`, the 0-based ordinal in the query's order), the typed answer
columns, `confidence_score` and `error` (NULL for rows that were answered).

The inner query runs on a cursor, which sees committed tables and views only,
not this connection's TEMP tables or uncommitted rows; such a query fails with a
message saying so. `sutro_sql.sql(con, ...)` serves that case: it runs the inner
query on the connection itself first (see `sutro_sql.sql.query`).
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from dataclasses import dataclass
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..errors import NotFoundError, QueryError, ServerError
from ..functions import output_arrow_schema
from .answers import ANSWER_TYPE, CLASSIFICATION_COLUMNS, batch_answer
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
    """Same Function revision + same input rows in the same order -> same key (ids are not part of it)."""
    parts = ("sutro_batch/1", info.name, info.revision, "estimate" if dry_run else "run", str(spool.rows))
    return hashlib.sha256("\x1f".join((*parts, spool.input_digest)).encode()).hexdigest()


class BatchRunner:
    """Submits (or re-attaches to) the job for a spool, waits, and shapes its results."""

    def __init__(self, session: SutroSession) -> None:
        self.session = session

    def run(self, info: FunctionInfo, spool: Spool, options: BatchOptions) -> tuple[dict[str, Any], pa.Table | None]:
        """(final job object, results table; None for a dry run). Needs spool.rows > 0."""
        session = self.session
        key = content_key(info, spool, options.dry_run)
        job_id = self._known_job(key)
        if job_id is None:
            job_id = session.backend.submit_batch(
                info.name,
                spool.reader(spool.inputs),
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
        if options.dry_run:
            return job, None
        results = session.backend.get_job_results(job_id)
        if results.num_rows != spool.rows:
            raise ServerError(f"job {job_id} returned {results.num_rows} result rows for {spool.rows} input rows")
        failed = results.num_rows - pc.sum(results.column("error").is_null()).as_py()
        session.count(rows_answered=results.num_rows - failed, rows_failed=failed)
        return job, results

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


def answer_columns(info: FunctionInfo, results: pa.Table) -> pa.Table:
    """Results -> the typed answer columns of `sutro_batch` (before `confidence_score` and `error`)."""
    kind = info.spec.kind if info.spec is not None else None
    parsed = [batch_answer(text, kind) for text in results.column("outputs").to_pylist()]
    scores = results.column("confidence_score").to_pylist()
    if kind == "classification" or (kind is None and any("response" in p for p in parsed)):
        for answer, score in zip(parsed, scores, strict=True):
            if answer and answer.get("confidence") is None:
                answer["confidence"] = score
        schema = CLASSIFICATION_COLUMNS
        return pa.table({f.name: _typed([p.get(f.name) for p in parsed], f.type) for f in schema}, schema=schema)
    if info.spec is not None:
        fields = list(output_arrow_schema(info.spec))
    else:
        names = list(dict.fromkeys(name for answer in parsed for name in answer))
        fields = [pa.field(name, pa.array([p.get(name) for p in parsed]).type) for name in names]
    return pa.table({f.name: _typed([p.get(f.name) for p in parsed], f.type) for f in fields})


def answer_structs(info: FunctionInfo, results: pa.Table) -> pa.Array:
    """Results -> `sutro_run` STRUCT values (for the `auto_batch` lift); `usage` is per job, so NULL."""
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
    return pa.array(rows, ANSWER_TYPE)


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
    ) -> str:
        session = self.session
        info = session.function(fn)
        options = BatchOptions(id_column, int(job_priority or 0), bool(dry_run), job_name, description)
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
        if spool.rows == 0:
            return pa.table([[0], [0], [0], [0.0], [None]], schema=ESTIMATE_SCHEMA)
        job, _ = self.runner.run(info, spool, options)
        values = [
            job.get("num_rows"),
            _first_set(job, "estimated_input_tokens", "input_tokens"),
            _first_set(job, "estimated_output_tokens", "output_tokens"),
            job.get("cost_estimate"),
            job["job_id"],
        ]
        return pa.table([[v] for v in values], schema=ESTIMATE_SCHEMA)

    def _answers(self, info: FunctionInfo, spool: Spool, options: BatchOptions) -> pa.Table:
        if spool.rows == 0:  # no rows: no job, an empty table of the right shape
            results = pa.table(
                {
                    "outputs": pa.array([], pa.string()),
                    "confidence_score": pa.array([], pa.float64()),
                    "error": pa.array([], pa.string()),
                }
            )
            ids = spool.schema.empty_table().select([options.id_column]) if options.id_column else None
        else:
            _, results = self.runner.run(info, spool, options)
            ids = pq.read_table(spool.path, columns=[options.id_column]) if options.id_column else None
        errors = results.column("error")
        answers = answer_columns(info, results)
        first = ids.column(0) if ids is not None else pa.array(np.arange(spool.rows, dtype=np.int64))
        first_name = options.id_column or "row_id"
        clash = {first_name, "confidence_score", "error"} & set(answers.column_names)
        if clash:
            raise QueryError(f"sutro_batch: answer field(s) {sorted(clash)} clash with result columns; rename them")
        columns = {first_name: first, **{name: answers.column(name) for name in answers.column_names}}
        columns["confidence_score"] = results.column("confidence_score")
        columns["error"] = errors
        return pa.table(columns)


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
