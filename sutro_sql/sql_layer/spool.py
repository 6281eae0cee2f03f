"""The rows of a `sutro_batch` query on disk, and what identifies them.

`spool_query` runs the (validated) query on a cursor and streams it into a Parquet
spool: the id column (if any) and each row's input STRUCT as JSON text, exactly what
`sutro_run` is given (DuckDB's `to_json`), so both paths canonicalize an input the
same way (`sutro_sql.inputs`). `distinct_inputs` dedups the spooled rows by canonical
input; `content_key` (the rows) and `job_key` (the distinct inputs sent) identify a
statement and its job; `spool_payloads` streams what the Function is sent.
"""

from __future__ import annotations

import hashlib
import io
import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pa_json
import pyarrow.parquet as pq

from ..backends.base import BatchInput
from ..errors import QueryError
from ..inputs import FunctionRef
from ..sql_text import json_object, quote

#: Rows per Arrow record batch read from the query, and per step that touches each row in Python
#: (cache lookups, job rows): small enough that such a step's Python objects stay a few MB.
SPOOL_BATCH_ROWS = 8_192
#: The spool's column holding each row's input STRUCT as JSON text.
INPUT_COLUMN = "__sutro_input"
#: The spool's column holding each row's canonical input, when DuckDB can write it (`_canonical_sql`).
CANONICAL_COLUMN = "__sutro_canonical"
#: ... and its DuckDB hash (uint64), which dedups a spool in numpy (the texts are compared after).
HASH_COLUMN = "__sutro_canonical_hash"
#: Column types whose values DuckDB's `to_json` and CAST write as `sutro_sql.inputs` does.
_PLAIN_TYPES = frozenset(
    {"VARCHAR", "BOOLEAN", "TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT"}
    | {"UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT", "UHUGEINT"}
)
#: A \\u00XX escape with an upper-case hex digit: DuckDB writes control characters so, Python's
#: json lower-case; rows holding one are canonicalized by Python.
_UPPER_HEX_ESCAPE = r"\\u00([A-F][0-9A-F]|[0-9A-F][A-F])"


@dataclass
class Spool:
    """A query's rows on disk: the id column (if any) then each row's input STRUCT as JSON text."""

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


def spool_query(
    con: duckdb.DuckDBPyConnection,
    ref: FunctionRef,
    query: str,
    id_column: str | None,
    workdir: str,
    *,
    input_json: str | None = None,
) -> Spool:
    """Run `query` on `con` and stream its rows into a spool file (see the module docstring).
    `input_json`: a column of `query` that already holds each row's input as `to_json` text
    (the `auto_batch` lift); by default it is built from the Function's input columns."""
    try:
        relation = con.sql(query)
        columns = relation.columns
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
    inputs = [input_json] if input_json else _input_columns(ref, columns, id_column)
    select = [f"{quote(id_column)}, CAST({quote(id_column)} AS VARCHAR) AS __sutro_id_text"] if id_column else []
    select.append(
        f"{f'CAST({quote(input_json)} AS VARCHAR)' if input_json else _input_struct_json(inputs)} AS {INPUT_COLUMN}"
    )
    canonical = (
        None if input_json else _canonical_sql(ref, dict(zip(columns, map(str, relation.types), strict=True)), inputs)
    )
    if canonical is not None:
        select += [f"{canonical} AS {CANONICAL_COLUMN}", f"hash({canonical}) AS {HASH_COLUMN}"]
    text_query = f"SELECT {', '.join(select)} FROM (\n{query}\n) AS __sutro_source"

    path = os.path.join(workdir, f"spool-{uuid.uuid4().hex}.parquet")
    digests = {c: _ColumnDigest() for c in [INPUT_COLUMN, *(["__sutro_id_text"] if id_column else [])]}
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
        release_unused_memory()
    input_digest = hashlib.sha256(f"{','.join(inputs)}\x1f{digests[INPUT_COLUMN].hexdigest()}".encode()).hexdigest()
    id_digest = digests["__sutro_id_text"].hexdigest() if id_column else ""
    schema = reader.schema.remove(reader.schema.get_field_index("__sutro_id_text")) if id_column else reader.schema
    return Spool(path if writer else "", rows, inputs, id_column, input_digest, id_digest, schema)


def release_unused_memory() -> None:
    """Hand the memory Arrow's pool keeps after a step over all rows back to the system (mimalloc
    holds freed blocks for reuse, and a process's peak would count them twice)."""
    pa.default_memory_pool().release_unused()


def _input_columns(ref: FunctionRef, columns: list[str], id_column: str | None) -> list[str]:
    if ref.spec is None:  # remote: every other column is an input; the deployment checks them
        return [c for c in columns if c != id_column]
    missing = [f.name for f in ref.spec.inputs if f.required and f.name not in columns]
    if missing:
        raise QueryError(
            f"sutro_batch: Function {ref.name!r} needs input column(s) {missing}, "
            f"which the query does not return (columns: {columns})"
        )
    return [name for name in ref.spec.input_names if name in columns]


