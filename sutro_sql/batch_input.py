"""Batch inputs, whatever form they come in, read one way by every backend.

A Function's inputs are text, as the v1 API sends them: a CSV cell is never
type-inferred ("00123" stays "00123", not 123), and bytes (a Latin-1 CSV cell,
a Parquet BINARY column, a `bytes` value in a row) are decoded as UTF-8, or the
input is refused naming the row and the column; a Function never sees the text
``b'caf\\xe9'``. Nothing is loaded whole: files are read in record batches.

Accepted: an iterable of row dicts (or strings, for one-input Functions), a
pyarrow Table, RecordBatch or RecordBatchReader, anything speaking the Arrow C
stream protocol (a polars DataFrame), a pandas DataFrame, or a local
.csv/.parquet path.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa

from .errors import ValidationError
from .inputs import FunctionRef, canonical_json

#: Rows per batch handed to a submission loop.
BATCH_ROWS = 1000
#: File suffixes a local batch input may have.
FILE_SUFFIXES = (".csv", ".parquet")


def batch_reader(data: Any) -> pa.RecordBatchReader:
    """Any Arrow-shaped batch input (Table, RecordBatch, RecordBatchReader, Arrow C stream such as
    a polars DataFrame, pandas DataFrame, a .csv/.parquet path, or a list of row dicts) as one
    RecordBatchReader whose text columns are text: CSV columns as strings, binary columns decoded
    as UTF-8. Non-text columns (an int id column) keep their type."""
    if isinstance(data, (str, os.PathLike)):
        return _file_reader(Path(data))
    if isinstance(data, pa.RecordBatchReader):
        return _decoded(data.schema, data)
    if isinstance(data, pa.Table):
        return _decoded(data.schema, data.to_batches(max_chunksize=BATCH_ROWS))
    if isinstance(data, pa.RecordBatch):
        return _decoded(data.schema, [data])
    if hasattr(data, "__arrow_c_stream__"):
        return batch_reader(pa.RecordBatchReader.from_stream(data))
    if type(data).__module__.startswith("pandas"):
        return batch_reader(pa.Table.from_pandas(data, preserve_index=False))
    return _rows_reader(data)


def iter_row_batches(data: Any) -> Iterator[list[Any]]:
    """Python rows (dicts, or strings for one-input Functions) in input order, in lists of up to
    BATCH_ROWS: Arrow-shaped inputs through `batch_reader`, iterables of rows as given (their
    values keep their Python types, so mixed-type columns are fine) with bytes decoded alike."""
    for batch in iter_input_batches(data):
        yield batch.to_pylist() if isinstance(batch, pa.RecordBatch) else batch


def iter_input_batches(data: Any) -> Iterator[pa.RecordBatch | list[Any]]:
    """`iter_row_batches`, but Arrow-shaped inputs stay record batches (non-empty), so a reader
    can convert whole columns at once."""
    if isinstance(data, (str, os.PathLike, pa.RecordBatchReader, pa.Table, pa.RecordBatch)) or (
        hasattr(data, "__arrow_c_stream__") or type(data).__module__.startswith("pandas")
    ):
        yield from (batch for batch in batch_reader(data) if batch.num_rows)
        return
    rows = (_decoded_row(row, index) for index, row in enumerate(_row_iterable(data)))
    while batch := list(itertools.islice(rows, BATCH_ROWS)):
        yield batch


def _rows_reader(data: Any) -> pa.RecordBatchReader:
    """Row dicts as record batches of BATCH_ROWS, read lazily; the first batch sets the schema."""
    rows = (_object_row(row, index) for index, row in enumerate(_row_iterable(data)))

    def batches(schema: pa.Schema | None) -> Iterator[pa.RecordBatch]:
        while chunk := list(itertools.islice(rows, BATCH_ROWS)):
            try:
                yield pa.RecordBatch.from_pylist(chunk, schema=schema)
            except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
                raise ValidationError(f"inputs: the rows do not form columns of one type each: {exc}") from None

    first = next(batches(None), None)
    if first is None:
        return pa.RecordBatchReader.from_batches(pa.schema([]), [])
    return _decoded(first.schema, itertools.chain([first], batches(first.schema)))


def _row_iterable(data: Any) -> Iterable[Any]:
    if isinstance(data, (dict, bytes)) or not isinstance(data, Iterable):
        raise ValidationError(
            f"Batch data must be a list of rows, an Arrow table or reader, or a .csv/.parquet path, "
            f"not {type(data).__name__}."
        )
    return data


def _decoded_row(row: Any, index: int) -> Any:
    """The row with bytes decoded; text that is not valid Unicode (a lone surrogate) refused."""
    if isinstance(row, dict):
        for name, value in row.items():
            if isinstance(value, str):
                _check_unicode(value, index, name)
        if any(isinstance(value, (bytes, bytearray)) for value in row.values()):
            return {name: _text(value, index, name) for name, value in row.items()}
        return row
    if isinstance(row, str):
        _check_unicode(row, index, "input")
        return row
    raise ValidationError(f"inputs: row {index} is a {type(row).__name__}, expected an object")


def _object_row(row: Any, index: int) -> dict[str, Any]:
    if not isinstance(row, dict):
        raise ValidationError(f"inputs: row {index} is a {type(row).__name__}; Arrow columns need objects")
    return _decoded_row(row, index)


def _text(value: Any, index: int, column: str) -> Any:
    if not isinstance(value, (bytes, bytearray)):
        return value
    try:
        return bytes(value).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _not_utf8(index, column, exc) from None


def _check_unicode(text: str, index: int, column: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValidationError(
            f"inputs: row {index} (0-based), column {column!r}: not valid Unicode text "
            f"(a lone surrogate {text[exc.start]!r} at position {exc.start})."
        ) from None


def _not_utf8(index: int, column: str, exc: UnicodeDecodeError) -> ValidationError:
    return ValidationError(
        f"inputs: row {index} (0-based), column {column!r}: not UTF-8 text "
        f"(byte 0x{exc.object[exc.start]:02x} at position {exc.start}); re-encode the data as UTF-8."
    )


def _is_binary(kind: pa.DataType) -> bool:
    return (
        pa.types.is_binary(kind)
        or pa.types.is_large_binary(kind)
        or pa.types.is_fixed_size_binary(kind)
        or pa.types.is_binary_view(kind)
    )


def _decoded(schema: pa.Schema, batches: Iterable[pa.RecordBatch]) -> pa.RecordBatchReader:
    """`batches` with every binary column decoded as UTF-8 strings (checked, row by row)."""
    binary = [i for i, field in enumerate(schema) if _is_binary(field.type)]
    if not binary:
        return pa.RecordBatchReader.from_batches(schema, batches)
    text_schema = schema
    for i in binary:
        text_schema = text_schema.set(i, pa.field(schema.field(i).name, pa.string(), schema.field(i).nullable))

    def decoded() -> Iterator[pa.RecordBatch]:
        offset = 0
        for batch in batches:
            columns = list(batch.columns)
            for i in binary:
                columns[i] = _text_array(columns[i], schema.field(i).name, offset)
            yield pa.RecordBatch.from_arrays(columns, schema=text_schema)
            offset += batch.num_rows

    return pa.RecordBatchReader.from_batches(text_schema, decoded())


def _text_array(values: pa.Array, column: str, offset: int) -> pa.Array:
    try:
        return values.cast(pa.string())  # checks UTF-8
    except pa.ArrowInvalid:
        for index, value in enumerate(values.to_pylist()):
            _text(value, offset + index, column)
        raise


def _file_reader(path: Path) -> pa.RecordBatchReader:
    text = str(path)
    if text.startswith(("http://", "https://", "s3://", "gs://")):
        raise ValidationError(f"The local deployment reads local files only, not {text!r}; download it first.")
    suffix = path.suffix.lower()
    if suffix not in FILE_SUFFIXES:
        raise ValidationError(f"{text}: expected a .csv or .parquet file.")
    if not path.is_file():
        raise ValidationError(f"{text}: no such file.")
    try:
        if suffix == ".csv":
            import pyarrow.csv as pacsv

            names = pacsv.open_csv(path).schema.names
            # Every column as raw bytes, decoded below: no type inference, and a bad cell is named.
            options = pacsv.ConvertOptions(column_types={name: pa.binary() for name in names})
            reader = pacsv.open_csv(path, read_options=pacsv.ReadOptions(block_size=1 << 20), convert_options=options)
            return _decoded(reader.schema, _guarded(reader, text))
        import pyarrow.parquet as pq

        parquet = pq.ParquetFile(path)
        return _decoded(parquet.schema_arrow, _guarded(parquet.iter_batches(batch_size=BATCH_ROWS), text))
    except (pa.ArrowInvalid, pa.ArrowTypeError, OSError) as exc:
        raise ValidationError(f"{text}: cannot read: {exc}") from None


def _guarded(batches: Iterable[pa.RecordBatch], text: str) -> Iterator[pa.RecordBatch]:
    """A file's batches, read lazily; a file that turns out broken halfway is a ValidationError."""
    try:
        yield from batches
    except (pa.ArrowInvalid, pa.ArrowTypeError, OSError) as exc:
        raise ValidationError(f"{text}: cannot read: {exc}") from None


