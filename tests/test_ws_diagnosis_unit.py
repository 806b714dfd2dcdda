"""module_utils/ws_diagnosis.py: each failure maps to the cause an operator meets."""

from __future__ import annotations

from module_utils import websocket as ws
from module_utils.ws_diagnosis import explain, explain_close


def response(status: int, server: str | None = None, body: bytes = b"") -> ws.HttpResponse:
    headers = [("Server", server)] if server else []
    r = ws.HttpResponse(status, "", headers)
    r.body = body
    return r


def hint(error, port: int = 3002, secure: bool = False, unit: str = "wsnotify") -> str:
    return explain(error, "127.0.0.1", port, secure, unit)


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
    redirect = response(301, "nginx")
    redirect.header_list.append(("Location", "https://x/ws"))
    assert "https://x/ws" in hint(ws.HandshakeRejected(redirect))


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
        err = ws.TLSFailed("127.0.0.1", 443, "verify failed", code, "msg")
        err.certificate = cert
        text = hint(err, 443, True)
        assert expected in text and "subject 'CN=a'" in text, code
    assert "does not speak TLS" in hint(ws.TLSFailed("h", 1, "[SSL: WRONG_VERSION_NUMBER] x"))
    assert "closed the connection during the TLS" in hint(ws.TLSFailed("h", 1, "EOF occurred"))
