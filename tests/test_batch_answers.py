"""A batch job's `outputs` become `sutro_run` values the same way whether a chunk is converted
at once (Arrow's JSON reader, for classification answers of the local shape) or row by row
(every other shape): `job_answer_array` equals the row-by-row conversion, value for value."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest

from sutro_sql.answers import ANSWER_TYPE, job_answer_array, job_answer_rows


def local_cell(label: str, ranked: list[tuple[str, float]], rationale: str | None = "because") -> str:
    predictions = [{"label": name, "confidence": p} for name, p in ranked]
    payload = {"response": label, "predictions": predictions, "rationale": rationale}
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"))


def results(cells: list[str | None], errors: list[str | None] | None = None) -> pa.Table:
    errors = errors or [None] * len(cells)
    scores = [None if cell is None else 0.5 + i / 100 for i, cell in enumerate(cells)]
    return pa.table(
        {
            "outputs": pa.array(cells, pa.string()),
            "confidence_score": pa.array(scores, pa.float64()),
            "error": pa.array(errors, pa.string()),
        }
    )


CHUNKS = {
    "local classification": results([local_cell("bug", [("bug", 0.9), ("question", 0.1)])] * 3),
    "labels with quotes, unicode and a newline": results(
        [local_cell('say "hi"', [('say "hi"', 0.6), ("x", 0.4)]), local_cell("naïve\nlabel ✓", [("naïve", 1.0)])]
    ),
    "failed and unanswered rows": results(
        [local_cell("bug", [("bug", 0.7)]), None, None, local_cell("ok", [("ok", 1.0)], rationale=None)],
        [None, "engine refused the row", "", None],
    ),
    "ties keep their order": results([local_cell("a", [("a", 0.5), ("b", 0.5)])]),
    "unranked predictions (sorted row by row)": results([local_cell("bug", [("question", 0.1), ("bug", 0.9)])]),
    "another shape (row by row)": results(['{"output":"bug","confidence":0.8}', '"bug"']),
    "no label (row by row)": results(['{"predictions":[{"label":"bug","confidence":0.9}]}']),
    "every row failed": results([None, None], ["boom", None]),
}


@pytest.mark.parametrize("kind", ["classification", None])
@pytest.mark.parametrize("chunk", list(CHUNKS))
def test_a_chunk_converts_as_its_rows_do(chunk, kind):
    table = CHUNKS[chunk]
    expected = pa.array(job_answer_rows(kind, table), ANSWER_TYPE)
    converted = job_answer_array(kind, table)
    assert converted.type == ANSWER_TYPE
    assert converted.to_pylist() == expected.to_pylist()


def test_failed_rows_carry_their_error_or_no_answer():
    table = CHUNKS["failed and unanswered rows"]
    assert [row["error"] for row in job_answer_array("classification", table).to_pylist()] == [
        None,
        "engine refused the row",
        "no answer",
        None,
    ]


def test_a_record_batch_converts_like_a_table():
    table = CHUNKS["local classification"]
    (batch,) = table.to_batches()
    assert (
        job_answer_array("classification", batch).to_pylist() == job_answer_array("classification", table).to_pylist()
    )
