"""Drive the installed `sutro-sql` console script as a real subprocess, on a test home.

Every run gets the deterministic KeywordEngine (through the real engine plug-in
env var) and no remote deployment, unless the test passes its own env.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent.parent
SUTRO_SQL = Path(sys.executable).parent / "sutro-sql"
KEYWORD_ENGINE = "tests.support.engines:KeywordEngine"


@dataclass
class CliResult:
    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


def cli_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SUTRO_", "PYTEST_"))}
    env.update(
        SUTRO_SQL_HOME=str(home),
        SUTRO_SQL_ENGINE=KEYWORD_ENGINE,
        SUTRO_SQL_WORKERS="1",
        PYTHONPATH=str(REPO) + os.pathsep + env.get("PYTHONPATH", ""),
    )
    env.update(extra)
    return env


def run_cli(
    *args: str, home: Path, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 60
) -> CliResult:
    """Run `sutro-sql ARGS` to completion."""
    process = subprocess.run(
        [str(SUTRO_SQL), *args],
        cwd=cwd or home.parent,
        env=env or cli_env(home),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return CliResult(process.returncode, process.stdout, process.stderr)


def closed_port() -> int:
    """A local port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
