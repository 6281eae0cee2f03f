"""The openai engine against a real chat completions server on loopback (tests/support/fake_openai.py)."""

from __future__ import annotations

import json
import math
import socket
import time

import jsonschema
import pytest

from sutro_sql.config import OpenAISettings
from sutro_sql.engines.base import EngineAnswer, RowFailure
from sutro_sql.engines.openai import (
    CONFIDENCE_WITHOUT_LOGPROBS,
    TOP_LOGPROBS,
    OpenAIEngine,
    chat_completions_url,
    render_input,
)
from sutro_sql.errors import AuthenticationError, BackendUnavailableError, ConfigurationError, ServerError
from sutro_sql.functions import load_spec_file, parse_spec
from sutro_sql.http import RetryPolicy
from tests.conftest import EXAMPLE_FUNCTIONS
from tests.support.fake_openai import FakeOpenAIServer, extraction_rationale

KEY_ENV = "SUTRO_TEST_OPENAI_KEY"
SECRET = "sk-test-very-secret-0123456789"
TRIAGE = load_spec_file(EXAMPLE_FUNCTIONS / "ticket-triage.yaml")[0]
EXTRACTOR = load_spec_file(EXAMPLE_FUNCTIONS / "ticket-extractor.yaml")[0]
BILLING_ROW = {"subject": "Charged twice", "body": "A billing problem with my card"}


class SleepRecorder:
    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


@pytest.fixture
def fake():
    with FakeOpenAIServer() as server:
        yield server


@pytest.fixture
def sleeps() -> SleepRecorder:
    return SleepRecorder()


@pytest.fixture
def make_engine(fake, sleeps, monkeypatch):
    monkeypatch.setenv(KEY_ENV, SECRET)
    engines = []

    def make(model: str = "fake-model", *, base_url: str | None = None, **options) -> OpenAIEngine:
        settings_fields = {
            k: options.pop(k) for k in ("timeout", "max_concurrency", "calibration_temperature") if k in options
        }
        settings_fields.setdefault("calibration_temperature", 1.0)  # fitting is tested in test_openai_calibration.py
        settings = OpenAISettings(base_url=base_url or fake.base_url, api_key_env=KEY_ENV, **settings_fields)
        retry = options.pop("retry", RetryPolicy(sleep=sleeps))
        engine = OpenAIEngine(model, settings, retry=retry, **options)
        engines.append(engine)
        return engine

    yield make
    for engine in engines:
        engine.close()


def only(results: list[EngineAnswer | RowFailure]) -> EngineAnswer:
    (result,) = results
    assert isinstance(result, EngineAnswer), result
    return result


# --- classification -----------------------------------------------------------------------


def test_classification_answers_each_row_in_order_with_predictions_summing_to_one(fake, make_engine):
    rows = [
        BILLING_ROW,
        {"subject": "Help", "body": "my account access is locked"},
        {"subject": "Idea", "body": "a feature request: dark mode"},
    ]
    answers = make_engine().answer(TRIAGE, rows)
    assert [a.output for a in answers] == ["billing", "account_access", "feature_request"]
    for answer in answers:
        assert {label for label, _ in answer.predictions} == set(TRIAGE.labels)
        assert math.isclose(sum(p for _, p in answer.predictions), 1.0)
        assert [p for _, p in answer.predictions] == sorted((p for _, p in answer.predictions), reverse=True)
        assert answer.confidence == answer.predictions[0][1]
        assert answer.rationale == f"the text mentions {answer.output}"


def test_predictions_come_from_the_label_token_logprobs(fake, make_engine):
    fake.label_probs = {"billing": 0.6, "bug": 0.3}  # the other two labels are absent from the top list
    answer = only(make_engine().answer(TRIAGE, [BILLING_ROW]))
    got = dict(answer.predictions)
    assert answer.output == "billing"
    assert got["billing"] == pytest.approx(0.6)
    assert got["bug"] == pytest.approx(0.3)
    assert got["account_access"] == pytest.approx(0.05)  # leftover 0.1 spread over the absent labels
    assert got["feature_request"] == pytest.approx(0.05)


def test_labels_sharing_a_first_token_get_their_own_probabilities(fake, make_engine):
    spec = TRIAGE.model_copy(update={"labels": {"account_access": "", "account_billing": "", "other": ""}})
    fake.label_probs = {"account_access": 0.2, "account_billing": 0.5, "other": 0.3}
    answer = only(make_engine().answer(spec, [{"subject": "s", "body": "b"}]))
    assert answer.output == "account_billing"
    assert dict(answer.predictions) == pytest.approx({"account_access": 0.2, "account_billing": 0.5, "other": 0.3})


