"""Boolean fields read the polarity of their concept in the text (negation words, un-/non-/in-
prefixes); with no mention of the concept the few-shot classifier still decides."""

from __future__ import annotations

import jsonschema
import pytest

from sutro_sql.engines.base import EngineAnswer
from sutro_sql.engines.embedded import EmbeddedEngine
from sutro_sql.functions import FunctionSpec

OUTPUT = {
    "type": "object",
    "properties": {
        "paid": {"type": "boolean", "description": "Whether the invoice has been paid."},
        "refundable": {"type": ["boolean", "null"], "description": "Whether it can be refunded."},
        "is_shipped": {"type": "boolean", "description": "Whether the order left the warehouse."},
    },
    "required": ["paid", "is_shipped"],
}


@pytest.fixture(scope="module")
def engine() -> EmbeddedEngine:
    return EmbeddedEngine()


def answers(engine: EmbeddedEngine, texts: list[str], output: dict = OUTPUT) -> list[EngineAnswer]:
    spec = FunctionSpec(name="orders", kind="extraction", inputs=["text"], output=output)
    result = engine.answer(spec, [{"text": t} for t in texts])
    for answer in result:
        assert isinstance(answer, EngineAnswer), answer
        jsonschema.validate(answer.output, output)
    return result


@pytest.mark.parametrize(
    ("text", "field", "expected"),
    [
        ("The invoice is unpaid.", "paid", False),
        ("This invoice has not been paid yet.", "paid", False),
        ("Invoice 12 isn't paid.", "paid", False),
        ("It hasn't been paid.", "paid", False),
        ("They never paid the invoice.", "paid", False),
        ("Paid: no", "paid", False),
        ("The invoice was paid in full.", "paid", True),
        ("Paid in full on Monday.", "paid", True),
        ("It was not late, and it was paid.", "paid", True),
        ("The fare is non-refundable.", "refundable", False),
        ("Tickets are not refundable after purchase.", "refundable", False),
        ("The fare is fully refundable.", "refundable", True),
        ("The order was never shipped.", "is_shipped", False),
        ("Your parcel has not yet been shipped.", "is_shipped", False),
        ("The order shipped yesterday.", "is_shipped", True),
        ("We shipped it on Monday; it was not paid.", "is_shipped", True),
    ],
)
def test_a_boolean_follows_the_polarity_of_its_concept(engine, text, field, expected):
    [answer] = answers(engine, [text])
    assert answer.output[field] is expected, answer.rationale


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The invoice was paid, but the order was never shipped.", {"paid": True, "is_shipped": False}),
        ("The order shipped yesterday and the invoice is unpaid.", {"paid": False, "is_shipped": True}),
        ("The fare is non-refundable; it was paid in full.", {"paid": True, "refundable": False}),
    ],
)
def test_each_boolean_reads_its_own_concept_not_the_tone_of_the_text(engine, text, expected):
    [answer] = answers(engine, [text])
    assert {field: answer.output[field] for field in expected} == expected, answer.rationale


def test_negated_and_plain_mentions_of_the_same_concept_in_one_batch(engine):
    got = answers(engine, ["The invoice is unpaid.", "The invoice is paid."])
    assert [a.output["paid"] for a in got] == [False, True]


def test_without_a_mention_the_classifier_still_decides(engine):
    """No word for the concept (or only a question about it): the field description classifier answers."""
    for answer in answers(engine, ["Hello, just checking in about my account.", "Has the invoice been paid?"]):
        assert "paid: classified" in answer.rationale
        assert "refundable: classified" in answer.rationale


def test_a_field_named_for_the_negative_concept_reads_the_positive_word_as_false(engine):
    output = {"type": "object", "properties": {"unpaid": {"type": "boolean"}}, "required": ["unpaid"]}
    got = answers(engine, ["The invoice was paid.", "The invoice is unpaid.", "It has not been paid."], output)
    assert [a.output["unpaid"] for a in got] == [False, True, True]


def test_a_multi_word_name_needs_all_its_words_in_the_sentence_and_reads_the_head_word(engine):
    output = {
        "type": "object",
        "properties": {
            "paid_in_full": {"type": "boolean"},
            "is_vip_customer": {"type": "boolean"},
            "payment_received": {"type": "boolean"},
        },
        "required": ["paid_in_full", "is_vip_customer", "payment_received"],
    }
    texts = ["The invoice was not paid in full. We received the payment late.", "The customer says hello."]
    partial, unrelated = answers(engine, texts, output)
    assert partial.output["paid_in_full"] is False and partial.output["payment_received"] is True
    assert "is_vip_customer: classified" in partial.rationale
    assert (
        "is_vip_customer: classified" in unrelated.rationale and "payment_received: classified" in unrelated.rationale
    )
