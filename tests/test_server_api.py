"""The v1 wire contract of `sutro-sql serve` (sutro-api-v1.md §9), checked with raw HTTP
against the real server process, so nothing in RemoteBackend can paper over a mistake."""

from __future__ import annotations

import json
import math

import httpx
import pytest

from sutro_sql.backends.local import LocalBackend
from sutro_sql.errors import ConfigurationError
from sutro_sql.server import serve
from tests.support.fault_server import FaultServer, Reply

ROWS = [{"subject": "Invoice", "body": "billing issue"}, {"subject": "Crash", "body": "a bug"}]
#: The statuses a job that succeeds goes through, in order.
LIFECYCLE = ("QUEUED", "STARTING", "RUNNING", "SUCCEEDED")


@pytest.fixture(scope="module")
def http(deployment):
    with httpx.Client(
        base_url=deployment.url + "/v1", headers={"Authorization": f"Key {deployment.api_key}"}
    ) as client:
        yield client


def submit(http: httpx.Client, **fields) -> str:
    body = {"model": "ticket-triage", "inputs": ROWS, **fields}
    response = http.post("/batch-inference", json=body)
    assert response.status_code == 200, response.text
    return response.json()["results"]


def finished(http: httpx.Client, job_id: str) -> dict:
    with http.stream("GET", f"/stream-job-progress/{job_id}") as stream:
        for _ in stream.iter_lines():
            pass
    return http.get(f"/jobs/{job_id}").json()["job"]


def assert_error(response: httpx.Response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert isinstance(body["detail"], str) and body["detail"]
    assert body["code"] == code
    assert body["request_id"] == response.headers["x-request-id"]
    return body


def test_requests_without_the_right_key_get_json_401(deployment):
    for headers in ({}, {"Authorization": "Key wrong"}, {"Authorization": f"Bearer {deployment.api_key}"}):
        assert_error(httpx.get(f"{deployment.url}/v1/list-jobs", headers=headers), 401, "unauthorized")


def test_unknown_routes_and_methods_get_json_errors(http):
    assert_error(http.get("/no-such-route"), 404, "not_found")
    assert_error(http.delete("/list-jobs"), 405, "method_not_allowed")
    assert_error(http.get("/job-status/job-unknown"), 404, "job_not_found")


def test_malformed_json_is_400_and_a_non_object_is_422(http):
    headers = {"Content-Type": "application/json"}
    assert_error(http.post("/batch-inference", content=b"{not json", headers=headers), 400, "invalid_request")
    assert_error(http.post("/batch-inference", content=b"[1, 2]", headers=headers), 422, "invalid_request")


def test_batch_inference_answers_200_with_the_job_id_visible_at_once(http):
    job_id = submit(http, job_priority=None, json_schema=None, system_prompt=None, sampling_params=None)
    # both reads find the job at once; it may move on between them (STARTING -> SUCCEEDED), never back
    status_reply = http.get(f"/job-status/{job_id}")
    job_reply = http.get(f"/jobs/{job_id}")
    assert (status_reply.status_code, job_reply.status_code) == (200, 200)
    assert list(status_reply.json()) == ["job_status"] and list(status_reply.json()["job_status"]) == [job_id]
    first, then = status_reply.json()["job_status"][job_id], job_reply.json()["job"]["status"]
    assert {first, then} <= set(LIFECYCLE), (first, then)
    assert LIFECYCLE.index(first) <= LIFECYCLE.index(then), (first, then)
    assert job_reply.json()["job"]["job_id"] == job_id
    job = finished(http, job_id)
    assert (job["status"], job["job_priority"], job["num_rows"]) == ("SUCCEEDED", 0, 2)
    for field in (
        "job_id",
        "failure_reason",
        "cost_estimate",
        "datetime_created",
        "input_tokens",
        "output_tokens",
        "job_cost",
    ):
        assert field in job


def test_nan_tokens_in_rows_are_accepted_as_missing_values(http):
    body = json.dumps({"model": "ticket-triage", "inputs": [{"subject": math.nan, "body": "a bug"}]}, allow_nan=True)
    assert "NaN" in body
    response = http.post("/batch-inference", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"name": "n" * 46}, "name"),
        ({"description": "d" * 513}, "description"),
        ({"job_priority": 2}, "job_priority"),
        ({"inputs": []}, "inputs"),
        ({"inputs": "dataset-123"}, "inputs"),
        ({"system_prompt": "be nice"}, "system_prompt"),
        ({"inputs": [{"subject": "no body"}]}, "body"),
    ],
)
def test_bad_batch_fields_are_422_naming_the_field(http, fields, named):
    body = assert_error(
        http.post("/batch-inference", json={"model": "ticket-triage", "inputs": ROWS, **fields}), 422, "invalid_input"
    )
    assert named in body["detail"]


