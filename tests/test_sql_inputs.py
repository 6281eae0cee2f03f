"""One input converter for every path: `sutro_run`, `sutro_batch` and `Client.run_function`
give the same value the same text, so an answer computed on one path is a cache hit on the others."""

from __future__ import annotations

import json

import pytest
import yaml

from sutro_sql.sql_layer import connect, session_for
from tests.sql_support import CountingBackend

COLUMNS = ["nested", "items", "day", "amount", "payload", "missing", "label"]
TYPED_ROWS = """
CREATE TABLE typed AS SELECT * FROM (VALUES
  (1, {'x': 1, 'y': [{'z': 'é'}]}, [1, 2, 3], DATE '2024-01-02', 1.50::DECIMAL(6, 2), 'caf\\xC3\\xA9'::BLOB,
   NULL::VARCHAR, '00123'),
  (2, {'x': 2, 'y': []}, [], DATE '1999-12-31', -0.25::DECIMAL(6, 2), 'plain'::BLOB, NULL::VARCHAR, 'quote " \\ tab\t')
) AS t(id, nested, items, day, amount, payload, missing, label)
"""


@pytest.fixture
def counting(home, local_backend):
    spec = {
        "name": "typed-inputs",
        "kind": "classification",
        "description": "Inputs of every SQL type.",
        "inputs": [{"name": name} for name in COLUMNS],
        "labels": {"yes": "", "no": ""},
    }
    (home / "functions" / "typed-inputs.yaml").write_text(yaml.safe_dump(spec), encoding="utf-8")
    return CountingBackend(local_backend)


@pytest.fixture
def con(counting):
    connection = connect(backend=counting, progress=False)
    connection.execute(TYPED_ROWS)
    yield connection
    connection.close()


def struct_of_columns() -> str:
    return "{" + ", ".join(f"'{name}': {name}" for name in COLUMNS) + "}"


def test_sutro_batch_after_sutro_run_on_typed_rows_is_all_cache_hits(con, counting):
    ran = con.sql(
        f"SELECT id, sutro_run('typed-inputs', {struct_of_columns()}).response FROM typed ORDER BY id"
    ).fetchall()
    assert len(counting.run_calls) == 2
    session_for(con).reset_stats()
    batched = con.sql(
        f"SELECT id, response FROM sutro_batch('typed-inputs', 'SELECT id, {', '.join(COLUMNS)} FROM typed', "
        "id_column := 'id') ORDER BY id"
    ).fetchall()
    assert batched == ran
    stats = session_for(con).stats
    assert (counting.submissions, stats.jobs_submitted, stats.cache_hits) == (0, 0, 2)


def test_sutro_run_after_sutro_batch_on_typed_rows_is_all_cache_hits(con, counting):
    con.sql(f"SELECT * FROM sutro_batch('typed-inputs', 'SELECT {', '.join(COLUMNS)} FROM typed')").fetchall()
    assert counting.submissions == 1
    con.sql(f"SELECT sutro_run('typed-inputs', {struct_of_columns()}) FROM typed").fetchall()
    assert counting.run_calls == [] and session_for(con).stats.cache_hits == 2


def test_the_function_sees_nested_values_as_compact_json_and_nulls_as_empty_text(con, counting):
    con.sql(f"SELECT sutro_run('typed-inputs', {struct_of_columns()}) FROM typed WHERE id = 1").fetchall()
    (sent,) = counting.run_calls
    assert json.loads(sent["nested"]) == {"x": 1, "y": [{"z": "é"}]} and sent["nested"] == '{"x":1,"y":[{"z":"é"}]}'
    assert (sent["items"], sent["day"], sent["missing"], sent["label"]) == ("[1,2,3]", "2024-01-02", "", "00123")
    assert not sent["payload"].startswith("b'")


def test_a_python_dict_with_the_same_values_is_the_same_input(con, counting):
    from sutro_sql.client import Client

    con.sql(f"SELECT sutro_run('typed-inputs', {struct_of_columns()}) FROM typed WHERE id = 2").fetchall()
    row = {
        "nested": {"x": 2, "y": []},
        "items": [],
        "day": "1999-12-31",
        "amount": -0.25,
        "payload": b"plain",
        "missing": None,
        "label": 'quote " \\ tab\t',
    }
    with Client(backend=counting, progress=False) as client:
        assert client.run_function("typed-inputs", row)["cached"] is True
    assert len(counting.run_calls) == 1


def test_bytes_that_are_not_utf8_are_refused_naming_the_problem(counting):
    from sutro_sql.client import Client
    from sutro_sql.errors import ValidationError

    row = dict.fromkeys(COLUMNS, "x") | {"payload": b"caf\xe9"}
    with Client(backend=counting, progress=False) as client, pytest.raises(ValidationError, match="not UTF-8"):
        client.run_function("typed-inputs", row)
    assert counting.run_calls == []
