"""Staging big batch inputs in S3: `sutro_batch(..., stage := 's3://...')` and the Client's
`batch_run_function(..., stage=...)` against a real S3-compatible server on 127.0.0.1 (moto's
server mode) and `sutro-sql serve --allow-local-urls` (a subprocess) through RemoteBackend.

The served deployment accepts request bodies of 1 MiB at most, and the batches here are
bigger: a job whose rows travelled inline would be refused (413), so an answered batch proves
the rows went through the store.
"""

from __future__ import annotations

import datetime as dt
import re
from urllib.parse import parse_qs, urlsplit

import duckdb
import httpx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sutro_sql.backends.remote import RemoteBackend
from sutro_sql.client import Client
from sutro_sql.errors import BackendUnavailableError, ConfigurationError, ValidationError
from sutro_sql.http import RetryPolicy
from sutro_sql.sql_layer import register
from sutro_sql.staging import S3Settings, presigned_url, stage_rows
from tests.support.fault_server import free_port
from tests.support.serve_process import ServedDeployment, make_home

moto_server = pytest.importorskip("moto.server")

BUCKET = "sutro-stage"
SECRET = "s3cr3t-" + "x" * 24
ROWS = 2500  # ~1.3 MB of inline JSON: over the served 1 MiB body limit


def ticket_rows(tag: str) -> list[dict[str, str]]:
    padding = "lorem ipsum " * 40
    return [{"subject": f"{tag} {i}", "body": f"a bug report number {i} {padding}"} for i in range(ROWS)]


@pytest.fixture(scope="module")
def s3_endpoint():
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=free_port(), verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    httpx.put(f"{endpoint}/{BUCKET}").raise_for_status()
    yield endpoint
    server.stop()


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    home = make_home(tmp_path_factory.mktemp("served"))
    with ServedDeployment(home, allow_local_urls=True, max_body_mb=1) as deployment:
        yield deployment


@pytest.fixture
def aws_env(monkeypatch, s3_endpoint, tmp_path):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIATESTSTAGING")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3_endpoint)
    monkeypatch.setenv("SUTRO_SQL_HOME", str(tmp_path / "client-home"))
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


@pytest.fixture
def con(aws_env, served, monkeypatch):
    monkeypatch.setenv("SUTRO_API_URL", served.url)
    monkeypatch.setenv("SUTRO_API_KEY", served.api_key)
    connection = duckdb.connect()
    register(connection, progress=False)
    yield connection
    connection.close()


def staged_keys(endpoint: str, prefix: str) -> list[str]:
    listing = httpx.get(f"{endpoint}/{BUCKET}", params={"list-type": "2", "prefix": prefix})
    listing.raise_for_status()
    return re.findall(r"<Key>([^<]+)</Key>", listing.text)


def delete_object(key: str) -> None:
    """What an expiry or a lifecycle rule does to a staged file."""
    httpx.delete(presigned_url(S3Settings.from_environment(), "DELETE", BUCKET, key, expires_in=60)).raise_for_status()


def tickets_table(con, tag: str) -> None:
    con.register("incoming", pa.Table.from_pylist(ticket_rows(tag)))
    con.execute("CREATE OR REPLACE TABLE tickets AS SELECT * FROM incoming")
    con.unregister("incoming")


# -- signing -------------------------------------------------------------------------------------


