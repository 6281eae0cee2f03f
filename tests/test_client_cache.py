"""The Client owns the answer cache and the batch-job ledger: Python calls get the same cache
and re-attach as SQL, and share them with SQL on the same backend."""

from __future__ import annotations

import sqlite3
import threading
import time

import pytest

from sutro_sql.batch_input import batch_content_key
from sutro_sql.client import Client
from sutro_sql.sql_layer import connect, session_for

LEAD = {"query": "Find CISOs evaluating vendors, qualified", "region": "APAC"}
ROWS = [{"id": i, "query": f"lead {i} qualified" if i % 2 else f"lead {i}", "region": "EU"} for i in range(6)]


def test_a_repeated_run_function_is_answered_by_the_cache(client, counting):
    first = client.run_function("lead-qualifier", LEAD)
    again = client.run_function("lead-qualifier", dict(reversed(LEAD.items())))  # same input, other key order
    assert len(counting.run_calls) == 1
    assert (again.output, again.confidence, again["predictions"]) == (
        first.output,
        first.confidence,
        first["predictions"],
    )
    assert again.request_id is None and again["cached"] is True and again.usage["cost_usd"] == 0.0
    assert (client.stats.calls, client.stats.cache_hits) == (1, 1)


def test_cache_false_calls_the_backend_again(client, counting):
    client.run_function("lead-qualifier", LEAD)
    fresh = client.run_function("lead-qualifier", LEAD, cache=False)
    assert len(counting.run_calls) == 2 and fresh.request_id is not None


def test_answers_without_confidence_are_not_served_from_the_cache(client, counting):
    client.run_function("lead-qualifier", LEAD)
    bare = client.run_function("lead-qualifier", LEAD, confidence_scoring=False)
    assert len(counting.run_calls) == 2 and bare.request_id is not None


def test_a_python_answer_is_a_cache_hit_for_sutro_run_on_the_same_backend(client, counting):
    client.run_function("lead-qualifier", LEAD)
    con = connect(backend=counting, progress=False)
    try:
        con.execute("CREATE TABLE leads AS SELECT $q AS query, $r AS region", {"q": LEAD["query"], "r": LEAD["region"]})
        (answer,) = con.sql(
            "SELECT sutro_run('lead-qualifier', {'query': query, 'region': region}) FROM leads"
        ).fetchall()[0]
        assert answer["response"] == client.run_function("lead-qualifier", LEAD).output
        assert len(counting.run_calls) == 1 and session_for(con).stats.cache_hits == 1
    finally:
        con.close()


def test_the_same_batch_re_attaches_to_its_job(client, counting):
    first = client.batch_run_function("lead-qualifier", ROWS, id_column="id")
    again = client.batch_run_function("lead-qualifier", list(ROWS), id_column="id")
    assert again == first and counting.submissions == 1
    assert (client.stats.jobs_submitted, client.stats.jobs_reattached) == (1, 1)


def test_other_rows_or_cache_false_submit_a_new_job(client, counting):
    first = client.batch_run_function("lead-qualifier", ROWS, id_column="id")
    other = client.batch_run_function("lead-qualifier", ROWS[:-1], id_column="id")
    forced = client.batch_run_function("lead-qualifier", ROWS, id_column="id", cache=False)
    assert len({first, other, forced}) == 3 and counting.submissions == 3


def test_a_cancelled_batch_is_submitted_again(client, counting, keyword_engine):
    keyword_engine.delay = 0.5  # a 3 s job: cancelled long before it ends
    first = client.batch_run_function("lead-qualifier", ROWS)
    client.cancel_job(first)
    client.poll_interval = 0.02
    with pytest.raises(Exception, match="CANCELLED"):
        client.wait_for_job(first, timeout=30)
    keyword_engine.delay = 0
    assert client.batch_run_function("lead-qualifier", ROWS) != first and counting.submissions == 2


def test_the_ledger_outlives_the_client(counting, local_backend):
    with Client(backend=counting, progress=False) as one:
        first = one.batch_run_function("lead-qualifier", ROWS)
    with Client(backend=local_backend, progress=False) as two:
        assert two.batch_run_function("lead-qualifier", ROWS) == first
    assert counting.submissions == 1


def test_two_threads_submitting_the_same_batch_get_one_job(client, counting, monkeypatch):
    submit = counting.submit_batch
    entered = threading.Barrier(2, timeout=10)

    def slow_submit(*args, **kwargs):
        time.sleep(0.3)  # both threads are inside submit_or_attach by now
        return submit(*args, **kwargs)

    monkeypatch.setattr(counting, "submit_batch", slow_submit)
    ids = []

    def run():
        entered.wait()
        ids.append(client.batch_run_function("lead-qualifier", ROWS))

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(ids)) == 1 and counting.submissions == 1
    assert (client.stats.jobs_submitted, client.stats.jobs_reattached) == (1, 1)


def test_re_attaching_to_a_running_job_counts_the_usage_it_saw(client, local_backend, keyword_engine):
    keyword_engine.delay = 0.05  # a 1.2 s job: the second client attaches while it runs
    rows = [{"query": f"lead {i}", "region": "EU"} for i in range(24)]
    client.batch_run_function("lead-qualifier", rows)
    with Client(backend=local_backend, progress=False) as second:
        ref = second.function("lead-qualifier")
        key = batch_content_key(ref, rows, id_column=None, dry_run=False)
        final = second.run_batch_job(ref, rows, content_key=key)
    assert second.stats.jobs_reattached == 1 and second.stats.jobs_submitted == 0
    assert 0 < second.stats.input_tokens <= final.input_tokens
    assert client.stats.input_tokens == 0  # the submitter never waited: it saw nothing


def test_a_job_found_by_the_deployment_counts_as_re_attached_not_submitted(deployment, tmp_path):
    """A second machine (its own home, so its own ledger) asks for the same batch: the
    deployment's content tag finds the job, and nothing is submitted or counted as submitted."""
    rows = [{"subject": "Crash", "body": f"the app has a bug {i}"} for i in range(3)]
    with Client(deployment.api_key, deployment.url, home=tmp_path / "one") as one:
        first = one.batch_run_function("ticket-triage", rows)
    with Client(deployment.api_key, deployment.url, home=tmp_path / "two") as two:
        assert two.batch_run_function("ticket-triage", rows) == first
        assert (two.stats.jobs_submitted, two.stats.jobs_reattached) == (0, 1)


def test_a_lost_ledger_still_re_attaches_on_the_local_deployment(client, counting):
    first = client.batch_run_function("lead-qualifier", ROWS)
    with sqlite3.connect(client.answers.path) as db:
        db.execute("DELETE FROM batch_jobs WHERE job_id = ?", (first,))
    assert client.batch_run_function("lead-qualifier", ROWS) == first
    assert counting.submissions == 1 and client.stats.jobs_reattached == 1