def test_calibration_temperature_tempers_the_probabilities(fake, make_engine):
    fake.label_probs = {"billing": 0.64, "bug": 0.16, "account_access": 0.16, "feature_request": 0.04}
    answer = only(make_engine(calibration_temperature=2.0).answer(TRIAGE, [BILLING_ROW]))
    # p ** (1/2): 0.8, 0.4, 0.4, 0.2 -> normalized by 1.8
    assert dict(answer.predictions) == pytest.approx(
        {"billing": 0.8 / 1.8, "bug": 0.4 / 1.8, "account_access": 0.4 / 1.8, "feature_request": 0.2 / 1.8}
    )
    assert answer.confidence == pytest.approx(0.8 / 1.8)


def test_the_request_constrains_the_answer_to_the_labels(fake, make_engine):
    make_engine("qwen-7b").answer(TRIAGE, [BILLING_ROW])
    (request,) = fake.requests
    body = request.body
    labels = list(TRIAGE.labels)
    assert body["model"] == "qwen-7b"
    assert body["temperature"] == 0
    assert body["guided_choice"] == labels
    schema = body["response_format"]["json_schema"]["schema"]
    assert schema["properties"]["label"]["enum"] == labels
    assert body["logprobs"] is True and body["top_logprobs"] == TOP_LOGPROBS
    assert request.headers["authorization"] == f"Bearer {SECRET}"


def test_the_prompt_carries_the_function_labels_and_reviewed_examples(fake, make_engine):
    make_engine().answer(TRIAGE, [BILLING_ROW])
    messages = fake.requests[0].body["messages"]
    system = messages[0]["content"]
    assert messages[0]["role"] == "system"
    assert TRIAGE.description in system
    assert "subject: The ticket's subject line" in system
    for label, description in TRIAGE.labels.items():
        assert f"- {label}: {description}" in system
    turns = messages[1:-1]
    assert [m["role"] for m in turns] == ["user", "assistant"] * len(TRIAGE.examples)
    first = TRIAGE.examples[0]
    assert turns[0]["content"] == f"subject: {first.input['subject']}\nbody: {first.input['body']}"
    assert first.rationale in turns[1]["content"] and first.output in turns[1]["content"]
    assert messages[-1] == {"role": "user", "content": "subject: Charged twice\nbody: A billing problem with my card"}


def test_usage_comes_from_the_server(fake, make_engine):
    answer = only(make_engine().answer(TRIAGE, [BILLING_ROW]))
    usage = fake.requests[0].usage
    assert usage["prompt_tokens"] > 0
    assert (answer.input_tokens, answer.output_tokens) == (usage["prompt_tokens"], usage["completion_tokens"])


def test_a_refused_parameter_is_dropped_and_the_working_shape_remembered(fake, make_engine):
    fake.reject_params = {"guided_choice"}  # as OpenAI does
    engine = make_engine()
    first = only(engine.answer(TRIAGE, [BILLING_ROW]))
    second = only(engine.answer(TRIAGE, [BILLING_ROW]))
    assert first.output == second.output == "billing"
    assert ["guided_choice" in r.body for r in fake.requests] == [True, False, False]
    assert all("response_format" in r.body for r in fake.requests)


def test_a_bare_label_reply_from_guided_choice_has_no_invented_rationale(fake, make_engine):
    fake.reject_params = {"response_format"}
    answer = only(make_engine().answer(TRIAGE, [BILLING_ROW]))
    assert answer.output == "billing"
    assert answer.rationale == ""
    assert answer.confidence == pytest.approx(0.8)


def test_without_logprobs_confidence_is_the_stated_constant(fake, make_engine):
    fake.logprobs_enabled = False
    answer = only(make_engine().answer(TRIAGE, [BILLING_ROW]))
    rest = (1 - CONFIDENCE_WITHOUT_LOGPROBS) / 3
    assert dict(answer.predictions) == pytest.approx(
        {"billing": CONFIDENCE_WITHOUT_LOGPROBS, "bug": rest, "account_access": rest, "feature_request": rest}
    )
    assert answer.confidence == CONFIDENCE_WITHOUT_LOGPROBS


def test_a_row_the_server_refuses_fails_alone(fake, make_engine):
    fake.refuse_text = "TOO_LONG"
    engine = make_engine()
    failed, answered = engine.answer(TRIAGE, [{"subject": "TOO_LONG", "body": "x"}, BILLING_ROW])
    assert isinstance(failed, RowFailure)
    assert "maximum context length" in failed.message
    assert isinstance(answered, EngineAnswer) and answered.output == "billing"
    billing_requests = [r for r in fake.requests if "billing problem" in r.last_user_message]
    assert ["guided_choice" in r.body for r in billing_requests] == [True]  # no downgrade for a row-level 400


