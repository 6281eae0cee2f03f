"""The canonical input of a `sutro_batch` row, which cache keys and job keys hash, is the same
text whether DuckDB writes it in the spool (text, integer and boolean inputs) or Python
converts the row (`FunctionRef.canonical_from_json`, every other input): an answer cached by
`sutro_run` or an earlier batch keeps matching."""

from __future__ import annotations

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sutro_sql.functions import parse_spec
from sutro_sql.inputs import FunctionRef
from sutro_sql.sql_layer.spool import CANONICAL_COLUMN, HASH_COLUMN, INPUT_COLUMN, distinct_inputs, spool_query

SPEC = parse_spec(
    {
        "name": "keys",
        "kind": "classification",
        "description": "d",
        "inputs": [{"name": "b"}, {"name": "a"}, {"name": "z", "required": False}],
        "labels": {"x": "x", "y": "y"},
    }
)
#: Every ASCII control character, quotes, backslashes (one before a u00 escape), non-ASCII text.
TEXTS = [chr(i) for i in range(32)] + ['"', "\\", "\\u001B", "naïve ✓ 😀", "", "\u2028", "\x7f", None, "same"]


@pytest.fixture
def con(tmp_path):
    con = duckdb.connect()
    texts = pa.table({"t": pa.array(TEXTS, pa.string())})  # noqa: F841 (read by the CREATE below)
    con.execute(
        "CREATE TABLE rows AS SELECT row_number() OVER () AS n, t AS b, t || 'x' AS a, n % 3 = 0 AS flag FROM texts"
    )
    con.execute("INSERT INTO rows SELECT n + 1000, b, a, flag FROM rows")  # every input twice
    return con


@pytest.mark.parametrize("ref", [FunctionRef("keys", SPEC), FunctionRef("remote-keys")], ids=["local", "remote"])
@pytest.mark.parametrize("columns", ["b, a", "b, a, n % 1000 AS k, flag"])
def test_duckdb_writes_the_canonical_input_python_would(con, tmp_path, ref, columns):
    spool = spool_query(con.cursor(), ref, f"SELECT {columns} FROM rows ORDER BY n", None, str(tmp_path))
    assert CANONICAL_COLUMN in spool.schema.names
    python = [
        ref.canonical_from_json(text)[1] for text in spool.reader([INPUT_COLUMN]).read_all().column(0).to_pylist()
    ]
    distinct = distinct_inputs(ref, spool)
    assert distinct.canonicals.take(pa.array(distinct.codes)).to_pylist() == python
    assert len(distinct.canonicals) == len(TEXTS) == len(set(python))
    assert distinct.first_rows.tolist() == list(range(len(TEXTS)))


def test_other_input_types_are_canonicalized_by_python(con, tmp_path):
    ref = FunctionRef("keys", SPEC)
    query = "SELECT b, a, 1.5::DOUBLE AS z FROM rows ORDER BY n"
    spool = spool_query(con.cursor(), ref, query, None, str(tmp_path))
    assert CANONICAL_COLUMN not in spool.schema.names
    texts = spool.reader([INPUT_COLUMN]).read_all().column(0).to_pylist()
    distinct = distinct_inputs(ref, spool)
    assert distinct.canonicals.take(pa.array(distinct.codes)).to_pylist() == [
        ref.canonical_from_json(text)[1] for text in texts
    ]


def test_rows_whose_hashes_collide_are_still_told_apart(con, tmp_path):
    ref = FunctionRef("keys", SPEC)
    spool = spool_query(con.cursor(), ref, "SELECT b, a FROM rows ORDER BY n", None, str(tmp_path))
    table = pq.read_table(spool.path)
    collided = table.set_column(
        table.schema.get_field_index(HASH_COLUMN), HASH_COLUMN, pa.array([7] * table.num_rows, pa.uint64())
    )
    pq.write_table(collided, spool.path)
    distinct = distinct_inputs(ref, spool)
    assert len(distinct.canonicals) == len(TEXTS)
    python = [ref.canonical_from_json(text)[1] for text in table.column(INPUT_COLUMN).to_pylist()]
    assert distinct.canonicals.take(pa.array(distinct.codes)).to_pylist() == python
