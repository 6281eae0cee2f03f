"""The unmodified official `sutro` SDK, from its own virtualenv, against `sutro-sql serve`.

One subprocess runs a script that drives the SDK's Function surface and prints what
it got as one JSON line; the test checks that against answers predicted with the
KeywordEngine and against the server's own view of the jobs. The SDK polls every
5 s, so the script waits for all its jobs at once, in threads.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import time

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sutro_sql.backends.remote import RemoteBackend
from tests.support.engines import KeywordEngine
from tests.support.fault_server import FaultServer, Reply
from tests.support.sdk_venv import SDKUnavailable, sdk_python
from tests.support.serve_process import ServedDeployment, make_home
from tests.test_remote_served import TRIAGE

pytestmark = [pytest.mark.sdk, pytest.mark.slow]

ROWS = [
    {"subject": "Refund", "body": "billing error on my invoice"},
    {"subject": "Crash", "body": "the app has a bug"},
    {"subject": "Login", "body": "account_access locked out"},
    {"subject": "Idea", "body": "please add a feature_request"},
]

SCRIPT = r"""
import concurrent.futures as futures
import json
import os
import sys

import pandas as pd
import polars as pl
from pydantic import BaseModel

from sutro import Sutro

rows = json.loads(os.environ["SDK_ROWS"])
so = Sutro()
out = {}


class Ticket(BaseModel):
    subject: str
    body: str


def frame(df):
    return {"columns": list(df.columns), "rows": pl.from_pandas(df).to_dicts() if isinstance(df, pd.DataFrame) else df.to_dicts()}


answer = so.run_function("ticket-triage", rows[0])
out["run_dict"] = {"output": answer.output, "confidence": answer.confidence, "request_id": answer.request_id, "usage": answer.usage}
out["run_model"] = so.run_function("ticket-triage", Ticket(**rows[1])).output
try:
    so.run_function("ticket-triage", {"subject": "no body"})
except Exception as exc:
    out["run_invalid"] = [type(exc).__name__, getattr(exc, "code", None), getattr(exc, "detail", None)]

jobs = {
    "list": so.batch_run_function("ticket-triage", rows, job_name="sdk-list"),
    "polars": so.batch_run_function("ticket-triage", pl.DataFrame(rows)),
    "pandas": so.batch_run_function("ticket-triage", pd.DataFrame(rows)),
    "csv": so.batch_run_function("ticket-triage", os.environ["SDK_CSV"]),
    "url": so.batch_run_function("ticket-triage", os.environ["SDK_URL"], id_column="ticket_id"),
}
with futures.ThreadPoolExecutor(8) as pool:
    dry = pool.submit(so.batch_run_function, "ticket-triage", rows, dry_run=True)
    attached = pool.submit(so.batch_run_function, "ticket-triage", rows * 150, stay_attached=True)
    awaited = {name: pool.submit(so.await_job_completion, job_id) for name, job_id in jobs.items()}
    out["awaited"] = {name: frame(f.result()) for name, f in awaited.items()}
    out["dry_run"] = dry.result()
    out["attached"] = attached.result()