def test_an_invalid_label_gets_one_repair_then_fails_the_row(fake, make_engine):
    fake.always_invalid = True
    (failure,) = make_engine().answer(TRIAGE, [BILLING_ROW])
    assert isinstance(failure, RowFailure)
    assert "'no_such_label' is not one of the labels" in failure.message
    assert len(fake.requests) == 2


def test_rows_run_concurrently_up_to_max_concurrency(fake, make_engine):
    fake.reply_delay = 0.05
    rows = [{"subject": f"row {i}", "body": label} for i, label in enumerate(list(TRIAGE.labels) * 2)]
    answers = make_engine(max_concurrency=3).answer(TRIAGE, rows)
    assert [a.output for a in answers] == [row["body"] for row in rows]
    assert 2 <= fake.max_in_flight <= 3


# --- extraction ---------------------------------------------------------------------------


def test_extraction_asks_for_the_answer_and_a_rationale_and_returns_both(fake, make_engine):
    row = {"body": "Order 42: charged 19.5, angry and urgent"}
    answer = only(make_engine().answer(EXTRACTOR, [row]))
    jsonschema.validate(answer.output, EXTRACTOR.output)
    assert answer.output["amount"] == 42.0 and answer.output["sentiment"] == "angry" and answer.output["urgent"]
    assert answer.rationale == extraction_rationale(render_input(EXTRACTOR, row))
    assert answer.predictions == []
    body = fake.requests[0].body
    assert body["response_format"]["json_schema"]["schema"] == {
        "type": "object",
        "properties": {"answer": EXTRACTOR.output, "rationale": {"type": "string"}},
        "required": ["answer", "rationale"],
        "additionalProperties": False,
    }
    usage = fake.requests[0].usage
    assert (answer.input_tokens, answer.output_tokens) == (usage["prompt_tokens"], usage["completion_tokens"])


def test_extraction_confidence_counts_the_answer_tokens_not_the_rationale(fake, make_engine):
    fake.token_prob, fake.rationale_token_prob = 0.9, 0.3
    answer = only(make_engine().answer(EXTRACTOR, [{"body": "happy customer"}]))
    assert answer.confidence == pytest.approx(0.9)  # exp(mean logprob) of the answer's tokens


def test_the_extraction_prompt_and_examples_use_the_answer_and_rationale_shape(fake, make_engine):
    make_engine().answer(EXTRACTOR, [{"body": "happy customer"}])
    messages = fake.requests[0].body["messages"]
    assert '{"answer": <an object that matches the schema>, "rationale":' in messages[0]["content"]
    replies = [json.loads(m["content"]) for m in messages[1:-1] if m["role"] == "assistant"]
    assert replies == [{"answer": e.output, "rationale": e.rationale or ""} for e in EXTRACTOR.examples]


def test_a_bare_reply_valid_against_the_schema_is_accepted_with_no_rationale(fake, make_engine):
    fake.ignore_answer_wrapper = True
    answer = only(make_engine().answer(EXTRACTOR, [{"body": "Order 42: angry and urgent"}]))
    jsonschema.validate(answer.output, EXTRACTOR.output)
    assert answer.output["amount"] == 42.0
    assert answer.rationale == ""
    assert answer.confidence == pytest.approx(0.9)
    assert len(fake.requests) == 1  # no repair turn


def test_an_invalid_extraction_is_repaired_once_with_the_validation_error(fake, make_engine):
    fake.script("invalid")
    answer = only(make_engine().answer(EXTRACTOR, [{"body": "happy customer"}]))
    jsonschema.validate(answer.output, EXTRACTOR.output)
    assert len(fake.requests) == 2
    assert answer.rationale == extraction_rationale(fake.requests[1].last_user_message)  # the repaired reply's
    repair = fake.requests[1].body["messages"]
    assert repair[-2]["role"] == "assistant" and "__invalid__" in repair[-2]["content"]
    assert repair[-1]["content"].startswith("That reply is invalid: answer[")
    assert "does not match the output schema" in repair[-1]["content"]
    assert '{"answer":' in repair[-1]["content"]
    assert answer.input_tokens == sum(r.usage["prompt_tokens"] for r in fake.requests)


def test_an_invalid_bare_reply_is_repaired_with_a_request_for_the_answer_field(fake, make_engine):
    fake.ignore_answer_wrapper = True
    fake.script("invalid")
    answer = only(make_engine().answer(EXTRACTOR, [{"body": "happy customer"}]))
    jsonschema.validate(answer.output, EXTRACTOR.output)
    repair = fake.requests[1].body["messages"][-1]["content"]
    assert 'the reply has no "answer" field, and as a bare answer the reply[' in repair
    assert "does not match the output schema" in repair


