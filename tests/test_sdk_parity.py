"""Drop-in for the official SDK: the SDK's settings and job methods, with its names, arguments
and return shapes, on the Client and at module level, against `sutro-sql serve` on loopback."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

import sutro_sql
from sutro_sql.client import Client
from sutro_sql.errors import ConfigurationError, JobFailedError
from tests.sql_support import REPO

TICKETS = [
    {"subject": "Refund", "body": "billing error on my invoice"},
    {"subject": "Crash", "body": "the app has a bug"},
]

#: The SDK README's "Run a Sutro Function" and "Job management" sections, with `import sutro as so`
#: changed to `import sutro_sql as so` and the Function and its fields to a published one.
README_SCRIPT = r"""
import json, os, sys
import polars as pl
import sutro_sql as so

so.set_api_url(os.environ["DEPLOYMENT_URL"])
so.set_api_key(os.environ["DEPLOYMENT_KEY"])

df = pl.DataFrame(
    {
        "subject": ["Login broken", "Refund"],
        "body": ["Customer cannot log in: a bug in the app", "Where is my refund? billing error"],
    }
)

job_id = so.batch_run_function(
    name="ticket-triage",
    data=df,
    job_priority=1,
    job_name="support-ticket-triage",
)

results = so.await_job_completion(job_id)
print(results, file=sys.stderr)

answer = so.run_function("ticket-triage", {"subject": "Crash", "body": "the app has a bug"})

