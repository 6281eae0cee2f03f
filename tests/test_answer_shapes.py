"""Every documented answer shape becomes the one `sutro_run` STRUCT: the label in `response`,
`label` or only in `output`; the answer in `output` or `content`; `confidence` or
`confidence_score`; with or without `run_id`; from a real-time call or a batch job."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest

from sutro_sql.answers import answer_row, job_answer_rows
from sutro_sql.backends.remote import RemoteBackend
from sutro_sql.sql_layer import connect
from tests.support.fault_server import FaultServer, Reply

PREDICTIONS = [{"label": "question", "confidence": 0.1}, {"label": "bug", "confidence": 0.9}]
USAGE = {"input_tokens": 7, "output_tokens": 1, "cost_usd": 0.0}
CLASSIFICATION_SHAPES = {
    "union (local server)": {"output": "bug", "response": "bug", "confidence": 0.9, "predictions": PREDICTIONS},
    "output only (SDK tests)": {"request_id": "rt_1", "output": "bug", "confidence": 0.9, "usage": USAGE},
    "response only (docs)": {"response": "bug", "confidence": 0.9, "predictions": PREDICTIONS, "run_id": "r1"},
    "label and confidence_score": {"label": "bug", "confidence_score": 0.9},
    "content": {"content": "bug", "confidence": 0.9},
    "legacy reasoning envelope": {"output": {"content": "bug", "reasoning_content": "it crashes"}, "confidence": 0.9},
}


@pytest.mark.parametrize("kind", ["classification", None])
@pytest.mark.parametrize("shape", list(CLASSIFICATION_SHAPES))
def test_a_classification_answer_has_its_label_in_response(shape, kind):
    row = answer_row(CLASSIFICATION_SHAPES[shape], kind)
    assert (row["response"], json.loads(row["output"]), row["confidence"]) == ("bug", "bug", 0.9)


def test_predictions_are_sorted_highest_first_and_the_legacy_reasoning_is_the_rationale():
    assert [p["label"] for p in answer_row(CLASSIFICATION_SHAPES["union (local server)"])["predictions"]] == [
        "bug",
        "question",
    ]
    assert answer_row(CLASSIFICATION_SHAPES["legacy reasoning envelope"])["rationale"] == "it crashes"


@pytest.mark.parametrize(
    "answer",
    [
        {"output": {"name": "Ada", "amount": 3}, "confidence": 0.7, "rationale": "found"},
        {"content": {"name": "Ada", "amount": 3}, "confidence_score": 0.7},
    ],
)
@pytest.mark.parametrize("kind", ["extraction", None])
def test_an_extraction_answer_keeps_its_object_in_output_and_no_label(answer, kind):
    row = answer_row(answer, kind)
    assert row["response"] is None and json.loads(row["output"]) == {"name": "Ada", "amount": 3}
    assert row["confidence"] == 0.7


@pytest.mark.parametrize(
    ("cell", "kind"),
    [
        ('{"response":"bug","predictions":[{"label":"bug","confidence":0.9}]}', "classification"),
        ('{"response":"bug","predictions":[{"label":"bug","confidence":0.9}]}', None),
        ('{"output":"bug"}', None),
        ('"bug"', "classification"),
        ('"bug"', None),
    ],
)
def test_a_batch_classification_cell_in_any_shape_gives_the_label(cell, kind):
    results = pa.table({"outputs": [cell], "confidence_score": [0.9], "error": pa.array([None], pa.string())})
    (row,) = job_answer_rows(kind, results)
    assert (row["response"], row["confidence"]) == ("bug", 0.9)


@pytest.mark.parametrize("kind", ["extraction", None])
def test_a_batch_extraction_cell_is_its_fields(kind):
    results = pa.table(
        {"outputs": ['{"name":"Ada"}'], "confidence_score": [0.4], "error": pa.array([None], pa.string())}
    )
    (row,) = job_answer_rows(kind, results)
    assert row["response"] is None and json.loads(row["output"]) == {"name": "Ada"} and row["confidence"] == 0.4


def test_sutro_run_over_a_deployment_answering_output_only_has_the_label_in_response(tmp_path):
    shape = CLASSIFICATION_SHAPES["output only (SDK tests)"]
    with FaultServer(default=Reply(200, shape)) as server:
        backend = RemoteBackend(server.url, "test-key", home=tmp_path)
        con = connect(backend=backend, progress=False)
        try:
            (answer,) = con.sql("SELECT sutro_run('triage', {'text': 'the app crashes'})").fetchall()[0]
        finally:
            con.close()
            backend.close()
    assert (answer["response"], json.loads(answer["output"]), answer["confidence"]) == ("bug", "bug", 0.9)
