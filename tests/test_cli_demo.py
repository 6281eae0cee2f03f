"""`sutro-sql demo`: the README's first command, on the real embedded engine (no keys, no network)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

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


@pytest.mark.slow
def test_the_wheel_ships_what_the_demo_needs(tmp_path):
    """A pip-installed user has no checkout: the quickstart and the example Functions are package data.
    Built from a clean copy of the sources (an in-tree build would reuse a stale build/ folder)."""
    source = tmp_path / "src"
    for name in ("pyproject.toml", "README.md"):
        copy_into(source, REPO / name)
    shutil.copytree(
        REPO / "sutro_sql", source / "sutro_sql", symlinks=True, ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copytree(REPO / "examples" / "functions", source / "examples" / "functions")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "--wheel-dir", str(tmp_path), str(source)],
        check=True,
        capture_output=True,
        timeout=240,
    )
    [wheel] = tmp_path.glob("sutro_sql-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        shipped = {
            Path(name).name: archive.read(name) for name in archive.namelist() if name.startswith("sutro_sql/demo/")
        }
    assert "quickstart.py" in shipped
    examples = sorted((REPO / "examples" / "functions").glob("*.yaml"))
    assert examples and all(shipped.get(spec.name) == spec.read_bytes() for spec in examples)


def copy_into(folder: Path, file: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy2(file, folder / file.name)