def test_a_presigned_url_matches_the_aws_documented_example():
    """The example of AWS's "Authenticating Requests: Using Query Parameters" (SigV4) page."""
    settings = S3Settings("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
    url = presigned_url(
        settings, "GET", "examplebucket", "test.txt", expires_in=86400, now=dt.datetime(2013, 5, 24, tzinfo=dt.UTC)
    )
    assert url.startswith("https://examplebucket.s3.amazonaws.com/test.txt?")
    assert url.endswith("X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404")


def test_a_presigned_url_matches_botocore_at_a_custom_endpoint_with_a_session_token():
    botocore_session = pytest.importorskip("botocore.session")
    from botocore.config import Config

    session = botocore_session.get_session()
    s3 = session.create_client(
        "s3",
        region_name="eu-west-3",
        endpoint_url="http://127.0.0.1:9000",
        aws_access_key_id="AKIAOTHER",
        aws_secret_access_key=SECRET,
        aws_session_token="token/with+odd=chars",
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
    )
    theirs = s3.generate_presigned_url(
        "put_object", Params={"Bucket": BUCKET, "Key": "a dir/rows 1.parquet"}, ExpiresIn=900
    )
    signed_at = dt.datetime.strptime(parse_qs(urlsplit(theirs).query)["X-Amz-Date"][0], "%Y%m%dT%H%M%SZ")
    settings = S3Settings("AKIAOTHER", SECRET, "eu-west-3", "http://127.0.0.1:9000", "token/with+odd=chars")
    ours = presigned_url(
        settings, "PUT", BUCKET, "a dir/rows 1.parquet", expires_in=900, now=signed_at.replace(tzinfo=dt.UTC)
    )
    assert parse_qs(urlsplit(ours).query) == parse_qs(urlsplit(theirs).query)
    assert urlsplit(ours).path == urlsplit(theirs).path


def test_a_stage_that_is_not_an_s3_location_is_refused(aws_env):
    with pytest.raises(ValidationError, match="stage: expected an S3 location"):
        stage_rows([{"body": "x"}], "https://bucket/prefix")


def test_staging_without_credentials_says_which_variables_to_set(monkeypatch):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID", raising=False)
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY", raising=False)
    with pytest.raises(ConfigurationError, match="AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"):
        stage_rows([{"body": "x"}], f"s3://{BUCKET}/p")


# -- staging ------------------------------------------------------------------------------------


def test_staged_rows_come_back_from_the_download_url_as_parquet(aws_env, s3_endpoint, tmp_path):
    rows = [{"subject": "a", "body": "billing"}, {"subject": "b", "body": None}]
    url = stage_rows(rows, f"s3://{BUCKET}/unit/", name="k1")
    assert staged_keys(s3_endpoint, "unit/") == ["unit/k1.parquet"]
    assert SECRET not in url and "X-Amz-Signature=" in url
    (tmp_path / "back.parquet").write_bytes(httpx.get(url).raise_for_status().content)
    assert pq.read_table(tmp_path / "back.parquet").to_pylist() == rows


def test_an_unreachable_store_is_a_clear_error_that_shows_no_secret(aws_env, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", f"http://127.0.0.1:{free_port()}")
    with pytest.raises(BackendUnavailableError) as caught:
        stage_rows([{"body": "x"}], f"s3://{BUCKET}/down", retry=RetryPolicy(max_retries=2, backoff_base=0.01))
    message = str(caught.value)
    assert f"stage s3://{BUCKET}/down/" in message and "cannot connect" in message
    assert SECRET not in message and "Signature" not in message


def test_a_missing_bucket_is_named_by_the_stores_error_code(aws_env):
    with pytest.raises(ConfigurationError, match="NoSuchBucket") as caught:
        stage_rows([{"body": "x"}], "s3://no-such-bucket-here/p")
    assert SECRET not in str(caught.value)


def test_the_embedded_deployment_reads_the_rows_directly_and_stages_nothing(home, monkeypatch):
    """No AWS variables: staging would fail, so an answered batch shows nothing was staged."""
    for variable in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("SUTRO_SQL_ENGINE", "tests.support.engines:KeywordEngine")
    rows = [{"subject": "a", "body": "billing"}, {"subject": "b", "body": "a bug"}]
    with Client(home=home, progress=False) as client:
        job_id = client.batch_run_function("ticket-triage", rows, stage=f"s3://{BUCKET}/local")
        assert client.await_job_completion(job_id)["response"].to_list() == ["billing", "bug"]


# -- end to end ---------------------------------------------------------------------------------


def test_sutro_batch_without_a_stage_is_too_big_for_the_deployment(con):
    """The control: these rows inline exceed the served body limit."""
    tickets_table(con, "inline")
    with pytest.raises(duckdb.Error, match="exceeds 1 MB"):
        con.sql("SELECT * FROM sutro_batch('ticket-triage', 'SELECT subject, body FROM tickets')").fetchall()


def test_sutro_batch_with_a_stage_sends_the_rows_through_s3(con, s3_endpoint, served):
    tickets_table(con, "sql")
    query = f"""SELECT row_id, response FROM sutro_batch('ticket-triage', 'SELECT subject, body FROM tickets',
                  stage := 's3://{BUCKET}/sql-runs') ORDER BY row_id"""
    answers = con.sql(query).fetchall()
    assert answers == [(i, "bug") for i in range(ROWS)]
    assert len(staged_keys(s3_endpoint, "sql-runs/")) == 1
    jobs_before = len(RemoteBackend(served.url, served.api_key).list_jobs())
    assert con.sql(query).fetchall() == answers  # the answers are cached: no job, nothing staged
    assert len(staged_keys(s3_endpoint, "sql-runs/")) == 1
    assert len(RemoteBackend(served.url, served.api_key).list_jobs()) == jobs_before


def test_the_client_stages_with_an_id_column_and_a_rerun_reattaches_without_staging(aws_env, s3_endpoint, served):
    rows = [{"ticket_id": 1000 + i, **row} for i, row in enumerate(ticket_rows("client"))]
    with Client(served.api_key, served.url, progress=False) as client:
        job_id = client.batch_run_function("ticket-triage", rows, id_column="ticket_id", stage=f"s3://{BUCKET}/py")
        results = client.await_job_completion(job_id)
        assert results["ticket_id"].to_list() == [1000 + i for i in range(ROWS)]
        assert set(results["response"].to_list()) == {"bug"}
        (key,) = staged_keys(s3_endpoint, "py/")
        delete_object(key)
        again = client.batch_run_function("ticket-triage", rows, id_column="ticket_id", stage=f"s3://{BUCKET}/py")
    assert again == job_id
    assert staged_keys(s3_endpoint, "py/") == []  # re-attached: nothing staged again


def test_a_url_the_deployment_cannot_download_fails_clearly_and_a_rerun_stages_again(aws_env, s3_endpoint, served):
    """An expired or deleted staged file: the deployment refuses the job (none is created, no row
    is lost), and running the same batch again stages afresh and succeeds."""
    rows = ticket_rows("expired")
    url = stage_rows(rows, f"s3://{BUCKET}/gone", name="stale")
    delete_object("gone/stale.parquet")
    with RemoteBackend(served.url, served.api_key) as backend:
        jobs_before = len(backend.list_jobs())
        with pytest.raises(ValidationError, match="inputs: downloading the file failed with HTTP 404") as caught:
            backend.submit_batch("ticket-triage", url)
        assert SECRET not in str(caught.value) and "Signature" not in str(caught.value)
        assert len(backend.list_jobs()) == jobs_before
    with Client(served.api_key, served.url, progress=False) as client:
        job_id = client.batch_run_function("ticket-triage", rows, stage=f"s3://{BUCKET}/gone")
        assert set(client.await_job_completion(job_id)["response"].to_list()) == {"bug"}
