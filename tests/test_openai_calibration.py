"""The openai engine fits its calibration temperature on the Function's reviewed examples, each
asked held out, against the loopback chat completions server (tests/support/fake_openai.py).

The fake names the label its input mentions with probability `top_prob`; examples whose text
mentions the other label are ones the over-confident "model" gets wrong."""

from __future__ import annotations

import logging
import math
from concurrent.futures import ThreadPoolExecutor

import pytest

from sutro_sql.config import HomeConfig, OpenAISettings
from sutro_sql.engines.base import EngineAnswer
from sutro_sql.engines.openai import (
    CONFIDENCE_WITHOUT_LOGPROBS,
    MIN_CALIBRATION_EXAMPLES,
    OpenAIEngine,
    fit_temperature,
    render_input,
)
from sutro_sql.errors import ConfigurationError, ServerError
from sutro_sql.functions import FunctionSpec, load_spec_file, parse_spec
from sutro_sql.http import RetryPolicy
from tests.conftest import EXAMPLE_FUNCTIONS
from tests.support.fake_openai import FakeOpenAIServer

OVERCONFIDENT = 0.99
ROW = {"text": "positive, a fine film"}


def sentiment(right: int, wrong: int, *, labels: tuple[str, ...] = ("positive", "negative")) -> FunctionSpec:
    """`right` examples that name their label, then `wrong` ones that name the other label."""
    examples = [
        {"input": f"{labels[i % len(labels)]}: review {i}", "output": labels[i % len(labels)]} for i in range(right)
    ]
    examples += [{"input": f"positive? hardly, review {i}", "output": "negative"} for i in range(wrong)]
    return parse_spec(
        {
            "name": "sentiment",
            "kind": "classification",
            "inputs": ["text"],
            "labels": ["positive", "negative"],
            "examples": examples,
            "engine": "openai:fake-model",
        }
    )


#: 6 of 8 held-out answers right, each given 0.99: a fitted confidence should be near 0.75.
SPEC = sentiment(right=6, wrong=2)


@pytest.fixture
def fake():
    with FakeOpenAIServer() as server:
        server.top_prob = OVERCONFIDENT
        yield server


@pytest.fixture
def make_engine(fake):
    engines = []

    def make(*, calibration_temperature: float | str = "auto", max_concurrency: int = 8, **options) -> OpenAIEngine:
        settings = OpenAISettings(
            base_url=fake.base_url, calibration_temperature=calibration_temperature, max_concurrency=max_concurrency
        )
        engine = OpenAIEngine("fake-model", settings, retry=RetryPolicy(max_retries=0, sleep=lambda s: None))
        engines.append(engine)
        return engine

    yield make
    for engine in engines:
        engine.close()


def held_out_requests(fake: FakeOpenAIServer, spec: FunctionSpec) -> list:
    texts = {render_input(spec, example.input) for example in spec.examples}
    return [request for request in fake.requests if request.last_user_message in texts]


def only_answer(engine: OpenAIEngine, spec: FunctionSpec, row: dict[str, str]) -> EngineAnswer:
    (answer,) = engine.answer(spec, [row])
    assert isinstance(answer, EngineAnswer), answer
    return answer


def test_an_over_confident_model_gets_a_temperature_above_1_and_confidence_near_its_accuracy(fake, make_engine):
    engine = make_engine()
    answer = only_answer(engine, SPEC, ROW)
    temperature = engine.calibration_for(SPEC)
    assert temperature > 1
    assert answer.output == "positive"
    assert answer.confidence == pytest.approx(0.75, abs=0.03)  # held-out accuracy 6/8, raw 0.99
    assert math.isclose(sum(p for _, p in answer.predictions), 1.0)
    assert len(held_out_requests(fake, SPEC)) == len(SPEC.examples)
    assert len(fake.requests) == len(SPEC.examples) + 1


def test_each_example_is_asked_with_the_others_as_few_shot_turns(fake, make_engine):
    make_engine().calibration_for(SPEC)
    requests = held_out_requests(fake, SPEC)
    rendered = [render_input(SPEC, example.input) for example in SPEC.examples]
    assert sorted(request.last_user_message for request in requests) == sorted(rendered)
    for request in requests:
        asked = request.last_user_message
        shots = [m["content"] for m in request.body["messages"][1:-1] if m["role"] == "user"]
        assert shots == [text for text in rendered if text != asked]
        assert "guided_choice" in request.body and request.body["logprobs"] is True  # the rows' request shape


def test_a_fixed_temperature_makes_no_calibration_calls(fake, make_engine):
    engine = make_engine(calibration_temperature=2.0)
    answer = only_answer(engine, SPEC, ROW)
    assert len(fake.requests) == 1
    assert engine.calibration_for(SPEC) == 2.0
    tempered = OVERCONFIDENT**0.5 / (OVERCONFIDENT**0.5 + (1 - OVERCONFIDENT) ** 0.5)
    assert answer.confidence == pytest.approx(tempered)


@pytest.mark.parametrize(
    "spec",
    [
        sentiment(right=MIN_CALIBRATION_EXAMPLES - 2, wrong=1),
        sentiment(right=MIN_CALIBRATION_EXAMPLES, wrong=0, labels=("positive",)),
    ],
    ids=["too-few-examples", "examples-of-one-label"],
)
def test_without_enough_evidence_no_calibration_calls_are_made(fake, make_engine, spec):
    engine = make_engine()
    answer = only_answer(engine, spec, ROW)
    assert engine.calibration_for(spec) == 1.0
    assert len(fake.requests) == 1
    assert answer.confidence == pytest.approx(OVERCONFIDENT)


