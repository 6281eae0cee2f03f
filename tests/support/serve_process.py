"""`sutro-sql serve` as a real subprocess on a free loopback port, for tests and benchmarks.

The served home answers with the deterministic KeywordEngine (env
SUTRO_SQL_ENGINE), so tests can predict every answer; the key travels in the
environment (SUTRO_SQL_SERVE_API_KEY), never on the command line.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from .fault_server import free_port

REPO = Path(__file__).resolve().parents[2]
EXAMPLE_FUNCTIONS = REPO / "examples" / "functions"
SUTRO_SQL = Path(sys.executable).parent / "sutro-sql"
TEST_KEY = "sk_test_" + "5ecret" * 4


def make_home(folder: Path) -> Path:
    """A home holding the example Functions."""
    if not (folder / "functions").exists():
        shutil.copytree(EXAMPLE_FUNCTIONS, folder / "functions")
    return folder


class ServedDeployment:
    """Start, kill and restart one `sutro-sql serve` process over `home` (same port each time)."""

    def __init__(
        self,
        home: Path,
        *,
        api_key: str = TEST_KEY,
        env: dict[str, str] | None = None,
        tls: tuple[Path, Path] | None = None,
        allow_local_urls: bool = False,
        max_body_mb: int | None = None,
    ) -> None:
        """`tls`: (certificate, private key) PEM files to serve HTTPS with. `allow_local_urls`:
        serve with `--allow-local-urls`, so URL inputs may name a loopback file server.
        `max_body_mb`: the server's request body limit (`--max-body-mb`)."""
        self.home = home
        self.api_key = api_key
        self.tls = tls
        self.allow_local_urls = allow_local_urls
        self.max_body_mb = max_body_mb
        self.port = free_port()
        self.env = {
            **os.environ,
            "PYTHONPATH": str(REPO),
            "SUTRO_SQL_ENGINE": "tests.support.engines:KeywordEngine",
            "SUTRO_SQL_SERVE_API_KEY": api_key,
            "NO_PROXY": "127.0.0.1,localhost",
            **(env or {}),
        }
        for var in ("SUTRO_API_URL", "SUTRO_API_KEY"):
            self.env.pop(var, None)
        self.process: subprocess.Popen | None = None
        self.url = self._url()
        self._log = home / f"serve-{self.port}.log"

    def _url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> ServedDeployment:
        """Start (or restart, on the same port) and wait until the server answers. A first start
        that loses its port to another process moves to a fresh one."""
        first_start = self.process is None
        command = [str(SUTRO_SQL), "serve", "--home", str(self.home), "--host", "127.0.0.1", "--port", str(self.port)]
        if self.tls:
            command += ["--ssl-certfile", str(self.tls[0]), "--ssl-keyfile", str(self.tls[1])]
        if self.allow_local_urls:
            command.append("--allow-local-urls")
        if self.max_body_mb is not None:
            command += ["--max-body-mb", str(self.max_body_mb)]
        log_start = self._log.stat().st_size if self._log.exists() else 0
        with self._log.open("ab") as log:
            self.process = subprocess.Popen(command, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                output = self.log_text()[log_start:]
                if first_start and "address already in use" in output.lower():
                    self.process = None
                    self.port = free_port()
                    self.url = self._url()
                    return self.start(timeout)
                raise RuntimeError(f"sutro-sql serve exited with {self.process.returncode}:\n{output}")
            try:
                httpx.get(f"{self.url}/v1/auth/check", timeout=1.0, verify=str(self.tls[0]) if self.tls else True)
                return self
            except httpx.TransportError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"sutro-sql serve did not answer within {timeout}s:\n{self.log_text()}")

    def log_text(self) -> str:
        return self._log.read_text(errors="replace") if self._log.exists() else ""

    def kill(self) -> None:
        """SIGKILL: no shutdown handlers, no chance to hand work back."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()

    def __enter__(self) -> ServedDeployment:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
