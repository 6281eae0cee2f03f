"""LocalBackend real-time calls: answer shapes, validation, errors, engines, specs on disk."""

from __future__ import annotations

import math
import shutil
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import yaml

from sutro_sql.backends.base import Backend
from sutro_sql.backends.local import LocalBackend
from sutro_sql.engines.base import EngineAnswer
from sutro_sql.errors import NotFoundError, ServerError, ValidationError

TICKET = {"subject": "Charged twice", "body": "I need a refund for a billing error"}


def test_local_backend_implements_the_backend_protocol(local_backend):
    assert isinstance(local_backend, Backend)
    assert local_backend.check_auth() is True
    assert local_backend.identity == "local"  # no path: a committed cache replays from any checkout
    quotas = local_backend.get_quotas()
    assert [sorted(q) for q in quotas] == [["row_quota", "token_quota"]] * 2


def test_classification_answer_has_the_v1_union_shape(local_backend):
    answer = local_backend.run_function("ticket-triage", TICKET)
    spec = local_backend.get_function_spec("ticket-triage")
    assert answer["request_id"].startswith("rt_")
    assert answer["function"] == {
        "name": "ticket-triage",
        "revision": spec.revision,
        "model": "keyword",
        "model_source": "local",
    }
    assert answer["output"] == answer["response"] == "billing"
    labels = [p["label"] for p in answer["predictions"]]
    probabilities = [p["confidence"] for p in answer["predictions"]]
    assert sorted(labels) == sorted(spec.labels)
    assert probabilities == sorted(probabilities, reverse=True)
    assert math.isclose(sum(probabilities), 1.0)
    assert answer["confidence"] == probabilities[0]
    assert isinstance(answer["rationale"], str) and answer["rationale"]
    usage = answer["usage"]
    assert usage["input_tokens"] > 0 and usage["output_tokens"] > 0
    expected_cost = (usage["input_tokens"] + usage["output_tokens"]) / 1000 * 0.0005
    assert math.isclose(usage["cost_usd"], expected_cost)


def test_extraction_answer_has_output_object_rationale_and_no_predictions(local_backend):
    answer = local_backend.run_function("ticket-extractor", {"body": "Order ORD-1 arrived broken"})
    assert set(answer) == {"request_id", "function", "output", "confidence", "usage", "rationale"}
    properties = local_backend.get_function_spec("ticket-extractor").output["properties"]
    assert set(answer["output"]) == set(properties)
    assert answer["output"]["sentiment"] in properties["sentiment"]["enum"]
    assert 0.0 <= answer["confidence"] <= 1.0


def test_plain_string_input_is_accepted_for_a_one_input_function(local_backend):
    answer = local_backend.run_function("ticket-extractor", "Order ORD-1 arrived broken")
    assert answer["output"]["order_id"] == "Order"


def test_confidence_scoring_false_returns_null_confidence(local_backend):
    answer = local_backend.run_function("ticket-triage", TICKET, confidence_scoring=False)
    assert answer["confidence"] is None
    assert answer["response"] == "billing"


def test_values_convert_as_batch_converts_a_row(local_backend, keyword_engine):
    seen = []
    original = keyword_engine.answer

    def recording(spec, rows):
        seen.extend(rows)
        return original(spec, rows)

    keyword_engine.answer = recording
    local_backend.run_function("ticket-triage", {"subject": None, "body": {"tags": [1, 2]}, "extra": 1})
    assert seen == [{"subject": "", "body": '{"tags":[1,2]}'}]


def test_missing_required_field_is_a_validation_error_naming_it(local_backend):
    with pytest.raises(ValidationError, match="body") as caught:
        local_backend.run_function("ticket-triage", {"subject": "hi"})
    assert caught.value.code == "invalid_input"
    assert caught.value.request_id.startswith("rt_")


def test_string_input_for_a_two_input_function_is_refused(local_backend):
    with pytest.raises(ValidationError, match="subject, body"):
        local_backend.run_function("ticket-triage", "just text")


def test_unknown_function_is_not_found(local_backend):
    with pytest.raises(NotFoundError) as caught:
        local_backend.run_function("no-such-function", {"x": "y"})
    assert caught.value.code == "function_not_found"
    with pytest.raises(NotFoundError):
        local_backend.get_function_spec("no-such-function")


def test_a_row_failure_is_a_provider_error_with_the_engine_message(local_backend):
    with pytest.raises(ServerError, match="engine refused the row") as caught:
        local_backend.run_function("ticket-triage", {"subject": "x", "body": "FAIL_ROW please"})
    assert caught.value.code == "provider_error"