def test_the_fit_happens_once_for_many_rows_and_threads_and_again_for_a_new_revision(fake, make_engine):
    fake.reply_delay = 0.01
    engine = make_engine(max_concurrency=4)
    chunks = [[{"text": f"positive thread {t} row {r}"} for r in range(3)] for t in range(4)]
    with ThreadPoolExecutor(max_workers=4) as threads:
        answered = list(threads.map(lambda rows: engine.answer(SPEC, rows), chunks))
    confidences = {round(answer.confidence, 12) for answers in answered for answer in answers}
    assert len(confidences) == 1  # every row tempered by the one fitted temperature
    assert len(held_out_requests(fake, SPEC)) == len(SPEC.examples)
    assert len(fake.requests) == len(SPEC.examples) + 12

    revised = SPEC.model_copy(update={"description": "Is the review positive or negative?"})
    before = len(fake.requests)
    assert engine.calibration_for(revised) == engine.calibration_for(SPEC)
    assert len(fake.requests) - before == len(SPEC.examples)


def test_a_transport_error_during_the_fit_raises_and_nothing_is_cached(fake, make_engine):
    engine = make_engine(max_concurrency=1)  # held-out calls one at a time: the first one fails
    fake.script(500)
    with pytest.raises(ServerError):
        engine.answer(SPEC, [ROW])
    assert engine.calibration_for(SPEC) > 1  # fitted now, not stuck at 1.0
    # the failed call (no held-out call starts after it), then a full refit
    assert len(fake.requests) == 1 + len(SPEC.examples)


def test_no_held_out_call_starts_after_one_fails_while_another_is_in_flight(fake, make_engine):
    engine = make_engine(max_concurrency=2)
    held, failing = (render_input(SPEC, example.input) for example in SPEC.examples[:2])
    fake.text_behaviours = {held: "hold", failing: 500}  # the first two start together
    with pytest.raises(ServerError):
        engine.calibration_for(SPEC)  # raises while the first example is still held
    asked = {request.last_user_message for request in fake.requests}
    fake.released.set()
    # the worker freed by the failure asked nothing more (the held request may still be on its way)
    assert asked - {held} == {failing}


def test_a_held_out_example_the_server_refuses_is_left_out_of_the_fit(fake, make_engine):
    spec = sentiment(right=6, wrong=2)
    full = make_engine().calibration_for(spec)
    refused = spec.examples[-1]  # a wrong one: without it the model looks better (6 of 7)
    fake.refuse_text = refused.input
    fitted = make_engine().calibration_for(spec)
    assert 1 < fitted < full


def test_without_logprobs_the_temperature_is_1(fake, make_engine):
    fake.logprobs_enabled = False
    engine = make_engine()
    answer = only_answer(engine, SPEC, ROW)
    assert engine.calibration_for(SPEC) == 1.0
    assert answer.confidence == CONFIDENCE_WITHOUT_LOGPROBS


def test_extraction_is_not_calibrated(fake, make_engine):
    extractor = load_spec_file(EXAMPLE_FUNCTIONS / "ticket-extractor.yaml")[0]
    extractor = extractor.model_copy(update={"examples": extractor.examples * 3})
    engine = make_engine()
    assert engine.calibration_for(extractor) == 1.0
    assert fake.requests == []


def test_the_fitted_temperature_is_logged(fake, make_engine, caplog):
    caplog.set_level(logging.INFO, logger="sutro_sql.engines.openai")
    temperature = make_engine().calibration_for(SPEC)
    (record,) = [r for r in caplog.records if r.name == "sutro_sql.engines.openai"]
    message = record.getMessage()
    assert f"fitted calibration temperature {temperature:.3f}" in message
    assert SPEC.name in message and SPEC.revision in message and "8 held-out examples" in message


# --- the fit itself -----------------------------------------------------------------------


def test_calibrated_probabilities_keep_temperature_1():
    observed = [({"a": 0.75, "b": 0.25}, "a")] * 3 + [({"a": 0.75, "b": 0.25}, "b")]
    assert fit_temperature(observed) == 1.0


def test_an_under_confident_model_gets_a_temperature_below_1():
    assert fit_temperature([({"a": 0.6, "b": 0.4}, "a")] * 10) < 1


def test_a_true_label_given_probability_0_is_floored_not_fatal():
    observed = [({"a": 1.0, "b": 0.0}, "a")] * 3 + [({"a": 1.0, "b": 0.0}, "b")]
    temperature = fit_temperature(observed)
    assert math.isfinite(temperature) and temperature > 1


# --- settings -----------------------------------------------------------------------------


def test_calibration_temperature_defaults_to_auto_and_accepts_a_number(tmp_path):
    assert OpenAISettings().calibration_temperature == "auto"
    (tmp_path / "config.yaml").write_text("openai: {calibration_temperature: 1.5}\n", encoding="utf-8")
    assert HomeConfig.load(tmp_path).openai.calibration_temperature == 1.5


@pytest.mark.parametrize("value", ["0", "-1", "warm", "true"])
def test_calibration_temperature_rejects_anything_but_a_positive_number_or_auto(tmp_path, value):
    (tmp_path / "config.yaml").write_text(f"openai: {{calibration_temperature: {value}}}\n", encoding="utf-8")
    with pytest.raises(ConfigurationError, match="positive number or 'auto'"):
        HomeConfig.load(tmp_path)
