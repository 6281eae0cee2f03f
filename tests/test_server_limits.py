"""What a request may make `sutro-sql serve` do (`ServerLimits`): a body over the cap is a JSON
413 answered before the rest is read; a URL input is downloaded only from public addresses
(unless allowed), never through a redirect to another host, and only up to a size cap; an error
about a downloaded file names the input, not the server's folders."""

from __future__ import annotations

import json
import socket

import httpx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sutro_sql.backends.local import LocalBackend
from sutro_sql.server import ServerLimits, create_app
from tests.support.asgi_server import InProcessTransport, serve_app
from tests.support.fault_server import FaultServer, Reply

KEY = "sk_limits_" + "l" * 12
ROWS = [
    {"ticket_id": "T-0", "subject": "Invoice", "body": "billing issue"},
    {"ticket_id": "T-1", "subject": "Crash", "body": "a bug"},
]


@pytest.fixture
def local(home, keyword_engine):
    with LocalBackend(home, engine=keyword_engine) as backend:
        yield backend


def client_for(backend, limits: ServerLimits) -> httpx.Client:
    transport = InProcessTransport(create_app(backend, KEY, limits))
    return httpx.Client(base_url="http://localhost/v1", headers={"Authorization": f"Key {KEY}"}, transport=transport)


def submit_url(client: httpx.Client, url: str, **fields) -> httpx.Response:
    return client.post("/batch-inference", json={"model": "ticket-triage", "inputs": url, **fields})


def detail_of(response: httpx.Response, status: int = 422) -> str:
    assert response.status_code == status, response.text
    return response.json()["detail"]


def parquet_bytes(tmp_path) -> bytes:
    pq.write_table(pa.Table.from_pylist(ROWS), tmp_path / "rows.parquet")
    return (tmp_path / "rows.parquet").read_bytes()


def test_a_declared_body_over_the_cap_is_a_json_413_before_the_body_is_sent(local):
    """Only the headers and a few bytes are sent: the answer must not wait for the rest."""
    with serve_app(create_app(local, KEY, ServerLimits(max_body_bytes=1024))) as origin:
        port = int(origin.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(
                b"POST /v1/batch-inference HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                + f"Authorization: Key {KEY}\r\nContent-Length: 1000000000\r\n\r\n".encode()
                + b'{"model": "'
            )
            reply = b""
            while b"}" not in reply.partition(b"\r\n\r\n")[2]:
                chunk = sock.recv(65536)
                assert chunk, reply
                reply += chunk
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413")
    answer = json.loads(body)
    assert answer["code"] == "payload_too_large" and "1024 bytes" in answer["detail"]


def test_a_streamed_body_crossing_the_cap_is_a_json_413(local):
    with client_for(local, ServerLimits(max_body_bytes=1024)) as client:
        chunks = (b'{"model": "ticket-triage", "inputs": [' + b'"x",' * 400 + b'"x"]}',)
        response = client.post("/batch-inference", content=iter(chunks), headers={"Content-Type": "application/json"})
        assert response.status_code == 413 and response.json()["code"] == "payload_too_large"
        assert client.post("/batch-inference", json={"model": "ticket-triage", "inputs": ["x"]}).status_code == 422


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "10.1.2.3", "192.168.0.7", "169.254.169.254", "[::1]"])
def test_a_url_input_on_a_local_or_private_address_is_refused(local, host):
    with client_for(local, ServerLimits()) as client:
        detail = detail_of(submit_url(client, f"http://{host}:9/latest/rows.csv"))
    assert "loopback, private or link-local" in detail and "--allow-local-urls" in detail


def test_a_url_input_on_loopback_is_downloaded_when_allowed_with_its_id_column(local, tmp_path):
    with (
        FaultServer(Reply(200, body=parquet_bytes(tmp_path))) as files,
        client_for(local, ServerLimits(allow_local_urls=True)) as client,
    ):
        reply = submit_url(client, f"{files.url}/exports/rows.parquet?X-Amz-Signature=abc", id_column_name="ticket_id")
        assert reply.status_code == 200, reply.text
        job_id = reply.json()["results"]
        files.default = Reply(403, body=b"denied")
        assert "HTTP 403" in detail_of(submit_url(client, f"{files.url}/x.csv"))
        assert "must name a .csv or .parquet" in detail_of(submit_url(client, f"{files.url}/rows.txt"))
        client.get(f"/stream-job-progress/{job_id}")
        columns = client.post("/job-results", json={"job_id": job_id}).json()["results"]
    assert columns["ticket_id"] == ["T-0", "T-1"]
    assert [json.loads(o)["response"] for o in columns["outputs"]] == ["billing", "bug"]


def test_a_redirect_to_another_host_is_refused(local, tmp_path):
    with FaultServer() as files, client_for(local, ServerLimits(allow_local_urls=True)) as client:
        elsewhere = files.url.replace("127.0.0.1", "localhost")
        files.queue(Reply(302, body=b"", headers={"Location": f"{elsewhere}/rows.parquet"}))
        detail = detail_of(submit_url(client, f"{files.url}/rows.parquet"))
        assert len(files.seen) == 1
    assert "redirects to another host ('localhost')" in detail


def test_a_redirect_on_the_same_host_is_followed(local, tmp_path):
    with FaultServer() as files, client_for(local, ServerLimits(allow_local_urls=True)) as client:
        files.queue(
            Reply(302, body=b"", headers={"Location": "/moved/rows.parquet"}), Reply(200, body=parquet_bytes(tmp_path))
        )
        assert submit_url(client, f"{files.url}/rows.parquet").status_code == 200
    assert [seen.path for seen in files.seen] == ["/rows.parquet", "/moved/rows.parquet"]


def test_a_url_input_over_the_size_cap_is_refused(local, tmp_path):
    with FaultServer(Reply(200, body=parquet_bytes(tmp_path))) as files:
        with client_for(local, ServerLimits(allow_local_urls=True, max_download_bytes=100)) as client:
            detail = detail_of(submit_url(client, f"{files.url}/rows.parquet"))
    assert "larger than 100 bytes" in detail


def test_an_unreadable_downloaded_file_is_named_as_the_input_not_by_its_server_path(local, home):
    with FaultServer(Reply(200, body=b"subject,body\nonly one field\n")) as files:
        with client_for(local, ServerLimits(allow_local_urls=True)) as client:
            detail = detail_of(submit_url(client, f"{files.url}/rows.csv"))
    assert "inputs (the downloaded file)" in detail and str(home) not in detail