def test_a_loopback_file_url_is_refused_by_default_naming_the_host(http):
    with FaultServer(Reply(200, body=b"subject,body\na,b\n")) as files:
        refused = assert_error(
            http.post("/batch-inference", json={"model": "ticket-triage", "inputs": f"{files.url}/rows.csv"}),
            422,
            "invalid_input",
        )
        assert files.seen == []
    assert "'127.0.0.1'" in refused["detail"] and "--allow-local-urls" in refused["detail"]


def test_unknown_function_in_a_batch_is_404(http):
    assert_error(http.post("/batch-inference", json={"model": "nope", "inputs": ROWS}), 404, "function_not_found")


@pytest.mark.parametrize("alias", ["cost_estimate", "dryrun", "dry_run"])
def test_every_dry_run_spelling_makes_an_estimate_job(http, alias):
    job = finished(http, submit(http, **{alias: True}))
    assert job["status"] == "SUCCEEDED" and job["cost_estimate"] > 0


def test_results_are_equal_length_columns_without_unrequested_extras(http):
    job_id = submit(http)
    finished(http, job_id)
    plain = http.post("/job-results/", json={"job_id": job_id}).json()["results"]
    assert list(plain) == ["outputs", "confidence_score"]
    assert [json.loads(o)["response"] for o in plain["outputs"]] == ["billing", "bug"]
    full = http.post(
        "/job-results", json={"job_id": job_id, "include_inputs": True, "include_cumulative_logprobs": True}
    )
    columns = full.json()["results"]
    assert list(columns) == ["inputs", "outputs", "confidence_score", "cumulative_logprobs"]
    assert {len(values) for values in columns.values()} == {2}


def test_the_progress_stream_is_ndjson_and_closes_when_the_job_ends(http):
    job_id = submit(http)
    with http.stream("GET", f"/stream-job-progress/{job_id}") as stream:
        assert stream.headers["content-type"].startswith("application/x-ndjson")
        lines = [json.loads(line) for line in stream.iter_lines() if line]
    assert all("update_type" in line for line in lines)
    assert [line["result"] for line in lines if line["update_type"] == "progress"][-1] == 2
    tokens = [line["result"] for line in lines if line["update_type"] == "tokens"]
    assert tokens and all(
        isinstance(t[k], (int, float))
        for t in tokens
        for k in ("input_tokens", "output_tokens", "total_tokens_processed_per_second")
    )
    assert lines[-1] == {"update_type": "heartbeat"}
    assert_error(http.get("/stream-job-progress/job-unknown"), 404, "job_not_found")


def test_job_lookups_are_never_compressed(http):
    job_id = submit(http)
    for path in (f"/jobs/{job_id}", f"/job-status/{job_id}"):
        response = http.get(path, headers={"Accept-Encoding": "gzip"})
        assert response.headers.get("content-encoding", "identity") == "identity"


def test_cancel_accepts_get_and_post(http):
    job_id = submit(http)
    finished(http, job_id)
    for method in ("GET", "POST"):
        answer = http.request(method, f"/job-cancel/{job_id}").json()
        assert answer["cancelled"] is False and "already completed" in answer["message"]
    assert_error(http.post("/job-cancel/job-unknown"), 404, "job_not_found")


def test_list_jobs_newest_first_with_optional_pages(http):
    older, newer = submit(http), submit(http)
    ids = [job["job_id"] for job in http.get("/list-jobs/").json()["jobs"]]
    assert ids.index(newer) < ids.index(older)
    page = http.get("/list-jobs", params={"limit": 1}).json()
    assert len(page["jobs"]) == 1 and page["next_cursor"] == "1"
    assert_error(http.get("/list-jobs", params={"limit": 500}), 422, "invalid_input")


def test_quotas_and_auth_check(http):
    assert http.get("/auth/check").json() == {"authenticated": True}
    quotas = http.get("/get-quotas").json()["quotas"]
    assert [sorted(q) for q in quotas] == [["row_quota", "token_quota"]] * 2


