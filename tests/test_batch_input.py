"""`batch_reader`: every batch input form as one RecordBatchReader, text kept as text."""

from __future__ import annotations

import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest

from sutro_sql.batch_input import BATCH_ROWS, batch_reader
from sutro_sql.errors import ValidationError

ROWS = [{"id": i, "code": f"{i:05d}", "body": f"caf\xe9 {i}"} for i in range(BATCH_ROWS + 5)]


@pytest.mark.parametrize(
    "make",
    [
        lambda tmp: ROWS,
        lambda tmp: iter(ROWS),
        lambda tmp: pa.Table.from_pylist(ROWS),
        lambda tmp: pl.DataFrame(ROWS),
        lambda tmp: pd.DataFrame(ROWS),
        lambda tmp: (pq.write_table(pa.Table.from_pylist(ROWS), tmp / "r.parquet"), tmp / "r.parquet")[1],
    ],
    ids=["rows", "iterator", "arrow", "polars", "pandas", "parquet"],
)
def test_every_form_reads_as_the_same_columns(tmp_path, make):
    table = batch_reader(make(tmp_path)).read_all()
    assert table.column_names == ["id", "code", "body"]
    assert table.column("code").to_pylist()[:2] == ["00000", "00001"]
    assert table.to_pylist() == ROWS


def test_csv_columns_are_text_never_inferred(tmp_path):
    pa_csv.write_csv(pa.Table.from_pylist(ROWS[:3]), tmp_path / "r.csv")
    table = batch_reader(tmp_path / "r.csv").read_all()
    assert table.schema == pa.schema([("id", pa.string()), ("code", pa.string()), ("body", pa.string())])
    assert table.column("code").to_pylist() == ["00000", "00001", "00002"]


def test_binary_columns_are_decoded_as_utf8(tmp_path):
    table = pa.table({"body": pa.array(["caf\xe9".encode(), None], pa.binary())})
    assert batch_reader(table).read_all().column("body").to_pylist() == ["caf\xe9", None]


def test_bytes_that_are_not_utf8_are_refused_naming_row_and_column():
    table = pa.table({"body": pa.array([b"ok"] * 3 + ["caf\xe9".encode("latin-1")], pa.binary())})
    with pytest.raises(ValidationError, match=r"row 3 \(0-based\), column 'body': not UTF-8"):
        batch_reader(table.to_reader(max_chunksize=2)).read_all()


def test_rows_whose_column_changes_type_are_refused():
    with pytest.raises(ValidationError, match="columns of one type"):
        batch_reader([{"a": 1}] * BATCH_ROWS + [{"a": "text"}]).read_all()