def _canonical_sql(ref: FunctionRef, types: dict[str, str], inputs: list[str]) -> str | None:
    """SQL for each row's canonical input (`inputs.canonical_json` of what the Function is sent:
    keys sorted; for a local Function every input, null -> "", values as text), or None when an
    input column's type is one whose text DuckDB may write differently (then Python does it)."""
    if any(types[name] not in _PLAIN_TYPES for name in inputs):
        return None
    if ref.spec is None:  # remote: the row's values as they are
        fields = [(name, quote(name)) for name in sorted(inputs)]
    else:
        present = set(inputs)
        fields = [
            (name, f"coalesce(CAST({quote(name)} AS VARCHAR), '')" if name in present else "''")
            for name in sorted(ref.spec.input_names)
        ]
    if len({name.lower() for name, _ in fields}) < len(fields):
        return None  # DuckDB's STRUCT keys ignore case
    return json_object(fields)


def _input_struct_json(columns: list[str]) -> str:
    """SQL for the JSON text of a row's input STRUCT: what `sutro_run({'a': a, ...})` is given."""
    return json_object([(name, quote(name)) for name in columns])


class _ColumnDigest:
    """sha256 of a text column's values, the same however the rows are split into batches."""

    def __init__(self) -> None:
        self._valid = hashlib.sha256()
        self._lengths = hashlib.sha256()
        self._data = hashlib.sha256()

    def update(self, column: pa.Array) -> None:
        column = column.cast(pa.large_string())
        self._valid.update(column.is_valid().cast(pa.uint8()).to_numpy().tobytes())  # (bools would import pandas)
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


def content_key(ref: FunctionRef, spool: Spool, dry_run: bool) -> str:
    """Same Function revision + same spooled rows in the same order -> same key (ids are not part of
    it): how a second bind of one statement is recognized."""
    parts = ("sutro_batch/1", ref.name, ref.revision, "estimate" if dry_run else "run", str(spool.rows))
    return hashlib.sha256("\x1f".join((*parts, spool.input_digest)).encode()).hexdigest()


def job_key(ref: FunctionRef, canonicals: pa.Array, dry_run: bool) -> str:
    """The content key of the job that sends `canonicals` (distinct inputs, in query order):
    sha256 over each canonical text followed by \\x1e, hashed a slice at a time."""
    digest = hashlib.sha256()
    for start in range(0, len(canonicals), SPOOL_BATCH_ROWS):
        texts = canonicals.slice(start, SPOOL_BATCH_ROWS).to_pylist()
        digest.update(("\x1e".join(texts) + "\x1e").encode())
    parts = ("sutro_batch/2", ref.name, ref.revision, "estimate" if dry_run else "run", str(len(canonicals)))
    return hashlib.sha256("\x1f".join((*parts, digest.hexdigest())).encode()).hexdigest()


@dataclass
class DistinctInputs:
    """A spool's rows grouped by canonical input: what the cache is asked and a job is sent.
    Arrow and numpy only: nothing here is a Python object per row."""

    canonicals: pa.Array  # distinct inputs (large_string), in order of first appearance
    first_rows: np.ndarray  # per distinct input, the spool row it first appears on
    codes: np.ndarray  # per spool row, its distinct input


def distinct_inputs(ref: FunctionRef, spool: Spool) -> DistinctInputs:
    """Canonicalize every spooled row the way `sutro_run` canonicalizes an input, and dedup.
    When DuckDB wrote the canonical texts and their hashes in the spool, rows are grouped by
    hash in numpy and the texts then checked equal batch by batch (a hash collision falls back),
    so only the distinct texts are ever held; otherwise Arrow's hash kernels group the texts."""
    if spool.rows and HASH_COLUMN in spool.schema.names:
        hashes = np.concatenate([b.column(0).to_numpy() for b in spool.reader([HASH_COLUMN])])
        unique, first, inverse = np.unique(hashes, return_index=True, return_inverse=True)
        order = np.argsort(first, kind="stable")  # distinct inputs in order of first appearance
        rank = np.empty(len(unique), np.int64)
        rank[order] = np.arange(len(unique))
        first_rows, codes = first[order].astype(np.int64), rank[inverse.reshape(-1)]
        del hashes, unique, first, inverse, order, rank
        canonicals = _gathered(lambda: _canonical_batches(ref, spool), first_rows)
        if _same_texts(_canonical_batches(ref, spool), canonicals, first_rows, codes):
            release_unused_memory()
            return DistinctInputs(canonicals, first_rows, codes)
    rows = pa.chunked_array([pa.array([], pa.large_string()), *_canonical_batches(ref, spool)], pa.large_string())
    canonicals = pc.unique(rows)
    codes = pc.index_in(rows, value_set=canonicals).to_numpy().astype(np.int64)
    first_rows = np.unique(codes, return_index=True)[1].astype(np.int64)
    return DistinctInputs(canonicals, first_rows, codes)


