"""`engine: openai:<model>` Functions run by the LocalBackend, configured by the home's config.yaml."""

from __future__ import annotations

import json
import math

import pytest
import yaml

from sutro_sql.backends.local import LocalBackend
from tests.support.fake_openai import FakeOpenAIServer
from tests.support.local_jobs import ticket_rows, wait_for_job

KEY_ENV = "SUTRO_TEST_OPENAI_KEY"


@pytest.fixture
def fake():
    with FakeOpenAIServer(api_key="local-test-key") as server:
        yield server


@pytest.fixture
def openai_home(home, fake, monkeypatch):
    """The example home with every Function switched to `openai:fake-model` and config.yaml
    pointing at the loopback server."""
    monkeypatch.setenv(KEY_ENV, "local-test-key")
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    config = {"openai": {"base_url": fake.base_url, "api_key_env": KEY_ENV, "max_concurrency": 4, "timeout": 10}}
    (home / "config.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    for path in (home / "functions").glob("*.yaml"):
        spec = yaml.safe_load(path.read_text(encoding="utf-8"))
        spec["engine"] = "openai:fake-model"
        path.write_text(yaml.safe_dump(spec), encoding="utf-8")
    return home


def test_a_realtime_call_runs_through_the_openai_engine(openai_home, fake):
    with LocalBackend(openai_home) as backend:
        answer = backend.run_function("ticket-triage", {"subject": "Refund", "body": "a billing mistake"})
    assert answer["function"]["model"] == "openai:fake-model"
    assert answer["response"] == "billing"
    assert math.isclose(sum(p["confidence"] for p in answer["predictions"]), 1.0)
    assert answer["confidence"] == pytest.approx(0.8)
    (request,) = fake.requests
    assert request.body["model"] == "fake-model"
    assert request.headers["authorization"] == "Bearer local-test-key"
    assert answer["usage"]["input_tokens"] == request.usage["prompt_tokens"]


def test_a_batch_job_runs_through_the_openai_engine(openai_home, fake):
    rows = ticket_rows(6)
    with LocalBackend(openai_home) as backend:
        job_id = backend.submit_batch("ticket-triage", rows, id_column="id")
        job = wait_for_job(backend, job_id)
        assert job["status"] == "SUCCEEDED", job
        results = backend.get_job_results(job_id).to_pylist()
    assert [result["id"] for result in results] == [row["id"] for row in rows]
    responses = [json.loads(result["outputs"])["response"] for result in results]
    assert responses == [row["body"].split()[0] for row in rows]  # the label each row names
    assert len(fake.requests) == len(rows)
    assert job["input_tokens"] == sum(request.usage["prompt_tokens"] for request in fake.requests)
