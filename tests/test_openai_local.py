"""`engine: openai:<model>` Functions run by the LocalBackend, configured by the home's config.yaml."""

from __future__ import annotations

import json
import math

import pytest
import yaml

from sutro_sql.backends.local import LocalBackend
from sutro_sql.backends.local import backend as local_backend_module
from sutro_sql.config import OpenAISettings
from sutro_sql.engines.openai import OpenAIEngine, render_input
from tests.support.engines import KeywordEngine
from tests.support.fake_openai import FakeOpenAIServer
from tests.support.local_jobs import ticket_rows, wait_for_job

KEY_ENV = "SUTRO_TEST_OPENAI_KEY"
TICKET = {"subject": "Refund", "body": "a billing mistake"}


@pytest.fixture
def fake():
    with FakeOpenAIServer(api_key="local-test-key") as server:
        yield server


@pytest.fixture
def openai_home(home, fake, monkeypatch):
    """The example home with every Function switched to `openai:fake-model` and config.yaml
    pointing at the loopback server (calibration left at its default, "auto")."""
    monkeypatch.setenv(KEY_ENV, "local-test-key")
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    write_openai_config(home, fake)
    for path in (home / "functions").glob("*.yaml"):
        spec = yaml.safe_load(path.read_text(encoding="utf-8"))
        spec["engine"] = "openai:fake-model"
        path.write_text(yaml.safe_dump(spec), encoding="utf-8")
    return home


def write_openai_config(home, fake, **openai) -> None:
    config = {"openai": {"base_url": fake.base_url, "api_key_env": KEY_ENV, "max_concurrency": 4, "timeout": 10}}
    config["openai"].update(openai)
    (home / "config.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")


def test_a_realtime_call_runs_through_the_openai_engine(openai_home, fake):
    write_openai_config(openai_home, fake, calibration_temperature=1.0)
    with LocalBackend(openai_home) as backend:
        answer = backend.run_function("ticket-triage", TICKET)
    assert answer["function"]["model"] == "openai:fake-model"
    assert answer["response"] == "billing"
    assert math.isclose(sum(p["confidence"] for p in answer["predictions"]), 1.0)
    assert answer["confidence"] == pytest.approx(0.8)
    (request,) = fake.requests  # a fixed temperature: no calibration calls
    assert request.body["model"] == "fake-model"
    assert request.headers["authorization"] == "Bearer local-test-key"
    assert answer["usage"]["input_tokens"] == request.usage["prompt_tokens"]


def test_a_batch_job_is_calibrated_once_and_billed_only_for_its_rows(openai_home, fake):
    rows = ticket_rows(6)
    with LocalBackend(openai_home) as backend:
        spec = backend.get_function_spec("ticket-triage")
        job_id = backend.submit_batch("ticket-triage", rows, id_column="id")
        job = wait_for_job(backend, job_id)
        assert job["status"] == "SUCCEEDED", job
        results = backend.get_job_results(job_id).to_pylist()
    assert [result["id"] for result in results] == [row["id"] for row in rows]
    responses = [json.loads(result["outputs"])["response"] for result in results]
    assert responses == [row["body"].split()[0] for row in rows]  # the label each row names
    rendered_rows = {render_input(spec, row) for row in rows}
    row_requests = [r for r in fake.requests if r.last_user_message in rendered_rows]
    assert len(row_requests) == len(rows)
    assert len(fake.requests) == len(rows) + len(spec.examples)  # each reviewed example asked once, held out
    assert job["input_tokens"] == sum(request.usage["prompt_tokens"] for request in row_requests)


# --- close() ------------------------------------------------------------------------------


class ClosableKeywordEngine(KeywordEngine):
    """A KeywordEngine that records close(); also a "module:attr" factory for config.yaml."""

    made: list[ClosableKeywordEngine] = []

    def __init__(self) -> None:
        super().__init__()
        self.closed = False
        self.made.append(self)

    def close(self) -> None:
        self.closed = True


def test_close_closes_the_engines_the_backend_made(openai_home, fake):
    backend = LocalBackend(openai_home, start_workers=False)
    spec = backend.get_function_spec("ticket-triage")
    engine = backend.engine_for(spec)
    assert isinstance(engine, OpenAIEngine)
    backend.close()
    assert engine._client.is_closed
    with pytest.raises(RuntimeError):  # its pool takes no more rows
        engine.answer(spec, [TICKET])
    assert fake.requests == []


def test_close_leaves_an_engine_passed_in_open(openai_home, fake):
    settings = OpenAISettings(base_url=fake.base_url, api_key_env=KEY_ENV, calibration_temperature=1.0)
    with OpenAIEngine("fake-model", settings) as engine:
        with LocalBackend(openai_home, engine=engine, start_workers=False) as backend:
            assert backend.run_function("ticket-triage", TICKET)["response"] == "billing"
        assert not engine._client.is_closed
        spec = backend.get_function_spec("ticket-triage")
        (answer,) = engine.answer(spec, [TICKET])
        assert answer.output == "billing"


def test_close_leaves_the_process_wide_embedded_engine_open(home, monkeypatch):
    shared = ClosableKeywordEngine()
    monkeypatch.setattr(local_backend_module, "_shared_embedded_engine", shared)
    with LocalBackend(home, start_workers=False) as backend:
        spec = backend.get_function_spec("ticket-triage")
        assert spec.engine == "embedded"
        assert backend.engine_for(spec) is shared
    assert not shared.closed


def test_close_closes_an_engine_made_by_the_configured_factory(home, monkeypatch):
    monkeypatch.setattr(ClosableKeywordEngine, "made", [])
    (home / "config.yaml").write_text(f"engine: {__name__}:ClosableKeywordEngine\n", encoding="utf-8")
    backend = LocalBackend(home, start_workers=False)
    assert backend.run_function("ticket-triage", TICKET)["response"] == "billing"
    backend.close()
    backend.close()  # twice is harmless
    assert [engine.closed for engine in ClosableKeywordEngine.made] == [True]
