"""What `batch_run_function` accepts before anything is sent: ids that join back exactly, and
text that is valid Unicode, refused with the row named otherwise (as `sutro_batch` refuses them)."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sutro_sql.errors import ValidationError

ROWS = [
    {"id": 1, "subject": "a", "body": "x"},
    {"id": 2, "subject": "b", "body": "y"},
    {"id": 1, "subject": "c", "body": "z"},
]


def as_csv(tmp_path, rows):
    path = tmp_path / "rows.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return str(path)


def as_parquet(tmp_path, rows):
    path = tmp_path / "rows.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path)
    return str(path)


@pytest.mark.parametrize("form", ["list", "pandas", "arrow", "csv", "parquet"])
@pytest.mark.parametrize("cache", [True, False])
def test_duplicate_ids_are_refused_before_submitting(client, counting, tmp_path, form, cache):
    data = {
        "list": lambda: ROWS,
        "pandas": lambda: pd.DataFrame(ROWS),
        "arrow": lambda: pa.Table.from_pylist(ROWS),
        "csv": lambda: as_csv(tmp_path, ROWS),
        "parquet": lambda: as_parquet(tmp_path, ROWS),
    }[form]()
    with pytest.raises(ValidationError, match="id_column 'id' is not unique.*e.g. '?1'?"):
        client.batch_run_function("ticket-triage", data, id_column="id", cache=cache)
    assert counting.submissions == 0


def test_a_row_without_an_id_is_refused_naming_it(client, counting):
    rows = [{"id": 1, "subject": "a", "body": "x"}, {"subject": "b", "body": "y"}]
    with pytest.raises(ValidationError, match="row 1 .0-based. has no id"):
        client.batch_run_function("ticket-triage", rows, id_column="id")
    assert counting.submissions == 0


@pytest.mark.parametrize("cache", [True, False])
def test_a_lone_surrogate_is_a_validation_error_naming_the_row(client, counting, cache):
    rows = [{"subject": "fine", "body": "ok"}, {"subject": "bad", "body": "x\ud800y"}]
    with pytest.raises(ValidationError, match="row 1 .0-based.*lone surrogate"):
        client.batch_run_function("ticket-triage", rows, cache=cache)
    assert client.list_jobs() == []  # refused before any job was made
