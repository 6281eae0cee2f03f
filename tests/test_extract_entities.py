"""Free-text extraction fields read from named entities (spaCy's small English pipeline, real):
names and companies, null when nothing supports them, and which field maps to which entity."""

from __future__ import annotations

import pytest

from sutro_sql.engines.embedded import EmbeddedEngine
from sutro_sql.engines.entities import field_entity_labels
from sutro_sql.functions import FunctionSpec

from .support.encoders import HashedWordsEncoder

EMAIL = (
    "Hi Sutro team,\nWe want the business plan for 12 seats, starting March 3, 2026.\n"
    "Best regards,\nKenji Watanabe\nIT Manager, Tandem Robotics\nkenji.watanabe@tandemrobotics.ai"
)
PROPERTIES = {
    "sender_name": {"type": ["string", "null"], "description": "Who wrote it, as signed above their email address."},
    "company": {"type": ["string", "null"], "description": "The company the sender works for."},
    "email": {"type": ["string", "null"], "description": "The sender's email address."},
    "date": {"type": ["string", "null"], "description": "The date the email gives."},
    "plan": {"type": "string", "enum": ["starter", "team", "business"], "description": "The plan."},
}


@pytest.fixture(scope="module")
def engine() -> EmbeddedEngine:
    return EmbeddedEngine(HashedWordsEncoder())


def spec(examples: list[dict] | None = None) -> FunctionSpec:
    output = {"type": "object", "properties": PROPERTIES, "required": ["plan"]}
    return FunctionSpec(name="emails", kind="extraction", inputs=["text"], output=output, examples=examples or [])


@pytest.mark.parametrize(
    ("name", "description", "labels"),
    [
        ("sender_name", "Who wrote it, as signed above their email address.", ("PERSON",)),
        ("name", "", ("PERSON",)),
        ("company_name", "", ("ORG",)),
        ("customerCity", "", ("GPE",)),
        ("city", "", ("GPE",)),
        ("email", "The contact's name and address", None),
        ("date", "When the email was sent", None),
        ("signed_by", "The person who signed the letter", ("PERSON",)),
        ("notes", "Anything else", None),
        ("notes", "What the customer says about fees", None),
        ("works_for", "The company the sender works for", ("ORG",)),
    ],
)
def test_fields_map_to_entity_types_by_name_first_then_description(name, description, labels):
    assert field_entity_labels(name, {"description": description}) == labels


def test_the_sender_and_company_come_from_the_signature_not_the_greeting(engine):
    output = engine.answer(spec(), [{"text": EMAIL}])[0].output
    assert output["sender_name"] == "Kenji Watanabe"
    assert output["company"] == "Tandem Robotics"
    assert output["email"] == "kenji.watanabe@tandemrobotics.ai"


def test_a_date_field_described_with_the_word_email_is_still_a_date(engine):
    assert engine.answer(spec(), [{"text": EMAIL}])[0].output["date"] == "2026-03-03"


def test_a_name_field_without_a_person_in_the_text_is_null_not_the_email(engine):
    output = engine.answer(spec(), [{"text": "Please upgrade us. Reply to billing42@gmail.com"}])[0].output
    assert output["sender_name"] is None and output["company"] is None
    assert output["email"] == "billing42@gmail.com"


def test_an_enum_option_the_examples_name_in_their_text_is_read_from_the_text(engine):
    examples = [
        {"input": "We are on the starter plan, Dana", "output": {"plan": "starter", "sender_name": "Dana"}},
        {"input": "Move our team to the business plan", "output": {"plan": "business", "sender_name": None}},
    ]
    answer = engine.answer(spec(examples), [{"text": "Our team wants the team plan from May."}])[0]
    assert answer.output["plan"] == "team"