def batch_source(data: Any, *, id_column: str | None = None) -> Any:
    """What `batch_run_function` hands the backend, checked: DataFrames become Arrow tables,
    paths and Arrow pass through (the backend streams them with `iter_row_batches`), lists of
    rows pass as they are. An `id_column` must exist and hold a value for every row, each once."""
    if isinstance(data, os.PathLike):
        data = os.fspath(data)
    if isinstance(data, str):
        return _batch_file(data, id_column)
    pandas = sys.modules.get("pandas")
    polars = sys.modules.get("polars")
    if pandas is not None and isinstance(data, pandas.DataFrame):
        data = pa.Table.from_pandas(data, preserve_index=False)
    elif polars is not None and isinstance(data, polars.DataFrame):
        data = data.to_arrow()
    if isinstance(data, pa.RecordBatchReader):
        _check_id_column(id_column, data.schema.names, "the data")
        return data
    if isinstance(data, pa.Table):
        _check_id_column(id_column, data.schema.names, "the data")
        if id_column is not None:
            _check_unique_ids(data.column(id_column), id_column)
        return data
    if isinstance(data, (list, tuple)):
        if id_column is not None:
            ids = [row.get(id_column) if isinstance(row, dict) else None for row in data]
            _check_unique_ids(pa.array([None if v is None else str(v) for v in ids], pa.string()), id_column)
        return data
    raise TypeError(
        "data must be a list of dicts, a pandas or polars DataFrame, a pyarrow Table, or a path to "
        f"a .csv/.parquet file, not {type(data).__name__}"
    )