out["jobs"] = jobs
out["results"] = frame(so.get_job_results(jobs["list"], include_inputs=True))
out["status"] = so.get_job_status(jobs["list"])
big = so.batch_run_function("ticket-triage", rows * 500)
out["cancel_job"] = big
out["cancel"] = so.cancel_job(big)
out["list_jobs"] = [job["job_id"] for job in so.list_jobs()]
print("SDK-RESULT " + json.dumps(out, default=str))
"""


@pytest.fixture(scope="module")
def sdk():
    try:
        return sdk_python()
    except SDKUnavailable as exc:
        pytest.skip(str(exc))


@pytest.fixture
def deployment(tmp_path):
    env = {"SUTRO_TEST_ENGINE_DELAY": "0.002"}
    with ServedDeployment(make_home(tmp_path / "home"), env=env, allow_local_urls=True) as served:
        yield served


def run_sdk(sdk, deployment, tmp_path, files_url: str) -> dict:
    source = tmp_path / "tickets.csv"
    with source.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["subject", "body"])
        writer.writeheader()
        writer.writerows(ROWS)
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path),  # the SDK's results cache and saved login live here
        "SUTRO_API_URL": deployment.url,
        "SUTRO_API_KEY": deployment.api_key,
        "NO_PROXY": "127.0.0.1,localhost",
        "SDK_ROWS": json.dumps(ROWS),
        "SDK_CSV": str(source),
        "SDK_URL": f"{files_url}/exports/tickets.parquet",
    }
    done = subprocess.run([str(sdk), "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=120)
    lines = [line for line in done.stdout.splitlines() if line.startswith("SDK-RESULT ")]
    assert done.returncode == 0 and lines, f"SDK script failed:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    if os.environ.get("SUTRO_SQL_SHOW_SDK_OUTPUT"):
        print(done.stdout, done.stderr)
    return json.loads(lines[-1].removeprefix("SDK-RESULT "))


def test_the_official_sdk_runs_functions_and_jobs_against_sutro_sql_serve(sdk, deployment, tmp_path):
    ids = [{"ticket_id": f"T-{i}", **row} for i, row in enumerate(ROWS)]
    pq.write_table(pa.Table.from_pylist(ids), tmp_path / "tickets.parquet")
    with FaultServer(Reply(200, body=(tmp_path / "tickets.parquet").read_bytes())) as files:
        out = run_sdk(sdk, deployment, tmp_path, files.url)
    expected = [a.output for a in KeywordEngine(delay=0).answer(TRIAGE, [TRIAGE.convert_input(r) for r in ROWS])]
    assert expected == ["billing", "bug", "account_access", "feature_request"]

    assert out["run_dict"]["output"] == "billing" and out["run_dict"]["confidence"] == pytest.approx(0.8)
    assert out["run_dict"]["request_id"].startswith("rt_") and out["run_dict"]["usage"]["input_tokens"] > 0
    assert out["run_model"] == "bug"
    assert out["run_invalid"][:2] == ["SutroValidationError", "invalid_input"] and "body" in out["run_invalid"][2]

    for name, frame in out["awaited"].items():
        assert [row["response"] for row in frame["rows"]] == expected, name
        assert "confidence_score" in frame["columns"], name
    assert [row["ticket_id"] for row in out["awaited"]["url"]["rows"]] == ["T-0", "T-1", "T-2", "T-3"]
    results = out["results"]
    assert results["columns"] == ["inputs", "confidence_score", "response", "predictions", "rationale"]
    assert [row["response"] for row in results["rows"]] == expected
    assert all(row["confidence_score"] == pytest.approx(0.8) for row in results["rows"])
    assert results["rows"][1]["predictions"][0] == {"label": "bug", "confidence": pytest.approx(0.8)}
    assert out["status"] == "SUCCEEDED"
    assert out["cancel"]["cancelled"] is True
    assert set(out["jobs"].values()) | {out["cancel_job"], out["dry_run"], out["attached"]} <= set(out["list_jobs"])
    assert out["list_jobs"][0] == out["cancel_job"]

    with RemoteBackend(deployment.url, deployment.api_key, home=tmp_path) as remote:
        dry = remote.get_job(out["dry_run"])
        assert dry["status"] == "SUCCEEDED" and dry["run_type"] == "ESTIMATE" and dry["cost_estimate"] > 0
        assert remote.get_job_status(out["attached"]) == "SUCCEEDED"
        deadline = time.monotonic() + 15
        while remote.get_job_status(out["cancel_job"]) != "CANCELLED" and time.monotonic() < deadline:
            time.sleep(0.1)
        assert remote.get_job_status(out["cancel_job"]) == "CANCELLED"


def test_the_client_takes_the_sdks_result_parameters_in_the_sdks_order(sdk):
    """Code written for the SDK passes these by position or by name; both must mean the same here."""
    import inspect

    from sutro_sql.client import Client

    probe = (
        "import inspect, json; from sutro import Sutro; print(json.dumps({name: list(inspect.signature("
        "getattr(Sutro, name)).parameters)[1:] for name in ('get_job_results', 'await_job_completion')}))"
    )
    done = subprocess.run([str(sdk), "-c", probe], capture_output=True, text=True, timeout=60, check=True)
    theirs = json.loads(done.stdout.strip().splitlines()[-1])
    for name, parameters in theirs.items():
        assert list(inspect.signature(getattr(Client, name)).parameters)[1:] == parameters, name
