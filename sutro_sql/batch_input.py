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

import itertools
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa

from .errors import ValidationError

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
    if isinstance(data, (str, os.PathLike, pa.RecordBatchReader, pa.Table, pa.RecordBatch)) or (
        hasattr(data, "__arrow_c_stream__") or type(data).__module__.startswith("pandas")
    ):
        for batch in batch_reader(data):
            if batch.num_rows:
                yield batch.to_pylist()
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
    if isinstance(row, dict):
        if any(isinstance(value, (bytes, bytearray)) for value in row.values()):
            return {name: _text(value, index, name) for name, value in row.items()}
        return row
    if isinstance(row, str):
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
