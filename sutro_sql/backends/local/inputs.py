"""Batch inputs as a stream of row lists, whatever form they come in, never loaded whole.

Accepted: an iterable of dicts (or strings, for one-input Functions), a pyarrow
Table, RecordBatch or RecordBatchReader, anything speaking the Arrow C stream
protocol (a polars DataFrame), a pandas DataFrame, or a local .csv/.parquet path
(read in record batches).
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa

from ...errors import ValidationError

#: Rows per batch handed to the submission loop.
BATCH_ROWS = 1000


def iter_row_batches(data: Any) -> Iterator[list[Any]]:
    """Yield lists of rows (dicts, or strings for one-input Functions) in input order."""
    if isinstance(data, (str, os.PathLike)):
        yield from _file_batches(Path(data))
    elif isinstance(data, pa.RecordBatchReader):
        yield from _arrow_batches(data)
    elif isinstance(data, pa.Table):
        yield from _arrow_batches(data.to_batches(max_chunksize=BATCH_ROWS))
    elif isinstance(data, pa.RecordBatch):
        yield from _arrow_batches([data])
    elif hasattr(data, "__arrow_c_stream__"):
        yield from _arrow_batches(pa.RecordBatchReader.from_stream(data))
    elif type(data).__module__.startswith("pandas"):
        yield from _arrow_batches(pa.Table.from_pandas(data, preserve_index=False).to_batches(BATCH_ROWS))
    elif isinstance(data, (dict, bytes)) or not isinstance(data, Iterable):
        raise ValidationError(
            f"Batch data must be a list of rows, an Arrow table or reader, or a .csv/.parquet path, "
            f"not {type(data).__name__}."
        )
    else:
        rows = iter(data)
        while batch := list(itertools.islice(rows, BATCH_ROWS)):
            yield batch


def _arrow_batches(batches: Iterable[pa.RecordBatch]) -> Iterator[list[dict[str, Any]]]:
    for batch in batches:
        if batch.num_rows:
            yield batch.to_pylist()


def _file_batches(path: Path) -> Iterator[list[dict[str, Any]]]:
    text = str(path)
    if text.startswith(("http://", "https://", "s3://", "gs://")):
        raise ValidationError(f"The local deployment reads local files only, not {text!r}; download it first.")
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".parquet"):
        raise ValidationError(f"{text}: expected a .csv or .parquet file.")
    if not path.is_file():
        raise ValidationError(f"{text}: no such file.")
    try:
        if suffix == ".csv":
            import pyarrow.csv as pacsv

            reader = pacsv.open_csv(path, read_options=pacsv.ReadOptions(block_size=1 << 20))
            yield from _arrow_batches(reader)
        else:
            import pyarrow.parquet as pq

            yield from _arrow_batches(pq.ParquetFile(path).iter_batches(batch_size=BATCH_ROWS))
    except (pa.ArrowInvalid, pa.ArrowTypeError, OSError) as exc:
        raise ValidationError(f"{text}: cannot read: {exc}") from None
