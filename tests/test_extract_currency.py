"""Money fields with their currency, in every shape a schema can ask for it: a sibling string,
an {amount, currency} object, or an enum of codes, symbols or names (always a value of the enum)."""

from __future__ import annotations

import jsonschema
import pytest

from sutro_sql.engines.base import EngineAnswer
from sutro_sql.engines.embedded import EmbeddedEngine
from sutro_sql.functions import FunctionSpec

SENTENCES = [
    ("The invoice is 300 EUR", 300, "EUR"),
    ("Invoice total: EUR 300.", 300, "EUR"),
    ("We owe them 300EUR by Friday.", 300, "EUR"),
    ("Balance due USD 1,200.50 as agreed.", 1200.5, "USD"),
    ("Please refund 20 dollars.", 20, "USD"),
    ("She paid 300 euros for the repair.", 300, "EUR"),
    ("The fee was 5 pounds.", 5, "GBP"),
    ("Charged £49.99 twice.", 49.99, "GBP"),
    ("It cost ¥5,000 in Tokyo.", 5000, "JPY"),
    ("The bill came to ₹250.", 250, "INR"),
    ("Rechnung über 1.200,50 EUR.", 1200.5, "EUR"),
    ("Price: CHF 80", 80, "CHF"),
    ("Total 45 Canadian dollars.", 45, "CAD"),
]


@pytest.fixture(scope="module")
def engine() -> EmbeddedEngine:
    return EmbeddedEngine()


def run(engine: EmbeddedEngine, output: dict, texts: list[str]) -> list[dict]:
    spec = FunctionSpec(name="invoice", kind="extraction", inputs=["text"], output=output)
    answers = engine.answer(spec, [{"text": t} for t in texts])
    for answer in answers:
        assert isinstance(answer, EngineAnswer), answer
        jsonschema.validate(answer.output, output)
    return [a.output for a in answers]


def test_a_sibling_currency_string_gets_the_iso_code_of_the_amount(engine):
    output = {
        "type": "object",
        "properties": {
            "amount": {"type": ["number", "null"], "description": "The amount due."},
            "currency": {"type": ["string", "null"], "description": "Its currency."},
        },
    }
    got = run(engine, output, [text for text, _, _ in SENTENCES])
    assert [(o["amount"], o["currency"]) for o in got] == [(amount, code) for _, amount, code in SENTENCES]


def test_an_amount_and_currency_object_is_filled_as_a_pair(engine):
    output = {
        "type": "object",
        "properties": {
            "price": {
                "type": "object",
                "properties": {"value": {"type": "number"}, "currency": {"type": "string"}},
                "required": ["value", "currency"],
            }
        },
        "required": ["price"],
    }
    got = run(engine, output, ["The invoice is 300 EUR for 2 items", "Fixed for 20 dollars."])
    assert [o["price"] for o in got] == [{"value": 300, "currency": "EUR"}, {"value": 20, "currency": "USD"}]


def test_an_enum_of_codes_takes_the_amounts_currency(engine):
    output = {
        "type": "object",
        "properties": {"amount": {"type": "number"}, "currency": {"enum": ["USD", "EUR", "GBP"]}},
        "required": ["currency"],
    }
    texts = ["The invoice is 300 EUR", "The fee was 5 pounds.", "EUR 12 and nothing else", "Pay $3 now"]
    assert [o["currency"] for o in run(engine, output, texts)] == ["EUR", "GBP", "EUR", "USD"]


def test_an_enum_of_symbols_or_names_is_matched_by_meaning(engine):
    output = {
        "type": "object",
        "properties": {
            "symbol": {"enum": ["$", "€", "£"], "description": "The currency"},
            "name": {"enum": ["Dollar", "Euro", "Pound"], "description": "The currency"},
        },
        "required": ["symbol", "name"],
    }
    [got] = run(engine, output, ["The invoice is 300 EUR"])
    assert got == {"symbol": "€", "name": "Euro"}


def test_a_currency_outside_the_enum_gives_null_when_allowed_and_an_enum_value_otherwise(engine):
    output = {
        "type": "object",
        "properties": {
            "maybe": {"enum": ["USD", "EUR", None], "description": "currency"},
            "must": {"enum": ["USD", "EUR"], "description": "currency"},
        },
        "required": ["maybe", "must"],
    }
    [got] = run(engine, output, ["Price: 80 CHF"])
    assert got["maybe"] is None and got["must"] in ("USD", "EUR")


def test_the_currency_follows_the_amount_the_field_is_about(engine):
    output = {
        "type": "object",
        "properties": {
            "total": {"type": ["number", "null"], "description": "The invoice total."},
            "currency": {"type": ["string", "null"]},
        },
    }
    [got] = run(engine, output, ["Shipping was $5. The invoice total is 300 EUR."])
    assert got == {"total": 300, "currency": "EUR"}


def test_a_currency_named_without_an_amount_is_still_found(engine):
    output = {"type": "object", "properties": {"currency": {"type": ["string", "null"]}}}
    assert run(engine, output, ["We invoice in euros.", "No money talk here."]) == [
        {"currency": "EUR"},
        {"currency": None},
    ]


def test_a_currency_string_with_a_pattern_gets_the_form_it_accepts(engine):
    output = {
        "type": "object",
        "properties": {
            "amount": {"type": "number"},
            "upper": {"type": "string", "pattern": "^[A-Z]{3}$", "description": "currency code"},
            "lower": {"type": ["string", "null"], "pattern": "^[a-z]{3}$", "description": "currency code"},
        },
        "required": ["upper"],
    }
    assert run(engine, output, ["Pay 300 EUR"]) == [{"amount": 300, "upper": "EUR", "lower": "eur"}]


def test_only_a_field_named_or_described_first_as_a_currency_is_one(engine):
    output = {
        "type": "object",
        "properties": {
            "ccy": {"type": ["string", "null"]},
            "unit": {"type": ["string", "null"], "description": "The currency of the amount"},
            "notes": {"type": "string", "description": "What the customer says about fees, refunds or currency"},
        },
        "required": ["notes"],
    }
    [got] = run(engine, output, ["We were charged 300 EUR in fees for a refund."])
    assert got["ccy"] == "EUR" and got["unit"] == "EUR"
    assert got["notes"] == "We were charged 300 EUR in fees for a refund."


def test_an_array_of_currencies_lists_each_currency_once(engine):
    output = {"type": "object", "properties": {"currencies": {"type": "array", "items": {"type": "string"}}}}
    [got] = run(engine, output, ["Paid 5 EUR, then $3 and 7 euros more."])
    assert got == {"currencies": ["EUR", "USD"]}
