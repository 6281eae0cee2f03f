"""Real-time Function runs (v1 §5.1) and Function specs, on every backend."""

from __future__ import annotations

import pytest

from sutro_sql.errors import NotFoundError, ValidationError
from tests.backends.expected import EXTRACTOR, TRIAGE, triage_labels


def test_a_classification_answer_has_the_v1_union_shape(backend):
    row = {"subject": "Refund", "body": "a billing problem"}
    answer = backend.run_function("ticket-triage", row)
    assert answer["output"] == answer["response"] == triage_labels([row])[0]
    assert answer["request_id"].startswith("rt_")
    assert answer["function"]["name"] == "ticket-triage"
    confidences = [p["confidence"] for p in answer["predictions"]]
    assert confidences == sorted(confidences, reverse=True) and answer["confidence"] == confidences[0]
    assert {p["label"] for p in answer["predictions"]} == set(TRIAGE.labels)
    assert isinstance(answer["rationale"], str)
    assert {"input_tokens", "output_tokens", "cost_usd"} <= answer["usage"].keys()


def test_an_extraction_answer_is_an_object_of_the_output_fields(backend):
    answer = backend.run_function("ticket-extractor", {"body": "order ORD-1 broke, angry"})
    assert set(answer["output"]) == set(EXTRACTOR.output["properties"])
    assert "predictions" not in answer and "response" not in answer
    assert isinstance(answer["rationale"], str)


def test_a_plain_string_is_the_input_of_a_one_input_function(backend):
    assert (
        backend.run_function("ticket-extractor", "order ORD-1 broke")["output"]
        == (backend.run_function("ticket-extractor", {"body": "order ORD-1 broke"})["output"])
    )


def test_confidence_scoring_off_gives_a_null_confidence(backend):
    answer = backend.run_function("ticket-triage", {"subject": "x", "body": "bug"}, confidence_scoring=False)
    assert answer["confidence"] is None and answer["output"] == "bug"


def test_an_unknown_function_is_not_found_naming_the_function_only(backend):
    with pytest.raises(NotFoundError) as caught:
        backend.run_function("no-such-function", {"x": "y"})
    assert caught.value.code == "function_not_found"
    assert "no-such-function" in caught.value.detail
    assert "/" not in caught.value.detail  # no folder of the server's


def test_a_missing_input_field_is_a_validation_error_naming_it(backend):
    with pytest.raises(ValidationError) as caught:
        backend.run_function("ticket-triage", {"subject": "only a subject"})
    assert caught.value.code == "invalid_input" and "body" in caught.value.detail


def test_a_string_for_a_two_input_function_is_a_validation_error(backend):
    with pytest.raises(ValidationError, match="subject"):
        backend.run_function("ticket-triage", "just text")


@pytest.mark.needs("function_specs")
def test_a_backend_that_knows_specs_returns_the_published_spec(backend):
    assert backend.get_function_spec("ticket-triage") == TRIAGE
    with pytest.raises(NotFoundError):
        backend.get_function_spec("no-such-function")


@pytest.mark.lacks("function_specs")
def test_a_backend_that_knows_names_only_returns_no_spec(backend):
    assert backend.get_function_spec("ticket-triage") is None
