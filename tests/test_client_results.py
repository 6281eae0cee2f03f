"""Shaping raw job results into the SDK's DataFrame (sutro-api-v1.md §7.8), from hand-built
Arrow tables in the Backend protocol's shape."""

from __future__ import annotations

import json

import pandas as pd
import polars as pl
import pyarrow as pa
import pytest

from sutro_sql.results import job_results_frame


def raw_results(outputs, *, confidence=None, error=None, inputs=None, **metadata) -> pa.Table:
    """Columns in the protocol's order: [inputs], [metadata], outputs, confidence_score, error."""
    columns = {}
    if inputs is not None:
        columns["inputs"] = pa.array(inputs, pa.string())
    for name, values in metadata.items():
        columns[name] = pa.array(values)
    columns["outputs"] = pa.array([None if o is None else json.dumps(o) for o in outputs], pa.string())
    columns["confidence_score"] = pa.array(confidence or [0.5] * len(outputs), pa.float64())
    columns["error"] = pa.array(error or [None] * len(outputs), pa.string())
    return pa.table(columns)


def test_json_objects_unpack_into_columns_added_after_confidence_score():
    raw = raw_results([{"label": "a", "score": 1}, {"label": "b", "score": 2}], inputs=['{"q": 1}', '{"q": 2}'])
    frame = job_results_frame(raw, include_inputs=True)
    assert isinstance(frame, pl.DataFrame)
    assert frame.columns == ["inputs", "confidence_score", "label", "score"]  # the SDK's worked example
    assert frame["label"].to_list() == ["a", "b"]
    assert frame["score"].dtype == pl.Int64


def test_metadata_columns_sit_between_inputs_and_the_output_in_api_order():
    raw = raw_results([{"x": 1}], inputs=["i"], ticket_id=[7], batch=["b1"])
    packed = job_results_frame(raw, include_inputs=True, unpack_json=False)
    assert packed.columns == ["inputs", "ticket_id", "batch", "inference_result", "confidence_score"]
    unpacked = job_results_frame(raw, include_inputs=True)
    assert unpacked.columns == ["inputs", "ticket_id", "batch", "confidence_score", "x"]


def test_metadata_placed_first_even_when_the_api_sends_it_after_outputs():
    raw = pa.table({"outputs": ['{"x": 1}'], "confidence_score": [0.9], "row_key": ["k"]})
    assert job_results_frame(raw).columns == ["row_key", "confidence_score", "x"]


def test_unrequested_inputs_are_dropped():
    raw = raw_results([{"x": 1}], inputs=["i"])
    assert "inputs" not in job_results_frame(raw, include_inputs=False).columns


def test_unpack_json_false_keeps_the_raw_text_under_output_column():
    raw = raw_results([{"x": 1}, {"x": 2}])
    frame = job_results_frame(raw, unpack_json=False, output_column="answer")
    assert frame.columns == ["answer", "confidence_score"]
    assert [json.loads(v) for v in frame["answer"]] == [{"x": 1}, {"x": 2}]


def test_output_column_named_like_an_existing_column_is_refused():
    raw = raw_results([{"x": 1}], ticket_id=[1])
    with pytest.raises(ValueError, match="output_column 'ticket_id'"):
        job_results_frame(raw, output_column="ticket_id")


def test_a_field_clashing_with_a_column_is_refused_suggesting_unpack_json_false():
    raw = raw_results([{"confidence_score": 0.1, "y": 1}])
    with pytest.raises(ValueError, match="unpack_json=False"):
        job_results_frame(raw)
    assert job_results_frame(raw, unpack_json=False).columns == ["inference_result", "confidence_score"]


def test_text_that_is_not_json_stays_raw():
    raw = pa.table({"outputs": ["plain answer", '{"x": 1}'], "confidence_score": [0.5, 0.5]})
    frame = job_results_frame(raw)
    assert frame.columns == ["inference_result", "confidence_score"]
    assert frame["inference_result"].to_list() == ["plain answer", '{"x": 1}']


def test_all_empty_objects_stay_raw():
    raw = raw_results([{}, {}])
    assert job_results_frame(raw).columns == ["inference_result", "confidence_score"]


def test_json_arrays_stay_raw():
    raw = raw_results([[1, 2], [3]])
    assert job_results_frame(raw)["inference_result"].to_list() == ["[1, 2]", "[3]"]


def test_json_scalar_labels_are_decoded_to_plain_values():
    raw = raw_results(["billing", "bug", None])
    assert job_results_frame(raw)["inference_result"].to_list() == ["billing", "bug", None]


def test_mixed_json_scalars_stay_raw():
    raw = raw_results(["billing", 3])
    assert job_results_frame(raw)["inference_result"].to_list() == ['"billing"', "3"]


