"""module_utils/websocket.py imported by plain Python: pure functions against RFC 6455 vectors,
the connection object over a socketpair, and connect() against tiny raw servers on 127.0.0.1."""

from __future__ import annotations

import base64
import datetime
import json
import socket
import ssl
import struct
import subprocess
import threading
import time

import pytest
from helpers.certs import make_self_signed
from helpers.ports import free_port

from module_utils import websocket as ws

# --------------------------------------------------------------------------- handshake


def test_accept_matches_the_rfc_6455_example():
    assert ws.compute_accept("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def test_generated_keys_are_16_random_bytes():
    keys = {ws.generate_key() for _ in range(20)}
    assert len(keys) == 20
    assert all(len(base64.b64decode(k)) == 16 for k in keys)


def test_parse_ws_url_defaults_and_errors():
    u = ws.parse_ws_url("wss://Example.org/ws?x=1")
    assert (u.scheme, u.host, u.port, u.resource, u.secure) == (
        "wss",
        "example.org",
        443,
        "/ws?x=1",
        True,
    )
    assert u.host_header == "example.org"
    assert ws.parse_ws_url("ws://127.0.0.1:3002").resource == "/"
    assert ws.parse_ws_url("ws://127.0.0.1:3002/ws").host_header == "127.0.0.1:3002"
    assert ws.parse_ws_url("ws://[::1]:8080/ws").host_header == "[::1]:8080"
    for bad, why in [
        ("http://h/ws", "ws:// or wss://"),
        ("ws:///ws", "no host"),
        ("ws://u:p@h/ws", "credentials"),
        ("ws://h:99999/ws", "invalid port"),
    ]:
        with pytest.raises(ValueError, match=why):
            ws.parse_ws_url(bad)


def test_upgrade_request_has_every_rfc_field_and_extras():
    url = ws.parse_ws_url("ws://127.0.0.1:3002/ws")
    raw = ws.build_upgrade_request(
        url, "a2V5a2V5a2V5a2V5a2V5aw==", "https://app.example", {"X-Probe": "1"}, ["v1", "v2"]
    ).decode()
    assert raw.startswith("GET /ws HTTP/1.1\r\n") and raw.endswith("\r\n\r\n")
    for line in (
        "Host: 127.0.0.1:3002",
        "Upgrade: websocket",
        "Connection: Upgrade",
        "Sec-WebSocket-Key: a2V5a2V5a2V5a2V5a2V5aw==",
        "Sec-WebSocket-Version: 13",
        "Origin: https://app.example",
        "Sec-WebSocket-Protocol: v1, v2",
        "X-Probe: 1",
    ):
        assert f"\r\n{line}\r\n" in raw
    assert "Sec-WebSocket-Extensions" not in raw  # never offer permessage-deflate


def test_upgrade_request_refuses_overriding_the_handshake():
    url = ws.parse_ws_url("ws://h/ws")
    with pytest.raises(ValueError, match="part of the handshake"):
        ws.build_upgrade_request(url, "k", headers={"sec-websocket-key": "x"})
    with pytest.raises(ValueError, match="line break"):
        ws.build_upgrade_request(url, "k", headers={"X-A": "1\r\nX-B: 2"})
    with pytest.raises(ValueError, match="not both"):
        ws.build_upgrade_request(url, "k", origin="https://a", headers={"Origin": "https://b"})


def test_token_placement_keeps_the_token_out_of_the_url():
    url = ws.parse_ws_url("ws://h/ws?a=1")
    assert ws.token_placement(url, "t.o+k", "header") == (
        {"Authorization": "Bearer t.o+k"},
        None,
        None,
    )
    assert ws.token_placement(url, "t.o+k", "query") == ({}, "/ws?a=1&token=t.o%2Bk", None)
    headers, resource, first = ws.token_placement(url, "tok", "message")
    assert (headers, resource, json.loads(first)) == ({}, None, {"type": "auth", "token": "tok"})
    assert ws.token_placement(url, None, "header") == ({}, None, None)
    with pytest.raises(ValueError):
        ws.token_placement(url, "tok", "cookie")


def test_merge_headers_refuses_a_second_authorization():
    assert ws.merge_headers({"X-A": "1"}, {"Authorization": "Bearer t"}) == {
        "X-A": "1",
        "Authorization": "Bearer t",
    }
    with pytest.raises(ValueError, match="token option"):
        ws.merge_headers({"authorization": "Basic x"}, {"Authorization": "Bearer t"})


def test_parse_and_validate_the_101():
    key = "dGhlIHNhbXBsZSBub25jZQ=="
    head = (
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: WebSocket\r\nConnection: keep-alive, "
        b"Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nX-Multi: a\r\nx-multi: b"
    )
    resp = ws.parse_http_response(head)
    assert (resp.status, resp.reason) == (101, "Switching Protocols")
    assert resp.headers["x-multi"] == "a, b" and resp.get("UPGRADE") == "WebSocket"
    assert ws.validate_upgrade_response(resp, key) == (True, [])

    wrong = ws.parse_http_response(head.replace(b"s3pPLM", b"AAAAAA"))
    valid, problems = ws.validate_upgrade_response(wrong, key)
    assert valid is False and "Sec-WebSocket-Accept" in problems[0]

    extras = ws.parse_http_response(
        head + b"\r\nSec-WebSocket-Protocol: v9\r\nSec-WebSocket-Extensions: permessage-deflate"
    )
    valid, problems = ws.validate_upgrade_response(extras, key, ["v1"])
    assert valid is True and len(problems) == 2

    bare = ws.parse_http_response(
        b"HTTP/1.1 101 OK\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    )
    _valid, problems = ws.validate_upgrade_response(bare, key)
    assert any("Upgrade header" in p for p in problems)
    assert any("Connection header" in p for p in problems)

    with pytest.raises(ws.ProtocolError):
        ws.parse_http_response(b"SSH-2.0-OpenSSH_9.2")


# --------------------------------------------------------------------------- frames


def test_frames_match_the_rfc_6455_examples():
    # RFC 6455 5.7: unmasked and masked "Hello".
    assert ws.encode_frame(ws.OP_TEXT, b"Hello", mask=False) == bytes.fromhex("810548656c6c6f")
    masked = ws.encode_frame(ws.OP_TEXT, b"Hello", mask_key=bytes.fromhex("37fa213d"))
    assert masked == bytes.fromhex("818537fa213d7f9f4d5158")
    frame, used = ws.decode_frame(masked)
    assert (frame.opcode, frame.payload, frame.masked, frame.fin, used) == (
        1,
        b"Hello",
        True,
        True,
        11,
    )
    # fragmented unmasked text "Hel" + "lo"
    first, _ = ws.decode_frame(bytes.fromhex("010348656c"))
    assert (first.fin, first.opcode, first.payload) == (False, 1, b"Hel")
    # unmasked ping "Hello"
    ping, _ = ws.decode_frame(bytes.fromhex("890548656c6c6f"))
    assert (ping.opcode, ping.payload) == (ws.OP_PING, b"Hello")


@pytest.mark.parametrize("size", [0, 125, 126, 65535, 65536, 70000])
def test_length_encodings_round_trip(size):
    payload = bytes(i % 251 for i in range(size))
    data = ws.encode_frame(ws.OP_BINARY, payload)
    header_len = 2 + 4 + (0 if size < 126 else 2 if size < 65536 else 8)
    assert len(data) == header_len + size
    frame, used = ws.decode_frame(data + b"trailing")
    assert frame.payload == payload and used == len(data)
    for cut in (1, header_len - 1, len(data) - 1) if size else (1,):
        assert ws.decode_frame(data[:cut]) == (None, 0)


def test_decoder_rejects_protocol_violations():
    with pytest.raises(ws.ProtocolError, match="reserved bits"):
        ws.decode_frame(bytes([0xC1, 0x00]))  # RSV1 = compressed without negotiation
    with pytest.raises(ws.ProtocolError, match="opcode"):
        ws.decode_frame(bytes([0x83, 0x00]))
    with pytest.raises(ws.ProtocolError, match="control frame"):
        ws.decode_frame(bytes([0x89, 126, 0, 200]) + b"x" * 200)
    with pytest.raises(ws.ProtocolError, match="limit"):
        ws.decode_frame(bytes([0x82, 127]) + struct.pack("!Q", 1 << 40))
    with pytest.raises(ValueError):
        ws.encode_frame(ws.OP_PING, b"x" * 126)


def test_close_payloads():
    assert ws.encode_close_payload(4401, "Unauthorized") == b"\x11\x31Unauthorized"
    assert ws.parse_close_payload(b"\x11\x31Unauthorized") == (4401, "Unauthorized")
    assert ws.parse_close_payload(b"") == (None, "")
    assert ws.encode_close_payload(None) == b""
    for bad in (b"\x03", struct.pack("!H", 1005), struct.pack("!H", 999), struct.pack("!H", 5000)):
        with pytest.raises(ws.ProtocolError):
            ws.parse_close_payload(bad)
    with pytest.raises(ws.ProtocolError, match="UTF-8"):
        ws.parse_close_payload(b"\x03\xe8\xff")
    with pytest.raises(ValueError):
        ws.encode_close_payload(1000, "x" * 124)


# --------------------------------------------------------------------------- connection object


def server_frame(opcode: int, payload: bytes, fin: bool = True) -> bytes:
    return ws.encode_frame(opcode, payload, fin=fin, mask=False)


def read_client_frame(sock: socket.socket) -> ws.Frame:
    buf = b""
    sock.settimeout(2)
    while True:
        frame, _used = ws.decode_frame(buf)
        if frame:
            return frame
        buf += sock.recv(4096)


@pytest.fixture
def pair():
    client, server = socket.socketpair()
    conn = ws.ClientConnection(client, ws.HttpResponse(101, "", []))
    yield conn, server
    client.close()
    server.close()


def test_connection_answers_pings_and_reassembles_fragments(pair):
    conn, server = pair
    server.sendall(
        server_frame(ws.OP_PING, b"p1")
        + server_frame(ws.OP_TEXT, b"Hel", fin=False)
        + server_frame(ws.OP_PONG, b"")
        + server_frame(ws.OP_CONT, "lo ✓".encode(), fin=True)
    )
    msg = conn.recv(2)
    assert (msg.kind, msg.text) == ("text", "Hello ✓")
    pong = read_client_frame(server)
    assert (pong.opcode, pong.payload, pong.masked) == (ws.OP_PONG, b"p1", True)


def test_connection_recv_times_out_with_none(pair):
    conn, _server = pair
    started = time.monotonic()
    assert conn.recv(0.2) is None
    assert 0.15 < time.monotonic() - started < 1.5


def test_server_close_is_echoed_and_reported(pair):
    conn, server = pair
    server.sendall(server_frame(ws.OP_CLOSE, ws.encode_close_payload(4401, "Unauthorized")))
    msg = conn.recv(2)
    assert (msg.kind, msg.code, msg.reason) == ("close", 4401, "Unauthorized")
    assert conn.closed and conn.closed_by == "server"
    echo = read_client_frame(server)
    assert echo.opcode == ws.OP_CLOSE and ws.parse_close_payload(echo.payload)[0] == 4401
    with pytest.raises(ws.ConnectionClosed):
        conn.recv(0.1)


def test_client_close_waits_for_the_servers_close(pair):
    conn, server = pair

    def answer() -> None:
        frame = read_client_frame(server)
        server.sendall(server_frame(ws.OP_CLOSE, frame.payload))

    t = threading.Thread(target=answer)
    t.start()
    conn.close(1000, "bye", timeout=2)
    t.join(3)
    assert conn.closed_by == "client" and conn.close_code == 1000


def test_eof_without_close_frame_and_masked_server_frames(pair):
    conn, server = pair
    server.sendall(ws.encode_frame(ws.OP_TEXT, b"x", mask=True))
    with pytest.raises(ws.ProtocolError, match="masked"):
        conn.recv(1)
    server.close()
    with pytest.raises(ws.ConnectionClosed) as info:
        conn.recv(1)
    assert info.value.code is None


# --------------------------------------------------------------------------- connect() I/O


class RawServer:
    """Accepts one connection on 127.0.0.1 and runs ``script(conn, request_bytes)``."""

    def __init__(self, script) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.script = script
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        self.listener.settimeout(5)
        try:
            conn, _ = self.listener.accept()
        except OSError:
            return
        with conn:
            conn.settimeout(5)
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                data += chunk
            self.script(conn, data)

    def close(self) -> None:
        self.listener.close()
        self.thread.join(5)


def accept_for(request: bytes) -> str:
    key = [line for line in request.decode().split("\r\n") if line.startswith("Sec-WebSocket-Key")]
    return ws.compute_accept(key[0].split(": ", 1)[1])


def test_connect_reads_a_split_101_and_the_frame_behind_it():
    def script(conn, request):
        head = (
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Accept: {accept_for(request)}\r\n\r\n"
        ).encode()
        conn.sendall(head[:20])
        time.sleep(0.05)
        conn.sendall(head[20:] + server_frame(ws.OP_TEXT, b'{"type":"welcome"}'))
        time.sleep(0.5)

    srv = RawServer(script)
    try:
        conn = ws.connect(f"ws://127.0.0.1:{srv.port}/ws", timeout=3)
        assert conn.recv(1).text == '{"type":"welcome"}'
        conn.close(timeout=0.2)
    finally:
        srv.close()


def test_connect_reports_refusals_with_their_body():
    def script(conn, _request):
        body = b'{"error":"Authentication required"}'
        conn.sendall(
            b"HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )

    srv = RawServer(script)
    try:
        with pytest.raises(ws.HandshakeRejected) as info:
            ws.connect(f"ws://127.0.0.1:{srv.port}/ws", timeout=3)
        assert info.value.response.status == 401
        assert info.value.response.body_text() == '{"error":"Authentication required"}'
    finally:
        srv.close()


def test_connect_times_out_on_a_silent_server():
    srv = RawServer(lambda conn, request: time.sleep(0.8))
    try:
        started = time.monotonic()
        with pytest.raises(ws.Timeout):
            ws.connect(f"ws://127.0.0.1:{srv.port}/ws", timeout=0.3)
        assert time.monotonic() - started < 1.5
    finally:
        srv.close()


def test_connect_classifies_a_closed_port():
    port = free_port()
    with pytest.raises(ws.ConnectFailed) as info:
        ws.connect(f"ws://127.0.0.1:{port}/ws", timeout=2)
    assert (info.value.kind, info.value.port) == ("refused", port)


def test_tcp_error_classification():
    assert ws.tcp_error(socket.gaierror(-2, "Name or service not known"), "h", 1).kind == "dns"
    assert ws.tcp_error(TimeoutError(), "h", 1).kind == "timeout"
    assert ws.tcp_error(ConnectionResetError(), "h", 1).kind == "reset"
    assert ws.tcp_error(OSError(113, "No route to host"), "h", 1).kind == "unreachable"


# --------------------------------------------------------------------------- certificates


def openssl_enddate(cert) -> datetime.datetime:
    out = subprocess.run(
        ["openssl", "x509", "-noout", "-enddate", "-in", str(cert)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    text = out.split("=", 1)[1]
    return datetime.datetime.strptime(text, "%b %d %H:%M:%S %Y %Z").replace(tzinfo=datetime.UTC)


def test_certificate_summary_matches_openssl(tmp_path, tls_material):
    der = ssl.PEM_cert_to_DER_cert(tls_material["cert"].read_text())
    info = ws.summarize_certificate(der)
    assert info["subject"] == info["issuer"] == "CN=localhost" and info["self_signed"]
    assert info["subject_alt_names"] == ["DNS:localhost"]
    end = openssl_enddate(tls_material["cert"])
    assert info["not_after"] == end.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert info["days_to_expiry"] in (29, 30)


def test_certificate_summary_multi_rdn_ip_sans_and_generalized_time(tmp_path):
    cert, _key = make_self_signed(
        tmp_path, "multi", "multi.example", ["DNS:a.example", "IP:127.0.0.1", "IP:::1"], days=10000
    )
    # openssl -subj with several RDNs: rebuild through the CLI with C and O as well
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", str(tmp_path / "m.key"), "-out", str(cert), "-days", "10000",
         "-subj", "/C=DE/O=Example Org/CN=multi.example",
         "-addext", "subjectAltName=DNS:a.example,IP:127.0.0.1,IP:::1"],
        check=True, capture_output=True, timeout=30,
    )  # fmt: skip
    info = ws.summarize_certificate(ssl.PEM_cert_to_DER_cert(cert.read_text()))
    assert info["subject"] == "C=DE,O=Example Org,CN=multi.example"
    assert info["subject_alt_names"] == ["DNS:a.example", "IP:127.0.0.1", "IP:::1"]
    # valid past 2049: encoded as GeneralizedTime, not UTCTime
    assert info["not_after"] == openssl_enddate(cert).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert info["days_to_expiry"] >= 9999
    assert len(info["sha256_fingerprint"]) == 64


def test_make_ssl_context_modes(tls_material):
    strict = ws.make_ssl_context(True, str(tls_material["ca_bundle"]))
    assert strict.verify_mode == ssl.CERT_REQUIRED and strict.check_hostname
    loose = ws.make_ssl_context(False)
    assert loose.verify_mode == ssl.CERT_NONE and not loose.check_hostname
    with pytest.raises(OSError):
        ws.make_ssl_context(True, "/nonexistent/ca.pem")