def _batch_file(path: str, id_column: str | None) -> str:
    if path.startswith(("http://", "https://")):
        return path  # a URL: the deployment downloads it (v1 §5.2)
    suffix = Path(path).suffix.lower()
    if suffix not in FILE_SUFFIXES:
        raise ValidationError(f"{path}: batch input files must be .csv or .parquet.")
    if not Path(path).is_file():
        raise ValidationError(f"{path}: no such file.")
    if id_column is not None:
        ids = _file_column(Path(path), id_column)
        _check_unique_ids(ids, id_column)
    return path


def _file_column(path: Path, column: str) -> pa.ChunkedArray:
    """One column of a .csv/.parquet file (as text for CSV), or a ValidationError naming it."""
    if path.suffix.lower() == ".parquet":
        import pyarrow.parquet as pq

        _check_id_column(column, pq.read_schema(path).names, str(path))
        return pq.read_table(path, columns=[column]).column(0)
    import pyarrow.csv as pacsv

    reader = pacsv.open_csv(path)
    _check_id_column(column, reader.schema.names, str(path))
    options = pacsv.ConvertOptions(include_columns=[column], column_types={column: pa.string()})
    return pacsv.read_csv(path, convert_options=options).column(0)


def _check_unique_ids(ids: pa.Array | pa.ChunkedArray, id_column: str) -> None:
    """Ids carried into results must join back exactly: one per row, none repeated."""
    import pyarrow.compute as pc

    missing = ids.null_count
    if missing:
        first = next(i for i, value in enumerate(ids.is_null().to_pylist()) if value)
        raise ValidationError(f"id_column {id_column!r}: row {first} (0-based) has no id ({missing} rows in all).")
    counts = pc.value_counts(ids)
    repeated = [item["values"] for item in counts.to_pylist() if item["counts"] > 1]
    if repeated:
        raise ValidationError(
            f"id_column {id_column!r} is not unique: {len(repeated)} value(s) repeat, e.g. {repeated[0]!r}; "
            "use a key column, or leave id_column out to match results by position."
        )


def _check_id_column(id_column: str | None, columns: list[str], where: str) -> None:
    if id_column is not None and id_column not in columns:
        raise ValidationError(f"id_column {id_column!r} is not a column of {where} (columns: {columns}).")


def batch_content_key(ref: FunctionRef, data: Any, *, id_column: str | None, dry_run: bool) -> str | None:
    """The content key of a batch: same Function revision, same rows in the same order (and id
    column) -> same key, so a re-run re-attaches. None for inputs that can be read only once (an
    Arrow stream) or live elsewhere (a URL): those are always submitted."""
    digest = hashlib.sha256()
    if isinstance(data, str):
        if data.startswith(("http://", "https://")):
            return None
        with open(data, "rb") as file:
            for block in iter(lambda: file.read(1 << 20), b""):
                digest.update(block)
    elif isinstance(data, pa.Table):
        for batch in data.to_batches():
            for row in batch.to_pylist():
                digest.update(canonical_json(row).encode())
                digest.update(b"\x1e")
    elif isinstance(data, (list, tuple)):
        for index, row in enumerate(data):
            try:
                digest.update(canonical_json(row).encode())
            except ValidationError as exc:
                raise ValidationError(f"inputs: row {index} (0-based): {exc.detail}") from None
            digest.update(b"\x1e")
    else:
        return None
    parts = ("batch_run_function/1", ref.name, ref.revision, "estimate" if dry_run else "run", id_column or "")
    return hashlib.sha256("\x1f".join((*parts, digest.hexdigest())).encode()).hexdigest()
