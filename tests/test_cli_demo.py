"""`sutro-sql demo`: the README's first command, on the real embedded engine (no keys, no network)."""

from __future__ import annotations

import os
import time

import pytest

from tests.support.cli_runner import REPO, run_cli


@pytest.mark.slow
def test_demo_answers_the_tickets_then_reruns_from_the_cache(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SUTRO_", "PYTEST_"))}
    env["PYTHONPATH"] = str(REPO)
    home = tmp_path / ".sutro-demo"

    started = time.monotonic()
    first = run_cli("demo", "--demo-home", str(home), home=home, env=env, cwd=tmp_path, timeout=120)
    took = time.monotonic() - started
    assert first.code == 0, first.stderr
    assert took < 60
    assert "sutro_run: route each ticket to a team" in first.stdout
    assert "sutro_batch: extract facts" in first.stdout
    teams = {"billing", "bug", "account_access", "feature_request"}
    assert sum(team in first.stdout for team in teams) >= 3  # real answers, not one label for all
    assert "10 engine calls, 1 cache hits, 1 job(s) submitted" in first.stdout  # 10 tickets; the "why" repeats one
    assert "Why ticket 1 went to its team:" in first.stdout

    second = run_cli("demo", "--demo-home", str(home), home=home, env=env, cwd=tmp_path, timeout=120)
    assert second.code == 0, second.stderr
    # every answer, the batch's rows included, comes from the answer cache: no calls, no job at all
    assert "21 answers, 0 engine calls, 21 cache hits, 0 job(s) submitted, 0 re-attached, 0 tokens" in second.stdout
    assert "Everything came from the answer cache: nothing was computed again." in second.stdout