jobs = so.list_jobs()
status = so.get_job_status(job_id)
so.attach(job_id)
with_inputs = so.get_job_results(job_id, include_inputs=True)
cancelled = so.cancel_job(job_id)
quotas = so.get_quotas()
print(json.dumps({
    "columns": results.columns, "rows": results.height, "answer": answer.output, "status": status,
    "jobs": [job["job_id"] for job in jobs], "inputs_column": "inputs" in with_inputs.columns,
    "cancelled": cancelled, "quotas": quotas,
}))
"""


def test_the_sdk_readme_runs_unchanged_but_for_the_import(deployment):
    env = {k: v for k, v in os.environ.items() if not k.startswith("SUTRO_")}
    env.update(
        DEPLOYMENT_URL=deployment.url,
        DEPLOYMENT_KEY=deployment.api_key,
        SUTRO_SQL_PROGRESS="0",
        PYTHONPATH=str(REPO),
        NO_PROXY="127.0.0.1,localhost",
    )
    done = subprocess.run(
        [sys.executable, "-c", README_SCRIPT], capture_output=True, text=True, timeout=120, env=env, cwd=REPO
    )
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["rows"] == 2 and "response" in out["columns"] and "confidence_score" in out["columns"]
    assert out["answer"] == "bug" and out["status"] == "SUCCEEDED" and out["inputs_column"]
    assert out["jobs"][0] in out["jobs"] and out["cancelled"]["cancelled"] is False
    assert isinstance(out["quotas"], list) and {"row_quota", "token_quota"} <= set(out["quotas"][0])


def test_the_first_positional_argument_is_the_api_key(deployment, tmp_path):
    with Client(deployment.api_key, deployment.url, home=tmp_path) as client:
        assert client.get_quotas() and client.backend.identity == f"remote:{deployment.url.rstrip('/')}/v1"


def test_moving_to_another_deployment_clears_the_key_until_set_api_key(deployment, tmp_path):
    with Client(deployment.api_key, deployment.url, home=tmp_path) as client:
        client.set_api_url("http://127.0.0.2:9")
        with pytest.raises(ConfigurationError, match="SUTRO_API_KEY is not"):
            client.list_jobs()
        client.set_api_url(deployment.url)
        client.set_api_key(deployment.api_key)
        assert isinstance(client.list_jobs(), list)


def test_set_base_url_is_a_deprecated_alias(deployment, tmp_path):
    with Client(deployment.api_key, deployment.url, home=tmp_path) as client, pytest.deprecated_call():
        client.set_base_url(deployment.url)


def test_try_authentication_answers_for_a_key_without_keeping_it(deployment, tmp_path):
    with Client(deployment.api_key, deployment.url, home=tmp_path) as client:
        assert client.try_authentication(deployment.api_key) == {"authenticated": True}
        assert client.try_authentication("not-the-key") is None
        assert isinstance(client.list_jobs(), list)  # its own key still works


def test_a_client_given_a_backend_refuses_to_change_deployment(local_backend):
    with Client(backend=local_backend) as client, pytest.raises(ConfigurationError, match="backend object"):
        client.set_api_url("http://127.0.0.1:9")


def test_cancel_job_returns_the_sdks_answer(local_backend, keyword_engine):
    keyword_engine.delay = 0.5
    with Client(backend=local_backend, progress=False) as client:
        running = client.batch_run_function("ticket-triage", TICKETS * 3)
        assert client.cancel_job(running) == {
            "cancelled": True,
            "message": f"Job {running} has been successfully cancelled",
        }
        with pytest.raises(JobFailedError, match="CANCELLED"):
            client.attach(running)
        again = client.cancel_job(running)
        assert again["cancelled"] is False and "already completed (CANCELLED)" in again["message"]


def test_the_sdks_tracing_and_timeout_arguments_are_accepted(local_backend):
    with Client(backend=local_backend, progress=False) as client:
        answer = client.run_function("ticket-triage", TICKETS[1], {"team": "support"}, ["nightly"], 30.0, True)
        assert answer.output == "bug"
        job_id = client.batch_run_function(
            "ticket-triage", TICKETS, langsmith_metadata={"team": "support"}, langsmith_tags=["nightly"]
        )
        assert client.attach(job_id) is None


def test_module_level_settings_reach_the_default_client(deployment, monkeypatch):
    from sutro_sql import default_client

    monkeypatch.delenv("SUTRO_API_URL", raising=False)
    monkeypatch.delenv("SUTRO_API_KEY", raising=False)
    default_client.set_default_client(None)
    try:
        sutro_sql.set_api_url(deployment.url)
        sutro_sql.set_api_key(deployment.api_key)
        assert sutro_sql.run_function("ticket-triage", TICKETS[1]).output == "bug"
        assert sutro_sql.get_quotas() and sutro_sql.try_authentication(deployment.api_key)
    finally:
        default_client.get_default_client().close()
        default_client.set_default_client(None)


def finished_job(client) -> str:
    job_id = client.batch_run_function("ticket-triage", TICKETS, cache=False)
    client.wait_for_job(job_id, timeout=60, progress=False)
    return job_id


def test_results_download_url_gives_presigned_urls_of_a_parquet_file(deployment, tmp_path):
    with Client(deployment.api_key, deployment.url, home=tmp_path) as client:
        answer = client.results_download_url(finished_job(client), include_inputs=True)
    assert answer["format"] == "parquet" and answer["include_inputs"] is True
    assert answer["artifact"]["filename"].endswith(".parquet") and {"get", "head"} <= set(answer["urls"])


def test_download_job_results_saves_the_results_and_resumes_a_partial_file(deployment, tmp_path):
    import httpx
    import pyarrow.parquet as pq

    with Client(deployment.api_key, deployment.url, home=tmp_path / "home") as client:
        job_id = finished_job(client)
        whole = client.download_job_results(job_id, str(tmp_path / "out") + "/")
        assert pq.read_table(whole).num_rows == len(TICKETS)
        content = open(whole, "rb").read()
        etag = httpx.head(client.results_download_url(job_id)["urls"]["head"]).headers["etag"]
        resumed = tmp_path / "resumed.parquet"
        (tmp_path / "resumed.parquet.part").write_bytes(content[: len(content) // 2])
        (tmp_path / "resumed.parquet.part.etag").write_text(etag)
        assert client.download_job_results(job_id, str(resumed)) == str(resumed)
        stale = tmp_path / "stale.parquet"
        (tmp_path / "stale.parquet.part").write_bytes(b"not the artifact at all")
        (tmp_path / "stale.parquet.part.etag").write_text('"another-etag"')
        client.download_job_results(job_id, str(stale))
    assert resumed.read_bytes() == content and stale.read_bytes() == content
    assert not list(tmp_path.glob("*.part*"))


def test_the_embedded_deployment_writes_results_files_itself(local_backend, tmp_path):
    import pyarrow.parquet as pq

    with Client(backend=local_backend, progress=False) as client:
        job_id = finished_job(client)
        with pytest.raises(ConfigurationError, match="download_job_results"):
            client.results_download_url(job_id)
        path = client.download_job_results(job_id, tmp_path, include_inputs=True)
    table = pq.read_table(path)
    assert path.endswith("~inputs=1~logprobs=0.parquet") and table.num_rows == len(TICKETS)
    assert {"inputs", "outputs", "confidence_score"} <= set(table.column_names)


def test_setting_the_same_deployment_written_differently_keeps_the_key(deployment, tmp_path):
    origin = deployment.url.rstrip("/").removesuffix("/v1")
    with Client(deployment.api_key, origin, home=tmp_path) as client:
        client.set_api_url(origin + "/v1/")
        assert isinstance(client.list_jobs(), list)
