"""Property: money, currency and boolean fields in every shape give schema-valid answers, and a
currency enum only ever answers with one of its options."""

from __future__ import annotations

import jsonschema
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sutro_sql.engines.base import EngineAnswer
from sutro_sql.engines.embedded import EmbeddedEngine
from sutro_sql.functions import FunctionSpec

from .support.encoders import HashedWordsEncoder

CURRENCY_FIELDS = st.sampled_from(
    [
        {"type": "string"},
        {"type": ["string", "null"]},
        {"type": ["string", "null"], "pattern": "^[A-Z]{3}$"},  # a text may name no currency: null allowed
        {"type": ["string", "null"], "pattern": "^[a-z]{3}$", "maxLength": 3},
        {"enum": ["USD", "EUR", "GBP"]},
        {"enum": ["usd", "eur", None]},
        {"enum": ["$", "€", "£", "other"]},
        {"enum": ["Dollar", "Euro"]},
    ]
)
AMOUNT_FIELDS = st.sampled_from(
    [{"type": "number"}, {"type": ["number", "null"]}, {"type": "integer", "minimum": 0}, {"type": ["integer", "null"]}]
)
BOOLEAN_FIELDS = st.sampled_from([{"type": "boolean"}, {"type": ["boolean", "null"]}])
BOOLEAN_NAMES = st.sampled_from(["paid", "is_paid", "is_not_paid", "unpaid", "refundable", "shipped", "flag"])
WORDS = st.sampled_from(
    ["300 EUR", "EUR300", "$-5", "(£12)", "1.200,50 €", "10-20 dollars", "USD 1,200.50", "¥500", "euros",
     "unpaid", "not paid", "paid", "non-refundable", "never shipped", "shipped?", "no", ":", "isn't", "7", "."]
)  # fmt: skip


@st.composite
def money_schemas(draw) -> dict:
    currency = draw(CURRENCY_FIELDS) | {"description": draw(st.sampled_from(["", "The currency"]))}
    pair = {"amount": draw(AMOUNT_FIELDS), "currency": currency}
    properties = {draw(BOOLEAN_NAMES): draw(BOOLEAN_FIELDS)}
    if draw(st.booleans()):
        properties["price"] = {
            "type": "object",
            "properties": pair,
            "required": draw(st.sampled_from([[], ["currency"]])),
        }
    else:
        properties |= pair
    return {
        "type": "object",
        "properties": properties,
        "required": draw(st.lists(st.sampled_from(list(properties)), unique=True)),
    }


ENGINE = EmbeddedEngine(HashedWordsEncoder())


def currency_values(output: dict) -> list:
    inner = output.get("price", output)
    return [inner["currency"]] if isinstance(inner, dict) and "currency" in inner else []


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(schema=money_schemas(), texts=st.lists(st.lists(WORDS, max_size=8).map(" ".join), min_size=1, max_size=3))
def test_money_currency_and_boolean_answers_validate(schema, texts):
    spec = FunctionSpec(name="money-prop", kind="extraction", inputs=["text"], output=schema)
    currency = (schema["properties"].get("price") or schema)["properties"]["currency"]
    for answer in ENGINE.answer(spec, [{"text": t} for t in texts]):
        assert isinstance(answer, EngineAnswer), answer
        jsonschema.validate(answer.output, schema)
        if "enum" in currency:
            assert all(value in currency["enum"] for value in currency_values(answer.output))
