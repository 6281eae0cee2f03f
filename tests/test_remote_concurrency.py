"""RemoteBackend's Function runs on its event loop: as many in flight as the session asks (never
more), every input answered or failed on its own, and a deployment error failing the call.

The in-flight bound is checked by construction, not by timing: the loopback server holds each
request at a barrier until `max_concurrency` of them are held together (a client that keeps
fewer in flight breaks the barrier), and counts the most it ever held (a client that sends more
shows up there).
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import pytest

from sutro_sql.backends.base import RunsFunctionsInBatches
from sutro_sql.backends.local import LocalBackend
from sutro_sql.backends.remote import RemoteBackend
from sutro_sql.errors import AuthenticationError, BackendUnavailableError, NotFoundError, ServerError
from sutro_sql.http import RetryPolicy
from sutro_sql.server import create_app
from sutro_sql.sql_layer import connect
from tests.support.asgi_server import serve_app
from tests.support.engines import KeywordEngine
from tests.support.fault_server import FaultServer, Reply
from tests.support.serve_process import REPO

KEY = "sk_concurrency_" + "k" * 12
RUN_OK = {"request_id": "rt_1", "output": "bug", "confidence": 0.9, "usage": {}}


@pytest.fixture
def served(home, tmp_path):
    """The v1 app over a LocalBackend with the KeywordEngine, on a real loopback socket."""
    with LocalBackend(home, engine=KeywordEngine(delay=0)) as local, serve_app(create_app(local, KEY)) as url:
        yield url


@pytest.mark.parametrize("max_concurrency", [3, 24])
def test_run_function_many_keeps_exactly_max_concurrency_calls_in_flight(tmp_path, max_concurrency):
    barrier = threading.Barrier(max_concurrency)
    with (
        FaultServer(default=Reply(200, RUN_OK, meet=barrier)) as server,
        RemoteBackend(server.url, KEY, home=tmp_path, max_concurrency=max_concurrency) as backend,
    ):
        answers = backend.run_function_many("triage", [{"body": f"row {i}"} for i in range(3 * max_concurrency)])
    assert [answer["output"] for answer in answers] == ["bug"] * (3 * max_concurrency)
    assert server.most_in_flight == max_concurrency
    assert len(server.seen) == 3 * max_concurrency


def test_the_remote_backend_answers_many_inputs_at_once(tmp_path):
    with RemoteBackend("http://127.0.0.1:9", KEY, home=tmp_path) as backend:
        assert isinstance(backend, RunsFunctionsInBatches)


def test_a_row_error_stays_with_its_row_and_the_other_rows_are_answered(served, tmp_path):
    rows = [
        {"subject": "a", "body": "billing issue"},
        {"subject": "b", "body": "FAIL_ROW"},
        {"subject": "c", "body": "bug"},
    ]
    with RemoteBackend(served, KEY, home=tmp_path) as backend:
        answers = backend.run_function_many("ticket-triage", rows)
    assert [a["output"] for a in (answers[0], answers[2])] == ["billing", "bug"]
    assert isinstance(answers[1], ServerError) and not answers[1].fatal
    assert "engine refused the row" in str(answers[1])


def test_an_unknown_function_fails_the_whole_call(served, tmp_path):
    with RemoteBackend(served, KEY, home=tmp_path) as backend, pytest.raises(NotFoundError):
        backend.run_function_many("no-such-function", [{"body": "x"}, {"body": "y"}])


def test_a_wrong_key_fails_the_whole_call_and_is_never_shown(served, tmp_path):
    wrong = "sk_wrong_" + "w" * 16
    with RemoteBackend(served, wrong, home=tmp_path) as backend, pytest.raises(AuthenticationError) as caught:
        backend.run_function_many("ticket-triage", [{"body": "x"}, {"body": "y"}])
    assert wrong not in str(caught.value)


def test_a_rate_limit_on_some_inputs_is_waited_out_on_the_loop(tmp_path):
    limited = Reply(429, {"detail": "slow down", "code": "rate_limited"}, headers={"Retry-After": "0.05"})
    with FaultServer(default=Reply(200, RUN_OK)) as server:
        server.queue(limited, limited)
        policy = RetryPolicy(max_retries=3, backoff_base=0.01, backoff_max=0.05)
        with RemoteBackend(server.url, KEY, home=tmp_path, retry=policy, max_concurrency=4) as backend:
            answers = backend.run_function_many("triage", [{"body": f"row {i}"} for i in range(6)])
    assert [answer["output"] for answer in answers] == ["bug"] * 6
    assert len(server.seen) == 8  # two refused, each tried again


def test_sutro_run_over_sql_reaches_the_sessions_concurrency(tmp_path, monkeypatch):
    """`connect(max_concurrency=n)` -> n calls held together at the server for one query."""
    barrier = threading.Barrier(6)
    with FaultServer(default=Reply(200, {**RUN_OK, "response": "bug"}, meet=barrier)) as server:
        monkeypatch.setenv("SUTRO_API_URL", server.url)
        monkeypatch.setenv("SUTRO_API_KEY", KEY)
        monkeypatch.setenv("SUTRO_SQL_HOME", str(tmp_path / "home"))
        con = connect(str(tmp_path / "w.duckdb"), max_concurrency=6, progress=False)
        try:
            rows = con.sql(
                "SELECT sutro_run('triage', {'body': 'row ' || i}).response AS r FROM range(36) t(i)"
            ).fetchall()
        finally:
            con.close()
    assert rows == [("bug",)] * 36
    assert server.most_in_flight == 6


def test_closing_the_backend_does_not_wait_out_the_runs_waiting_on_a_rate_limit(tmp_path):
    """Every run is told to come back in 100 s; close() ends them rather than waiting."""
    limited = Reply(429, {"detail": "slow down", "code": "rate_limited"}, headers={"Retry-After": "100"})
    with FaultServer(default=limited) as server:
        backend = RemoteBackend(server.url, KEY, home=tmp_path, max_concurrency=4)
        outcome: list[object] = []
        caller = threading.Thread(target=lambda: outcome.append(_run_or_error(backend, 8)))
        caller.start()
        while len(server.seen) < 4:  # every lane is now waiting out its Retry-After
            threading.Event().wait(0.01)
        closer = threading.Thread(target=backend.close)
        closer.start()
        closer.join(timeout=30)
        caller.join(timeout=30)
    assert not closer.is_alive() and not caller.is_alive()
    assert isinstance(outcome[0], BaseException)


def _run_or_error(backend: RemoteBackend, count: int) -> object:
    try:
        return backend.run_function_many("triage", [{"body": str(i)} for i in range(count)])
    except BaseException as exc:  # noqa: BLE001  # whatever ends the call is the outcome
        return exc


class MeetingEngine(KeywordEngine):
    """Answers only once `parties` rows are being answered at the same time."""

    def __init__(self, parties: int) -> None:
        super().__init__(delay=0)
        self.meeting = threading.Barrier(parties, timeout=30)

    def answer(self, spec, rows):
        self.meeting.wait()
        return super().answer(spec, rows)


def test_the_server_answers_more_runs_at_once_than_anyios_default_pool_of_40(home, tmp_path):
    engine = MeetingEngine(64)
    with (
        LocalBackend(home, engine=engine) as local,
        serve_app(create_app(local, KEY)) as url,
        RemoteBackend(url, KEY, home=tmp_path, max_concurrency=64) as backend,
    ):
        answers = backend.run_function_many("ticket-triage", [{"subject": f"s{i}", "body": "bug"} for i in range(64)])
    assert [answer["output"] for answer in answers] == ["bug"] * 64
    assert not engine.meeting.broken


def test_runs_go_through_the_proxy_the_environment_names(tmp_path, monkeypatch):
    """As the control calls (httpx's `trust_env`): HTTP_PROXY carries the runs, NO_PROXY exempts."""
    for variable in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy", "HTTPS_PROXY", "https_proxy"):
        monkeypatch.delenv(variable, raising=False)
    with FaultServer(default=Reply(200, RUN_OK)) as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        with RemoteBackend("http://localhost:9", KEY, home=tmp_path) as backend:  # nothing listens on :9
            assert backend.run_function("triage", {"body": "x"})["output"] == "bug"
        monkeypatch.setenv("NO_PROXY", "localhost")
        once = RetryPolicy(max_retries=0)
        with (
            RemoteBackend("http://localhost:9", KEY, home=tmp_path, retry=once) as backend,
            pytest.raises(BackendUnavailableError),
        ):
            backend.run_function("triage", {"body": "x"})
    assert [seen.path for seen in proxy.seen] == ["http://localhost:9/v1/functions/triage/run"]


def test_a_process_that_never_closes_its_backend_still_exits(tmp_path):
    script = (
        "import sys\n"
        "from sutro_sql.backends.remote import RemoteBackend\n"
        "backend = RemoteBackend(sys.argv[1], 'sk_exit_' + 'k' * 12, home=sys.argv[2])\n"
        "print(backend.run_function('triage', {'body': 'x'})['output'])\n"
    )
    with FaultServer(default=Reply(200, RUN_OK)) as server:
        done = subprocess.run(
            [sys.executable, "-c", script, server.url, str(tmp_path)],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
    assert (done.returncode, done.stdout.strip()) == (0, "bug"), done.stderr[-2000:]