def test_results_url_serves_a_resumable_parquet_without_the_key(http):
    job_id = submit(http)
    finished(http, job_id)
    assert_error(http.get(f"/jobs/{job_id}/results-url", params={"format": "csv"}), 400, "unsupported_format")
    assert_error(http.get(f"/jobs/{job_id}/results-url", params={"expires_in_seconds": 0}), 422, "invalid_input")
    params = {
        "format": "parquet",
        "include_inputs": "True",
        "include_cumulative_logprobs": "False",
        "expires_in_seconds": 60,
    }
    answer = http.get(f"/jobs/{job_id}/results-url", params=params).json()
    assert answer["include_inputs"] is True and "/" not in answer["artifact"]["filename"]
    head = httpx.head(answer["urls"]["head"])
    size = int(head.headers["content-length"])
    assert size == answer["artifact"]["size_bytes"] and head.headers["etag"]
    whole = httpx.get(answer["urls"]["get"]).content
    assert len(whole) == size and whole[:4] == b"PAR1"
    tail = httpx.get(answer["urls"]["get"], headers={"Range": "bytes=100-", "If-Range": head.headers["etag"]})
    assert tail.status_code == 206 and tail.content == whole[100:]
    assert httpx.get(answer["urls"]["get"].replace("signature=", "signature=0")).status_code == 403


def test_serve_refuses_plain_http_off_loopback_and_an_empty_key(tmp_path):
    backend = LocalBackend(tmp_path, start_workers=False)
    try:
        with pytest.raises(ConfigurationError, match="Refusing to serve plain HTTP"):
            serve(host="0.0.0.0", api_key="k", backend=backend)
        with pytest.raises(ConfigurationError, match="both"):
            serve(host="127.0.0.1", api_key="k", ssl_certfile="cert.pem", backend=backend)
        with pytest.raises(ConfigurationError, match="API key"):
            serve(host="127.0.0.1", api_key="", backend=backend)
    finally:
        backend.close()


@pytest.mark.parametrize(
    ("path", "body", "named"),
    [
        ("/functions/ticket-triage/run", {}, "input"),
        ("/functions/ticket-triage/run", {"input": [1, 2]}, "input"),
        ("/functions/ticket-triage/run", {"input": "x", "confidence_scoring": "maybe"}, "confidence_scoring"),
        ("/batch-inference", {"inputs": ROWS}, "model"),
        ("/batch-inference", {"model": "ticket-triage", "inputs": 7}, "inputs"),
        ("/batch-inference", {"model": "ticket-triage", "inputs": ROWS, "cost_estimate": "sometimes"}, "cost_estimate"),
        ("/batch-inference", {"model": "ticket-triage", "inputs": ROWS, "sampling_params": "hot"}, "sampling_params"),
        ("/batch-inference", {"model": "ticket-triage", "inputs": ROWS, "id_column_name": 3}, "id_column_name"),
        ("/job-results", {"include_inputs": True}, "job_id"),
        ("/job-results", {"job_id": "job-x", "include_inputs": "perhaps"}, "include_inputs"),
    ],
)
def test_bad_request_bodies_are_422_with_a_string_detail_naming_the_field(http, path, body, named):
    detail = assert_error(http.post(path, json=body), 422, "invalid_input")["detail"]
    assert detail.startswith(f"{named}: "), detail


def test_optional_batch_fields_may_be_null_unknown_fields_ignored_and_booleans_any_case(http):
    job_id = submit(
        http,
        job_priority=None,
        cost_estimate="True",
        random_seed_per_input=None,
        truncate_rows="FALSE",
        name=None,
        description=None,
        a_field_from_a_newer_sdk={"x": 1},
    )
    job = finished(http, job_id)
    assert (job["run_type"], job["job_priority"]) == ("ESTIMATE", 0)


def test_bad_query_parameters_are_422_naming_the_parameter(http):
    body = assert_error(http.get("/list-jobs", params={"limit": "many"}), 422, "invalid_input")
    assert body["detail"].startswith("limit: ")
    job_id = submit(http)
    finished(http, job_id)
    body = assert_error(
        http.get(f"/jobs/{job_id}/results-url", params={"include_inputs": "yes please"}), 422, "invalid_input"
    )
    assert body["detail"].startswith("include_inputs: ")
