"""module_utils/websocket.py (the blocking driver) and ws_certificate.py imported by plain
Python: the connection object over a socketpair, connect() against tiny raw servers on
127.0.0.1, error classification and the certificate summary against openssl's own reading."""

from __future__ import annotations

import datetime
import socket
import ssl
import subprocess
import threading
import time

import pytest
from helpers.certs import make_self_signed
from helpers.frames import server_frame, split_frames
from helpers.ports import free_port

from module_utils import websocket as ws
from module_utils import ws_protocol as proto
from module_utils.ws_certificate import summarize_certificate

# --------------------------------------------------------------------------- connection object


def read_client_frame(sock: socket.socket) -> tuple[bool, int, bytes, bool]:
    """The first frame the client wrote: (fin, opcode, payload, masked)."""
    buf = b""
    sock.settimeout(2)
    while True:
        frames = split_frames(buf)
        if frames:
            return frames[0]
        buf += sock.recv(4096)


@pytest.fixture
def pair():
    """A ClientConnection past its handshake over a socketpair, and the server's end."""
    client, server = socket.socketpair()
    protocol = proto.ClientProtocol(key="dGhlIHNhbXBsZSBub25jZQ==")
    protocol.receive_data(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"
    )
    conn = ws.ClientConnection(client, protocol, None)
    yield conn, server
    client.close()
    server.close()


def test_connection_answers_pings_and_reassembles_fragments(pair):
    conn, server = pair
    server.sendall(
        server_frame(proto.OP_PING, b"p1")
        + server_frame(proto.OP_TEXT, b"Hel", fin=False)
        + server_frame(proto.OP_PONG, b"")
        + server_frame(proto.OP_CONT, "lo ✓".encode(), fin=True)
    )
    msg = conn.recv(2)
    assert (msg.kind, msg.text) == ("text", "Hello ✓")
    assert read_client_frame(server) == (True, proto.OP_PONG, b"p1", True)


def test_connection_recv_times_out_with_none(pair):
    conn, _server = pair
    started = time.monotonic()
    assert conn.recv(0.2) is None
    assert 0.15 < time.monotonic() - started < 1.5


def test_server_close_is_echoed_and_reported(pair):
    conn, server = pair
    server.sendall(server_frame(proto.OP_CLOSE, proto.encode_close_payload(4401, "Unauthorized")))
    msg = conn.recv(2)
    assert (msg.kind, msg.code, msg.reason) == ("close", 4401, "Unauthorized")
    assert conn.closed and conn.closed_by == "server"
    _fin, opcode, payload, _masked = read_client_frame(server)
    assert opcode == proto.OP_CLOSE and proto.parse_close_payload(payload)[0] == 4401
    with pytest.raises(proto.ConnectionClosed) as info:
        conn.recv(0.1)
    assert info.value.code == 4401


def test_client_close_waits_for_the_servers_close(pair):
    conn, server = pair

    def answer() -> None:
        _fin, _opcode, payload, _masked = read_client_frame(server)
        server.sendall(server_frame(proto.OP_CLOSE, payload))

    t = threading.Thread(target=answer)
    t.start()
    conn.close(1000, "bye", timeout=2)
    t.join(3)
    assert conn.closed_by == "client" and conn.close_code == 1000


def test_eof_without_close_frame(pair):
    conn, server = pair
    server.close()
    with pytest.raises(proto.ConnectionClosed) as info:
        conn.recv(1)
    assert info.value.code is None and conn.closed


def test_a_protocol_error_sends_our_close_and_drops_the_socket(pair):
    conn, server = pair
    server.sendall(proto.encode_frame(proto.OP_TEXT, b"x", mask=True))
    with pytest.raises(proto.ProtocolError, match="masked"):
        conn.recv(1)
    _fin, opcode, payload, _masked = read_client_frame(server)
    assert (opcode, proto.parse_close_payload(payload)[0]) == (proto.OP_CLOSE, 1002)
    assert conn.closed
    with pytest.raises(proto.ConnectionClosed):
        conn.recv(0.1)


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
    return proto.compute_accept(key[0].split(": ", 1)[1])


def test_connect_reads_a_split_101_and_the_frame_behind_it():
    def script(conn, request):
        head = (
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Accept: {accept_for(request)}\r\n\r\n"
        ).encode()
        conn.sendall(head[:20])
        time.sleep(0.05)
        conn.sendall(head[20:] + server_frame(proto.OP_TEXT, b'{"type":"welcome"}'))
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
        with pytest.raises(proto.HandshakeRejected) as info:
            ws.connect(f"ws://127.0.0.1:{srv.port}/ws", timeout=3)
        assert info.value.response.status == 401
        assert info.value.response.body_text() == '{"error":"Authentication required"}'
    finally:
        srv.close()


def test_connect_with_a_close_in_the_same_write_as_the_101():
    echoed = []

    def script(conn, request):
        conn.sendall(
            (
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Accept: {accept_for(request)}\r\n\r\n"
            ).encode()
            + server_frame(proto.OP_CLOSE, proto.encode_close_payload(4401, "Unauthorized"))
        )
        echoed.append(read_client_frame(conn))

    srv = RawServer(script)
    try:
        conn = ws.connect(f"ws://127.0.0.1:{srv.port}/ws", timeout=3)
        msg = conn.recv(1)
        assert (msg.kind, msg.code, conn.closed_by) == ("close", 4401, "server")
    finally:
        srv.close()
    assert echoed[0][1] == proto.OP_CLOSE and echoed[0][2] == b"\x11\x31"


def test_a_refusal_whose_body_never_ends_is_reported_after_a_bounded_wait():
    def script(conn, _request):
        conn.sendall(b"HTTP/1.1 403 Forbidden\r\nServer: x\r\n\r\nOrigin not allowed")
        time.sleep(3)  # keeps the connection open, sends no length

    srv = RawServer(script)
    try:
        started = time.monotonic()
        with pytest.raises(proto.HandshakeRejected) as info:
            ws.connect(f"ws://127.0.0.1:{srv.port}/ws", timeout=5)
        waited = time.monotonic() - started
    finally:
        srv.close()
    assert info.value.response.body_text() == "Origin not allowed"
    assert ws.BODY_READ_SECONDS <= waited < ws.BODY_READ_SECONDS + 1


def test_connect_refuses_handshake_headers_before_connecting():
    port = free_port()  # nothing listens: a ValueError proves no connection was tried
    with pytest.raises(ValueError, match="part of the handshake"):
        ws.connect(f"ws://127.0.0.1:{port}/ws", headers={"Upgrade": "h2c"})


def test_connect_times_out_on_a_silent_server():
    srv = RawServer(lambda conn, request: time.sleep(0.8))
    try:
        started = time.monotonic()
        with pytest.raises(proto.Timeout):
            ws.connect(f"ws://127.0.0.1:{srv.port}/ws", timeout=0.3)
        assert time.monotonic() - started < 1.5
    finally:
        srv.close()


def test_connect_classifies_a_closed_port():
    port = free_port()
    with pytest.raises(proto.ConnectFailed) as info:
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
    info = summarize_certificate(der)
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
    info = summarize_certificate(ssl.PEM_cert_to_DER_cert(cert.read_text()))
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
