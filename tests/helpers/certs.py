"""Self-signed certificates made with the ``openssl`` CLI (as an operator would)."""

from __future__ import annotations

import subprocess
from pathlib import Path


def make_self_signed(
    directory: Path, name: str, common_name: str, alt_names: list[str], days: int = 30
) -> tuple[Path, Path]:
    """(cert.pem, key.pem) of an EC P-256 self-signed certificate for ``alt_names``.

    ``alt_names`` are subjectAltName entries such as ``DNS:localhost`` or ``IP:127.0.0.1``.
    """
    cert = directory / f"{name}.crt"
    key = directory / f"{name}.key"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-keyout", str(key), "-out", str(cert), "-days", str(days),
            "-subj", f"/CN={common_name}", "-addext", "subjectAltName=" + ",".join(alt_names),
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )  # fmt: skip
    return cert, key
