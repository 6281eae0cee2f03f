"""A separate virtualenv holding the official `sutro` SDK, created once and reused.

The SDK pins polars/pyarrow versions the package does not, and sutro-sql must
never depend on it, so tests drive it as a subprocess from its own venv. The
venv lives under a stable temp path (keyed by the requirement) and is marked
complete only after a successful install, so an interrupted run is redone and
a finished one is reused. A file lock keeps parallel test runs from racing.

Env: SUTRO_SQL_SDK_REQUIREMENT (default ``sutro==0.1.67``, the version the
v1 contract was written against), SUTRO_SQL_SDK_VENV (use this folder instead).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

DEFAULT_REQUIREMENT = "sutro==0.1.67"
NETWORK_HINTS = (  # pip's words for an unreachable index (it retries, then names the cause)
    "NewConnectionError",
    "Failed to establish a new connection",
    "Temporary failure in name resolution",
    "Network is unreachable",
    "ConnectTimeoutError",
    "ReadTimeoutError",
    "ProxyError",
    "SSLError",
)


class SDKUnavailable(RuntimeError):
    """PyPI could not be reached, so the official SDK cannot be installed."""


def sdk_requirement() -> str:
    return os.environ.get("SUTRO_SQL_SDK_REQUIREMENT", DEFAULT_REQUIREMENT)


def sdk_venv_path() -> Path:
    if os.environ.get("SUTRO_SQL_SDK_VENV"):
        return Path(os.environ["SUTRO_SQL_SDK_VENV"])
    tag = hashlib.sha256(f"{sdk_requirement()}|{sys.version_info[:2]}".encode()).hexdigest()[:10]
    return Path(tempfile.gettempdir()) / f"sutro-sql-sdk-venv-{tag}"


def sdk_python() -> Path:
    """The venv's interpreter, creating the venv first if needed.

    Raises SDKUnavailable when the install failed because the package index is unreachable;
    any other install failure raises RuntimeError with pip's output.
    """
    venv = sdk_venv_path()
    python = venv / "bin" / "python"
    marker = venv / ".sutro-sql-complete"
    if marker.exists():
        return python
    venv.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{venv}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if marker.exists():
            return python
        shutil.rmtree(venv, ignore_errors=True)
        base = getattr(sys, "_base_executable", sys.executable)
        subprocess.run([base, "-m", "venv", str(venv)], check=True, capture_output=True)
        install = subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", sdk_requirement()],
            capture_output=True,
            text=True,
            timeout=900,
        )
        if install.returncode != 0:
            output = install.stdout + install.stderr
            shutil.rmtree(venv, ignore_errors=True)
            if any(hint in output for hint in NETWORK_HINTS):
                raise SDKUnavailable(f"cannot install {sdk_requirement()} (package index unreachable)")
            raise RuntimeError(f"pip install {sdk_requirement()} failed:\n{output[-3000:]}")
        marker.write_text(sdk_requirement())
    return python


if __name__ == "__main__":
    print(sdk_python())
