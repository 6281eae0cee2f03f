"""A self-signed certificate for 127.0.0.1, for tests that serve HTTPS (made with the openssl
command; tests skip when it is missing)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

HAS_OPENSSL = shutil.which("openssl") is not None


def self_signed_certificate(folder: Path) -> tuple[Path, Path]:
    """(certificate, private key) PEM files valid for a day for IP 127.0.0.1."""
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key
