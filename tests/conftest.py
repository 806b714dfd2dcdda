"""Shared fixtures for the controller-side tests.

``module_utils/`` is importable as the namespace package ``module_utils`` (plain Python, no
Ansible), and the helpers as ``helpers``. Servers are real processes/threads on 127.0.0.1.
"""

from __future__ import annotations

import secrets
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
for path in (ROOT, ROOT / "tests"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from helpers.certs import make_self_signed  # noqa: E402
from helpers.wsserver import WsNotifyTestServer  # noqa: E402


class Secrets:
    """Random per session, so tests can assert they never appear in any output."""

    jwt_secret = "jwt-" + secrets.token_urlsafe(32)
    publish_token = "pub-" + secrets.token_urlsafe(32)


@pytest.fixture(scope="session")
def test_secrets() -> type[Secrets]:
    return Secrets


@pytest.fixture(scope="session")
def tls_material(tmp_path_factory) -> dict[str, Path]:
    """A certificate for localhost, one for another name, and a CA bundle trusting both."""
    d = tmp_path_factory.mktemp("tls")
    cert, key = make_self_signed(d, "localhost", "localhost", ["DNS:localhost"], days=30)
    other_cert, other_key = make_self_signed(d, "other", "other.example", ["DNS:other.example"])
    bundle = d / "ca-bundle.pem"
    bundle.write_text(cert.read_text() + other_cert.read_text())
    return {
        "cert": cert,
        "key": key,
        "other_cert": other_cert,
        "other_key": other_key,
        "ca_bundle": bundle,
    }


@pytest.fixture
def make_ws_server(test_secrets):
    """Factory: ``make_ws_server(**options)`` starts a test server; all stop after the test."""
    started: list[WsNotifyTestServer] = []

    def factory(start_delay: float = 0.0, **options) -> WsNotifyTestServer:
        server = WsNotifyTestServer(test_secrets.jwt_secret, test_secrets.publish_token, **options)
        started.append(server)
        return server.start(delay=start_delay)

    yield factory
    for server in started:
        server.stop()