def test_failed_rows_are_null_and_the_error_column_says_why():
    raw = raw_results([{"x": 1}, None], error=[None, "engine refused the row"])
    frame = job_results_frame(raw)
    assert frame.columns == ["error", "confidence_score", "x"]
    assert frame["x"].to_list() == [1, None]
    assert frame["error"].to_list() == [None, "engine refused the row"]


def test_clean_jobs_have_no_error_column():
    assert "error" not in job_results_frame(raw_results([{"x": 1}])).columns


def test_known_schema_types_fields_that_are_null_everywhere():
    raw = raw_results([{"amount": None, "who": "ann"}, {"amount": None, "who": "bob"}])
    schema = pa.schema([("amount", pa.float64()), ("who", pa.string()), ("urgent", pa.bool_())])
    typed = job_results_frame(raw, output_schema=schema)
    assert typed.schema["amount"] == pl.Float64
    assert typed.schema["urgent"] == pl.Boolean  # declared, absent from every answer
    assert typed.columns == ["confidence_score", "amount", "who", "urgent"]
    assert job_results_frame(raw).schema["amount"] == pl.Null  # no schema: inferred as the SDK does


def test_with_original_df_appends_result_columns_to_a_polars_frame():
    original = pl.DataFrame({"ticket": ["t1", "t2"], "body": ["a", "b"]})
    frame = job_results_frame(raw_results([{"x": 1}, {"x": 2}]), with_original_df=original)
    assert isinstance(frame, pl.DataFrame)
    assert frame.columns == ["ticket", "body", "confidence_score", "x"]
    assert frame["ticket"].to_list() == ["t1", "t2"]


def test_with_original_df_pandas_in_pandas_out():
    original = pd.DataFrame({"body": ["a", "b"]})
    frame = job_results_frame(raw_results([{"x": 1}, {"x": 2}]), with_original_df=original)
    assert isinstance(frame, pd.DataFrame)
    assert list(frame.columns) == ["body", "confidence_score", "x"]
    assert frame["x"].tolist() == [1, 2]


def test_with_original_df_row_count_must_match():
    with pytest.raises(ValueError, match="3 rows but the job has 2"):
        job_results_frame(raw_results([{"x": 1}, {"x": 2}]), with_original_df=pl.DataFrame({"a": [1, 2, 3]}))


def test_with_original_df_may_share_an_identical_id_column():
    raw = raw_results([{"x": 1}, {"x": 2}], ticket_id=pa.array([10, 20], pa.int64()))
    original = pl.DataFrame({"ticket_id": [10, 20], "body": ["a", "b"]})
    frame = job_results_frame(raw, with_original_df=original)
    assert frame.columns == ["ticket_id", "body", "confidence_score", "x"]


def test_with_original_df_refuses_a_shared_column_with_other_values():
    raw = raw_results([{"x": 1}, {"x": 2}], ticket_id=pa.array([10, 20], pa.int64()))
    with pytest.raises(ValueError, match="ticket_id"):
        job_results_frame(raw, with_original_df=pl.DataFrame({"ticket_id": [20, 10]}))


def test_with_original_df_refuses_a_field_named_like_one_of_its_columns():
    original = pl.DataFrame({"x": ["mine", "mine"]})
    with pytest.raises(ValueError, match="unpack_json=False"):
        job_results_frame(raw_results([{"x": 1}, {"x": 2}]), with_original_df=original)


def test_unwrap_reasoning_flattens_legacy_reasoning_envelopes_only_when_asked():
    envelope = [{"content": {"label": "a", "score": 1}, "reasoning_content": "because"}]
    flat = job_results_frame(raw_results(envelope), unwrap_reasoning=True)
    assert flat.columns == ["confidence_score", "reasoning_content", "label", "score"]
    assert flat.row(0) == (0.5, "because", "a", 1)
    kept = job_results_frame(raw_results(envelope))  # customer JSON can have this shape: kept by default
    assert kept.columns == ["confidence_score", "content", "reasoning_content"]
    other = job_results_frame(raw_results([{"content": "text", "reasoning_content": "r"}]), unwrap_reasoning=True)
    assert other.columns == ["confidence_score", "content", "reasoning_content"]  # content not an object


def test_cumulative_logprobs_are_kept_only_when_asked_and_sit_before_confidence_score():
    raw = raw_results([{"x": 1}]).add_column(2, "cumulative_logprobs", pa.array([-0.25], pa.float64()))
    assert "cumulative_logprobs" not in job_results_frame(raw).columns
    frame = job_results_frame(raw, include_cumulative_logprobs=True, unpack_json=False)
    assert frame.columns == ["inference_result", "cumulative_logprobs", "confidence_score"]
    assert frame["cumulative_logprobs"].to_list() == [-0.25]