def test_an_engine_exception_is_a_provider_error(home):
    class BrokenEngine:
        name = "broken"

        def answer(self, spec, rows):
            raise RuntimeError("model server down")

    with LocalBackend(home, engine=BrokenEngine(), start_workers=False) as backend:
        with pytest.raises(ServerError, match="model server down") as caught:
            backend.run_function("ticket-triage", TICKET)
    assert caught.value.code == "provider_error"


def test_concurrent_calls_from_many_threads_match_sequential_answers(local_backend):
    inputs = [{"subject": f"s{i}", "body": f"text {i} bug" if i % 3 else f"text {i}"} for i in range(200)]
    sequential = [local_backend.run_function("ticket-triage", row)["output"] for row in inputs]
    with ThreadPoolExecutor(max_workers=8) as pool:
        parallel = list(pool.map(lambda row: local_backend.run_function("ticket-triage", row)["output"], inputs))
    assert parallel == sequential
    request_ids = set()
    lock = threading.Lock()

    def call(row):
        rid = local_backend.run_function("ticket-triage", row)["request_id"]
        with lock:
            request_ids.add(rid)

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(call, inputs))
    assert len(request_ids) == len(inputs)


def test_the_engine_comes_from_the_home_config_when_none_is_given(home, monkeypatch):
    monkeypatch.setenv("SUTRO_SQL_ENGINE", "tests.support.engines:KeywordEngine")
    with LocalBackend(home, start_workers=False) as backend:
        assert backend.run_function("ticket-triage", TICKET)["function"]["model"] == "keyword"


def test_a_spec_file_added_or_edited_after_start_is_picked_up(local_backend, home):
    spec_file = home / "functions" / "tone.yaml"
    spec = {"name": "tone", "kind": "classification", "inputs": ["text"], "labels": ["calm", "angry"]}
    spec_file.write_text(yaml.safe_dump(spec))
    first = local_backend.run_function("tone", "I am angry")
    assert first["output"] == "angry"
    spec["labels"] = ["calm", "angry", "sad"]
    spec_file.write_text(yaml.safe_dump(spec) + "\n# edited\n")
    second = local_backend.run_function("tone", "I am sad")
    assert second["output"] == "sad"
    assert second["function"]["revision"] != first["function"]["revision"]
    spec_file.unlink()
    with pytest.raises(NotFoundError):
        local_backend.run_function("tone", "gone")


def test_publish_writes_a_spec_that_a_new_backend_loads(local_backend, home, keyword_engine):
    spec = local_backend.publish(
        {"name": "urgency", "kind": "classification", "inputs": ["text"], "labels": {"urgent": "now", "later": ""}}
    )
    assert (home / "functions" / "urgency.yaml").is_file()
    assert "urgency" in [s.name for s in local_backend.functions()]
    with LocalBackend(home, engine=keyword_engine, start_workers=False) as other:
        assert other.get_function_spec("urgency").revision == spec.revision
        assert other.run_function("urgency", "this is urgent")["output"] == "urgent"


def test_functions_dir_can_live_outside_the_home(tmp_path, home, keyword_engine):
    elsewhere = tmp_path / "specs"
    shutil.copytree(home / "functions", elsewhere)
    (home / "functions" / "ticket-triage.yaml").unlink()
    with LocalBackend(tmp_path / "h2", engine=keyword_engine, functions_dir=elsewhere, start_workers=False) as b:
        assert b.run_function("ticket-triage", TICKET)["output"] == "billing"


def test_engine_reported_tokens_win_over_counted_ones(home):
    class CountingEngine:
        name = "counting"

        def answer(self, spec, rows):
            return [
                EngineAnswer(
                    output="bug",
                    confidence=1.0,
                    rationale="r",
                    predictions=[("bug", 1.0)],
                    input_tokens=111,
                    output_tokens=7,
                )
                for _ in rows
            ]

    with LocalBackend(home, engine=CountingEngine(), start_workers=False) as backend:
        usage = backend.run_function("ticket-triage", TICKET)["usage"]
    assert (usage["input_tokens"], usage["output_tokens"]) == (111, 7)


def test_publishing_a_known_name_replaces_the_file_that_defined_it(local_backend, home):
    (home / "functions" / "ticket-triage.yaml").rename(home / "functions" / "triage.yml")
    spec = local_backend.get_function_spec("ticket-triage").model_copy(update={"description": "Routes tickets."})
    published = local_backend.publish(spec)
    assert published.description == "Routes tickets."
    assert not (home / "functions" / "ticket-triage.yaml").exists()
    assert "Routes tickets." in (home / "functions" / "triage.yml").read_text()
    assert local_backend.run_function("ticket-triage", TICKET)["function"]["revision"] == published.revision