def canonical_texts(ref: FunctionRef, spool: Spool, positions: np.ndarray) -> Iterator[pa.Array]:
    """The canonical inputs of the spool rows at `positions` (ascending), a batch at a time."""
    return _taken(_canonical_batches(ref, spool), positions)


def _canonical_batches(ref: FunctionRef, spool: Spool) -> Iterator[pa.LargeStringArray]:
    """Each spool batch's canonical inputs: from the spool when DuckDB wrote them (Python redoes
    rows with an upper-case escape), else by Python (each distinct JSON text of a batch once)."""
    written = CANONICAL_COLUMN in spool.schema.names
    for batch in spool.reader([INPUT_COLUMN, *([CANONICAL_COLUMN] if written else [])]) if spool.rows else []:
        texts = batch.column(0)
        if written:
            canonical = batch.column(1).cast(pa.large_string())
            redo = pc.match_substring_regex(canonical, _UPPER_HEX_ESCAPE)
            if pc.any(redo).as_py():
                fixed = [ref.canonical_from_json(text)[1] for text in texts.filter(redo).to_pylist()]
                canonical = pc.replace_with_mask(canonical, redo, pa.array(fixed, pa.large_string()))
            yield canonical
            continue
        unique = pc.unique(texts)
        canonical = [ref.canonical_from_json(text)[1] for text in unique.to_pylist()]
        yield pa.array(canonical, pa.large_string()).take(pc.index_in(texts, value_set=unique))


def _gathered(batches: Callable[[], Iterator[pa.Array]], positions: np.ndarray) -> pa.LargeStringArray:
    """The texts at `positions` (ascending rows of `batches`) as one array, built in buffers
    sized by a first pass, so it is never held twice (as pieces and then concatenated)."""
    lengths = [np.zeros(1, np.int64)]
    lengths += [pc.binary_length(piece).to_numpy().astype(np.int64) for piece in _taken(batches(), positions)]
    offsets = np.cumsum(np.concatenate(lengths))
    data = np.empty(int(offsets[-1]), np.uint8)
    at = 0
    for piece in _taken(batches(), positions):
        bounds = np.frombuffer(piece.buffers()[1], np.int64)[piece.offset : piece.offset + len(piece) + 1]
        size = int(bounds[-1] - bounds[0])
        if size:
            data[at : at + size] = np.frombuffer(piece.buffers()[2], np.uint8, count=size, offset=int(bounds[0]))
        at += size
    return pa.LargeStringArray.from_buffers(len(positions), pa.py_buffer(offsets), pa.py_buffer(data))


def _same_texts(
    batches: Iterator[pa.Array], canonicals: pa.LargeStringArray, first_rows: np.ndarray, codes: np.ndarray
) -> bool:
    """Does every row repeating an earlier one (same hash) hold the very text of that one?"""
    offset = 0
    for batch in batches:
        batch_codes = codes[offset : offset + len(batch)]
        repeats = np.flatnonzero(first_rows[batch_codes] != np.arange(offset, offset + len(batch)))
        offset += len(batch)
        if (
            len(repeats)
            and not pc.all(
                pc.equal(batch.take(pa.array(repeats)), canonicals.take(pa.array(batch_codes[repeats])))
            ).as_py()
        ):
            return False
    return True


def _taken(batches: Iterator[pa.Array], positions: np.ndarray) -> Iterator[pa.Array]:
    """The values at `positions` (ascending spool rows), a batch at a time."""
    offset = 0
    for batch in batches:
        low, high = np.searchsorted(positions, [offset, offset + len(batch)])
        if high > low:
            yield batch.take(pa.array(positions[low:high] - offset))
        offset += len(batch)


def job_rows(ref: FunctionRef, spool: Spool, canonicals: pa.Array, positions: np.ndarray) -> BatchInput:
    """What a job is sent for the distinct inputs `canonicals`, first seen at spool rows
    `positions`: for a local Function, its input columns as text read from the canonical JSON by
    Arrow (the local deployment stores them a batch at a time); for a remote one, the rows' values."""
    if ref.spec is None:
        return spool_payloads(ref, spool, positions)
    schema = pa.schema([(name, pa.string()) for name in ref.spec.input_names])
    options = pa_json.ParseOptions(explicit_schema=schema, unexpected_field_behavior="error")

    def batches() -> Iterator[pa.RecordBatch]:
        for start in range(0, len(canonicals), SPOOL_BATCH_ROWS):
            lines = "\n".join(canonicals.slice(start, SPOOL_BATCH_ROWS).to_pylist()).encode()
            yield from pa_json.read_json(io.BytesIO(lines), parse_options=options).to_batches()

    return pa.RecordBatchReader.from_batches(schema, batches())


def spool_payloads(ref: FunctionRef, spool: Spool, positions: np.ndarray) -> Iterator[dict[str, Any] | str]:
    """What the Function is sent for the spool's rows at `positions` (ascending), streamed."""
    for texts in _taken((batch.column(0) for batch in spool.reader([INPUT_COLUMN])), positions):
        for text in texts.to_pylist():
            yield ref.canonical_from_json(text)[0]