def test_an_extraction_still_invalid_after_repair_is_a_row_failure(fake, make_engine):
    fake.always_invalid = True
    (failure,) = make_engine().answer(EXTRACTOR, [{"body": "happy customer"}])
    assert isinstance(failure, RowFailure)
    assert "after one repair attempt" in failure.message
    assert "does not match the output schema" in failure.message


def test_extraction_without_logprobs_uses_the_stated_constant(fake, make_engine):
    fake.logprobs_enabled = False
    answer = only(make_engine().answer(EXTRACTOR, [{"body": "neutral note"}]))
    assert answer.confidence == 0.5


# --- network and configuration ------------------------------------------------------------


def test_429_waits_the_retry_after_then_succeeds(fake, make_engine, sleeps):
    fake.retry_after = "0.25"
    fake.script(429)
    answer = only(make_engine().answer(TRIAGE, [BILLING_ROW]))
    assert answer.output == "billing"
    assert sleeps.waits == [0.25]


def test_5xx_is_retried_with_backoff_then_succeeds(fake, make_engine, sleeps):
    fake.script(500, 503)
    answer = only(make_engine().answer(TRIAGE, [BILLING_ROW]))
    assert answer.output == "billing"
    assert len(fake.requests) == 3 and len(sleeps.waits) == 2


def test_a_5xx_outage_raises_for_the_batch(fake, make_engine):
    fake.script(*[500] * 5)
    with pytest.raises(ServerError, match="500|server had an error"):
        make_engine(retry=RetryPolicy(max_retries=2, sleep=lambda s: None)).answer(TRIAGE, [BILLING_ROW])


def test_a_malformed_body_is_a_clear_error(fake, make_engine):
    fake.script("malformed")
    with pytest.raises(ServerError, match="not a chat completion"):
        make_engine().answer(TRIAGE, [BILLING_ROW])


def test_a_slow_server_times_out_with_a_clear_error(fake, make_engine):
    fake.script("slow", "slow")
    engine = make_engine(timeout=0.3, retry=RetryPolicy(max_retries=1, sleep=lambda s: None))
    started = time.monotonic()
    with pytest.raises(BackendUnavailableError, match="timed out"):
        engine.answer(TRIAGE, [BILLING_ROW])
    assert time.monotonic() - started < 2.5


def test_an_unreachable_server_raises_backend_unavailable(make_engine):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    engine = make_engine(base_url=f"http://127.0.0.1:{port}", retry=RetryPolicy(max_retries=1, sleep=lambda s: None))
    with pytest.raises(BackendUnavailableError, match="cannot connect"):
        engine.answer(TRIAGE, [BILLING_ROW])


def test_the_api_key_never_appears_in_errors_or_reprs(fake, make_engine):
    fake.api_key = "the-right-key"  # the server echoes the wrong key it got in its 401 body
    engine = make_engine()
    with pytest.raises(AuthenticationError) as caught:
        engine.answer(TRIAGE, [BILLING_ROW])
    message = str(caught.value)
    assert "Incorrect API key" in message and KEY_ENV in message
    assert SECRET not in message and SECRET not in repr(caught.value.args)
    assert SECRET not in repr(engine)


def test_a_missing_base_url_says_how_to_set_it(monkeypatch):
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    with pytest.raises(ConfigurationError) as caught:
        OpenAIEngine("m", OpenAISettings())
    assert "openai.base_url" in str(caught.value) and "OPENAI_BASE_URL" in str(caught.value)


@pytest.mark.parametrize("suffix", ["", "/", "/v1", "/v1/", "/v1/chat/completions"])
def test_the_base_url_works_with_or_without_v1(suffix):
    assert chat_completions_url("http://127.0.0.1:8000" + suffix) == "http://127.0.0.1:8000/v1/chat/completions"


def test_a_base_url_without_v1_reaches_the_server(fake, make_engine):
    answer = only(make_engine(base_url=fake.base_url.removesuffix("/v1")).answer(TRIAGE, [BILLING_ROW]))
    assert answer.output == "billing"
    assert fake.requests[0].path == "/v1/chat/completions"


def test_single_input_examples_given_as_plain_strings_render(fake, make_engine):
    spec = parse_spec(
        {
            "name": "sentiment",
            "kind": "classification",
            "inputs": ["text"],
            "labels": ["positive", "negative"],
            "examples": [{"input": "great film", "output": "positive"}],
        }
    )
    answer = only(make_engine().answer(spec, [{"text": "a negative take"}]))
    assert answer.output == "negative"
    assert fake.requests[0].body["messages"][1]["content"] == "text: great film"
