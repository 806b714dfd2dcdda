"""module_utils/ws_diagnosis.py: each failure maps to the cause an operator meets."""

from __future__ import annotations

from module_utils import ws_protocol as ws
from module_utils.ws_diagnosis import CheckFailed, diagnose, explain_close


def response(
    status: int, server: str | None = None, body: bytes = b"", extra: tuple = ()
) -> ws.HttpResponse:
    headers = [("Server", server)] if server else []
    r = ws.HttpResponse(status, "", headers + list(extra))
    r.body = body
    return r


def hint(error, port: int = 3002, secure: bool = False, unit: str = "wsnotify", **kw) -> str:
    return diagnose(error, "127.0.0.1", port, secure, unit, **kw)


def test_connection_failures():
    refused = ws.ConnectFailed("refused", "127.0.0.1", 3002, "connection refused")
    assert "systemctl status wsnotify" in hint(refused)
    assert "systemctl status nginx" in hint(refused, port=443, secure=True)
    assert "systemctl status wsnotify-green" in hint(refused, unit="wsnotify-green")
    timeout = ws.ConnectFailed("timeout", "127.0.0.1", 3002, "")
    assert "firewall" in hint(timeout)
    assert "does not resolve" in hint(ws.ConnectFailed("dns", "nohost", 1, ""))
    assert "no answer" in hint(ws.Timeout("no complete HTTP response"))


def test_http_statuses_through_nginx_and_direct():
    assert "location /ws" in hint(ws.HandshakeRejected(response(404, "nginx/1.22.1")))
    assert "no route" in hint(ws.HandshakeRejected(response(404)))
    for status in (400, 426):
        through = hint(ws.HandshakeRejected(response(status, "nginx")))
        assert "proxy_set_header Upgrade $http_upgrade" in through
        assert "Upgrade/Connection" in hint(ws.HandshakeRejected(response(status)))
    tls_port = ws.HandshakeRejected(
        response(400, "nginx", b"The plain HTTP request was sent to HTTPS port")
    )
    assert "use a wss:// url" in hint(tls_port)
    assert "journalctl -u wsnotify" in hint(ws.HandshakeRejected(response(502, "nginx")))
    assert "Origin" in hint(ws.HandshakeRejected(response(403)))
    redirect = response(301, "nginx", extra=[("Location", "https://x/ws")])
    assert "https://x/ws" in hint(ws.HandshakeRejected(redirect))


def test_the_clean_refusal_above_capacity_is_recognised_and_names_the_variable():
    from module_utils.ws_diagnosis import at_capacity

    full = response(503, "nginx", extra=[("Retry-After", "10")])
    text = hint(ws.HandshakeRejected(full), 443, True, unit="nginx")
    assert "Retry-After: 10 s" in text and "nginx_site_max_clients" in text
    assert at_capacity(full, None)
    # A 503 without Retry-After (the service's own, or another proxy's) is not this refusal.
    assert not at_capacity(response(503, "nginx"), None)
    assert "nginx_site_max_clients" not in hint(ws.HandshakeRejected(response(503, "nginx")))
    assert not at_capacity(response(503, None, extra=[("Retry-After", "10")]), None)
    closed = hint(ws.ConnectionClosed(1013, "At capacity, try again later"))
    assert "wsnotify_max_connections" in closed and "nginx_site_max_clients" in closed
    assert at_capacity(None, 1013) and not at_capacity(None, 1001)


def test_rewritten_handshake_and_closes():
    bad = ws.HandshakeInvalid(response(101), ["Sec-WebSocket-Accept is 'x'"], accept_valid=False)
    assert "rewrote the handshake" in hint(bad)
    other = ws.HandshakeInvalid(response(101), ["Upgrade header is None"], accept_valid=True)
    assert "not a valid WebSocket upgrade" in hint(other)
    assert "Unauthorized" in explain_close(4401, "Unauthorized")
    assert "shutting down" in explain_close(1001)
    assert "application-defined" in explain_close(4999)
    assert "proxy_read_timeout" in hint(ws.ConnectionClosed(None, ""))


def test_tls_failures_name_the_check():
    cert = {"subject": "CN=a", "issuer": "CN=a", "subject_alt_names": ["DNS:a"],
            "not_after": "2030-01-01T00:00:00Z", "days_to_expiry": 1000}  # fmt: skip
    cases = {
        18: "self-signed and not trusted",
        20: "intermediate",
        10: "expired",
        9: "clock",
        62: "not valid for '127.0.0.1'",
    }
    for code, expected in cases.items():
        err = ws.TLSFailed("127.0.0.1", 443, "verify failed", code, cert)
        text = hint(err, 443, True)
        assert expected in text and "subject 'CN=a'" in text, code
    assert "does not speak TLS" in hint(ws.TLSFailed("h", 1, "[SSL: WRONG_VERSION_NUMBER] x"))
    assert "closed the connection during the TLS" in hint(ws.TLSFailed("h", 1, "EOF occurred"))


def test_a_4401_points_at_the_jwt_secret_only_when_the_token_was_minted():
    closed = ws.ConnectionClosed(4401, "Unauthorized")
    assert "signed with another secret" in hint(closed)
    assert "JWT_SECRET" not in hint(closed)
    assert "JWT_SECRET" in hint(closed, minted_token=True)


def test_protocol_errors_name_what_was_wrong():
    text = hint(ws.ProtocolError("the server sent a masked frame"))
    assert "does not speak the WebSocket protocol" in text and "masked frame" in text


def test_publisher_answers():
    def publish(status: int, body: str = "") -> str:
        return hint(CheckFailed("publish_status", "", status=status, body=body, path="/api/x"))

    assert "PUBLISH_TOKEN" in publish(401)
    assert "no publisher endpoint at /api/x" in publish(404)
    assert "rejected the notification as invalid: bad title" in publish(400, "bad title")
    assert "journalctl -u wsnotify" in publish(502)
    assert "unexpected answer from the publisher: teapot" in publish(418, "teapot")
    invalid = CheckFailed("publish_invalid", "", detail="BadStatusLine('x')")
    assert "BadStatusLine" in hint(invalid) and "publish_url" in hint(invalid)


def test_expectations_a_check_can_miss():
    missing = CheckFailed("no_message", "", message_type="welcome", timeout=2.0)
    assert "no 'welcome' message within 2.0s" in hint(missing)
    assert "authentication is not enforced" in hint(CheckFailed("not_enforced", ""))
    other = [{"type": "notification", "data": {}}]
    assert "none carried the probe's marker" in hint(
        CheckFailed("not_delivered", "", received=other)
    )
    nothing = hint(CheckFailed("not_delivered", "", received=[]), unit="wsnotify-a")
    assert "Redis subscriber" in nothing and "journalctl -u wsnotify-a" in nothing
