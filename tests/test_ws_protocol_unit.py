"""module_utils/ws_protocol.py without sockets: the pure handshake and frame functions against
RFC 6455 vectors, and ClientProtocol fed bytes case by case (split reads, frames behind the 101,
fragments around control frames, the closing handshake, every refusal of bad input)."""

from __future__ import annotations

import base64
import json
import struct

import pytest
from helpers.frames import server_frame, split_frames

from module_utils import ws_protocol as ws

KEY = "dGhlIHNhbXBsZSBub25jZQ=="  # RFC 6455 1.3
ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
OK_101 = (
    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    f"Sec-WebSocket-Accept: {ACCEPT}\r\n\r\n"
).encode()
URL = ws.parse_ws_url("ws://127.0.0.1:3002/ws")

# --------------------------------------------------------------------------- pure functions


def test_accept_matches_the_rfc_6455_example():
    assert ws.compute_accept(KEY) == ACCEPT


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
    raw = ws.build_upgrade_request(
        URL, "a2V5a2V5a2V5a2V5a2V5aw==", "https://app.example", {"X-Probe": "1"}, ["v1", "v2"]
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


def test_token_placement_puts_after_id_beside_the_token():
    url = ws.parse_ws_url("ws://h/ws?a=1")
    assert ws.token_placement(url, "tok", "header", after_id=7) == (
        {"Authorization": "Bearer tok"},
        "/ws?a=1&after_id=7",
        None,
    )
    assert ws.token_placement(url, "tok", "query", 7) == ({}, "/ws?a=1&after_id=7&token=tok", None)
    headers, resource, first = ws.token_placement(url, "tok", "message", 7)
    assert (headers, resource) == ({}, None)
    assert json.loads(first) == {"type": "auth", "token": "tok", "after_id": 7}
    assert ws.token_placement(url, None, "message", 0) == ({}, "/ws?a=1&after_id=0", None)


def test_merge_headers_refuses_a_second_authorization():
    assert ws.merge_headers({"X-A": "1"}, {"Authorization": "Bearer t"}) == {
        "X-A": "1",
        "Authorization": "Bearer t",
    }
    with pytest.raises(ValueError, match="token option"):
        ws.merge_headers({"authorization": "Basic x"}, {"Authorization": "Bearer t"})


def test_parse_and_validate_the_101():
    head = (
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: WebSocket\r\nConnection: keep-alive, "
        b"Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nX-Multi: a\r\nx-multi: b"
    )
    resp = ws.parse_http_response(head)
    assert (resp.status, resp.reason) == (101, "Switching Protocols")
    assert resp.headers["x-multi"] == "a, b" and resp.get("UPGRADE") == "WebSocket"
    assert ws.validate_upgrade_response(resp, KEY) == (True, [])

    wrong = ws.parse_http_response(head.replace(b"s3pPLM", b"AAAAAA"))
    valid, problems = ws.validate_upgrade_response(wrong, KEY)
    assert valid is False and "Sec-WebSocket-Accept" in problems[0]

    extras = ws.parse_http_response(
        head + b"\r\nSec-WebSocket-Protocol: v9\r\nSec-WebSocket-Extensions: permessage-deflate"
    )
    valid, problems = ws.validate_upgrade_response(extras, KEY, ["v1"])
    assert valid is True and len(problems) == 2

    bare = ws.parse_http_response(
        b"HTTP/1.1 101 OK\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    )
    _valid, problems = ws.validate_upgrade_response(bare, KEY)
    assert any("Upgrade header" in p for p in problems)
    assert any("Connection header" in p for p in problems)

    with pytest.raises(ws.ProtocolError):
        ws.parse_http_response(b"SSH-2.0-OpenSSH_9.2")


def test_frames_match_the_rfc_6455_examples():
    # RFC 6455 5.7: unmasked and masked "Hello".
    assert ws.encode_frame(ws.OP_TEXT, b"Hello", mask=False) == bytes.fromhex("810548656c6c6f")
    masked = ws.encode_frame(ws.OP_TEXT, b"Hello", mask_key=bytes.fromhex("37fa213d"))
    assert masked == bytes.fromhex("818537fa213d7f9f4d5158")
    assert split_frames(masked) == [(True, ws.OP_TEXT, b"Hello", True)]
    with pytest.raises(ValueError):
        ws.encode_frame(ws.OP_PING, b"x" * 126)


@pytest.mark.parametrize("size", [0, 125, 126, 65535, 65536, 70000])
def test_length_encodings_round_trip(size):
    payload = bytes(i % 251 for i in range(size))
    data = ws.encode_frame(ws.OP_BINARY, payload)
    header_len = 2 + 4 + (0 if size < 126 else 2 if size < 65536 else 8)
    assert len(data) == header_len + size
    assert split_frames(data) == [(True, ws.OP_BINARY, payload, True)]
    # and the protocol decodes the server's (unmasked) form, whole or cut anywhere
    frame = server_frame(ws.OP_BINARY, payload)
    for cut in sorted({1, 2, 3, 9, len(frame) - 1}):
        if not 0 < cut < len(frame):
            continue
        p = open_protocol()
        p.receive_data(frame[:cut])
        assert events(p) == []
        p.receive_data(frame[cut:])
        assert events(p) == [(ws.OP_BINARY, payload)], cut


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


# --------------------------------------------------------------------------- ClientProtocol


def events(p: ws.ClientProtocol) -> list[tuple]:
    return list(p.events_received())


def open_protocol(**kwargs) -> ws.ClientProtocol:
    """A protocol past a valid 101 (key of RFC 6455 1.3), nothing pending."""
    p = ws.ClientProtocol(key=KEY, **kwargs)
    p.send_request(URL)
    p.data_to_send()
    p.receive_data(OK_101)
    assert p.state == ws.OPEN
    return p


def test_request_then_101_opens():
    p = ws.ClientProtocol(key=KEY)
    assert p.state == ws.CONNECTING and p.data_to_send() == b""
    p.send_request(URL, origin="https://app.example", headers={"X-A": "1"}, resource="/ws?t=1")
    request = p.data_to_send().decode()
    assert request.startswith("GET /ws?t=1 HTTP/1.1\r\n")
    assert f"Sec-WebSocket-Key: {KEY}\r\n" in request and "Origin: https://app.example" in request
    p.receive_data(OK_101)
    assert p.state == ws.OPEN and p.response.status == 101
    assert events(p) == [] and p.data_to_send() == b""
    assert len(base64.b64decode(ws.ClientProtocol().key)) == 16  # a fresh key by default


def test_101_split_across_reads_byte_by_byte():
    p = ws.ClientProtocol(key=KEY)
    data = OK_101 + server_frame(ws.OP_TEXT, b'{"type":"welcome"}')
    for i in range(len(data)):
        p.receive_data(data[i : i + 1])
        assert (p.state == ws.OPEN) == (i >= len(OK_101) - 1), i
    assert events(p) == [(ws.OP_TEXT, b'{"type":"welcome"}')]


def test_frames_in_the_same_read_as_the_101():
    p = ws.ClientProtocol(key=KEY)
    p.receive_data(
        OK_101
        + server_frame(ws.OP_TEXT, b"one")
        + server_frame(ws.OP_PING, b"hb")
        + server_frame(ws.OP_BINARY, b"\x00\x01")
        + server_frame(ws.OP_TEXT, b"tw")[:3]  # and the start of a fourth
    )
    assert events(p) == [(ws.OP_TEXT, b"one"), (ws.OP_BINARY, b"\x00\x01")]
    assert split_frames(p.data_to_send()) == [(True, ws.OP_PONG, b"hb", True)]
    p.receive_data(b"w")
    assert events(p) == [(ws.OP_TEXT, b"tw")]


def test_fragmented_message_with_interleaved_control_frames():
    p = open_protocol()
    p.receive_data(
        server_frame(ws.OP_TEXT, b"Hel", fin=False)
        + server_frame(ws.OP_PING, b"p1")
        + server_frame(ws.OP_PONG, b"")
    )
    assert events(p) == []  # not complete yet
    p.receive_data(server_frame(ws.OP_CONT, b"lo ", fin=False))
    p.receive_data(server_frame(ws.OP_CONT, "✓".encode(), fin=True))
    assert events(p) == [(ws.OP_TEXT, "Hello ✓".encode())]
    assert split_frames(p.data_to_send()) == [(True, ws.OP_PONG, b"p1", True)]


def test_server_close_is_echoed_and_ends_the_connection():
    p = open_protocol()
    close = server_frame(ws.OP_CLOSE, ws.encode_close_payload(4401, "Unauthorized"))
    p.receive_data(close + server_frame(ws.OP_TEXT, b"after the close"))
    assert events(p) == [(ws.OP_CLOSE, 4401, "Unauthorized")]
    assert (p.state, p.close_code, p.close_reason, p.closed_by) == (
        ws.CLOSED,
        4401,
        "Unauthorized",
        "server",
    )
    echo = split_frames(p.data_to_send())
    assert echo == [(True, ws.OP_CLOSE, struct.pack("!H", 4401), True)]
    p.receive_data(server_frame(ws.OP_TEXT, b"ignored"))
    assert events(p) == []
    with pytest.raises(ws.ConnectionClosed):
        p.send_text("too late")


def test_client_close_waits_for_the_servers_and_still_delivers_data():
    p = open_protocol()
    p.send_close(1000, "bye")
    assert p.state == ws.CLOSING and p.closed_by == "client"
    assert split_frames(p.data_to_send()) == [(True, ws.OP_CLOSE, b"\x03\xe8bye", True)]
    p.send_close(1000)  # a second close sends nothing
    assert p.data_to_send() == b""
    p.receive_data(server_frame(ws.OP_TEXT, b"in flight") + server_frame(ws.OP_PING, b"x"))
    assert events(p) == [(ws.OP_TEXT, b"in flight")]
    assert p.data_to_send() == b""  # no pong after our close
    p.receive_data(server_frame(ws.OP_CLOSE, b"\x03\xe8"))
    assert events(p) == [(ws.OP_CLOSE, 1000, "")]
    assert (p.state, p.closed_by) == (ws.CLOSED, "client")
    assert p.data_to_send() == b""  # the server answered ours: no echo


def test_close_without_a_body():
    p = open_protocol()
    p.receive_data(server_frame(ws.OP_CLOSE, b""))
    assert events(p) == [(ws.OP_CLOSE, None, "")]
    assert split_frames(p.data_to_send()) == [(True, ws.OP_CLOSE, b"", True)]


def fails_with(p: ws.ClientProtocol, data: bytes, match: str, code: int = 1002) -> None:
    """Feeding ``data`` raises ProtocolError and queues our close with ``code``."""
    with pytest.raises(ws.ProtocolError, match=match):
        p.receive_data(data)
    assert p.state == ws.CLOSED
    sent = split_frames(p.data_to_send())
    assert [(op, payload[:2]) for _fin, op, payload, _m in sent] == [
        (ws.OP_CLOSE, struct.pack("!H", code))
    ]
    p.receive_data(server_frame(ws.OP_TEXT, b"x"))  # nothing more is parsed
    assert events(p) == []


def test_masked_server_frames_are_refused():
    fails_with(open_protocol(), ws.encode_frame(ws.OP_TEXT, b"x", mask=True), "masked")


def test_64_bit_length_with_the_top_bit_set_is_refused():
    frame = bytes([0x82, 127]) + struct.pack("!Q", 1 << 63)
    fails_with(open_protocol(), frame, "most significant bit")


def test_oversize_frames_and_messages_are_refused_before_buffering():
    fails_with(open_protocol(), bytes([0x82, 127]) + struct.pack("!Q", 1 << 40), "limit", 1009)
    fails_with(
        open_protocol(max_size=1000),
        bytes([0x82, 126]) + struct.pack("!H", 1001),  # the header alone is enough
        "1000-byte limit",
        1009,
    )
    small = open_protocol(max_size=1000)
    small.receive_data(server_frame(ws.OP_TEXT, b"a" * 600, fin=False))
    fails_with(small, server_frame(ws.OP_CONT, b"b" * 600), "message exceeds 1000 bytes", 1009)


@pytest.mark.parametrize(
    ("data", "match", "code"),
    [
        (bytes([0xC1, 0x00]), "reserved bits", 1002),  # RSV1: compressed without negotiation
        (bytes([0x83, 0x00]), "opcode", 1002),
        (bytes([0x8B, 0x00]), "opcode", 1002),
        (bytes([0x89, 126, 0, 200]) + b"x" * 200, "control frame", 1002),
        (bytes([0x09, 0x00]), "control frame", 1002),  # a fragmented ping
        (server_frame(ws.OP_CLOSE, b"\x03"), "1-byte", 1002),
        (server_frame(ws.OP_CLOSE, struct.pack("!H", 1005)), "invalid close code", 1002),
        (server_frame(ws.OP_CONT, b"x"), "continuation frame without", 1002),
        (server_frame(ws.OP_TEXT, b"\xff\xfe"), "UTF-8", 1007),
    ],
)
def test_protocol_violations_fail_the_connection(data, match, code):
    fails_with(open_protocol(), data, match, code)


def test_new_message_inside_a_fragmented_one_and_invalid_utf8_across_fragments():
    p = open_protocol()
    p.receive_data(server_frame(ws.OP_TEXT, b"a", fin=False))
    fails_with(p, server_frame(ws.OP_TEXT, b"b"), "while a fragmented message", 1002)
    q = open_protocol()
    q.receive_data(server_frame(ws.OP_TEXT, "é".encode()[:1], fin=False))
    q.receive_data(server_frame(ws.OP_CONT, "é".encode()[1:]))  # valid once joined
    assert events(q) == [(ws.OP_TEXT, "é".encode())]
    q.receive_data(server_frame(ws.OP_TEXT, b"\xc3", fin=False))
    fails_with(q, server_frame(ws.OP_CONT, b"a"), "UTF-8", 1007)


@pytest.mark.parametrize(
    ("response", "accept_valid", "problem"),
    [
        (OK_101.replace(ACCEPT.encode(), b"AAAAAAAAAAAAAAAAAAAAAAAAAAA="), False, "Accept"),
        (OK_101.replace(b"Upgrade: websocket\r\n", b""), True, "Upgrade header"),
        (
            OK_101.replace(
                b"\r\n\r\n", b"\r\nSec-WebSocket-Extensions: permessage-deflate\r\n\r\n"
            ),
            True,
            "extensions",
        ),
    ],
)
def test_an_invalid_101_is_refused(response, accept_valid, problem):
    p = ws.ClientProtocol(key=KEY)
    with pytest.raises(ws.HandshakeInvalid, match=problem) as info:
        p.receive_data(response)
    assert info.value.accept_valid is accept_valid and info.value.response.status == 101
    assert p.state == ws.CLOSED


def test_a_refusal_is_raised_once_its_body_arrived():
    body = b'{"error":"Authentication required"}'
    head = b"HTTP/1.1 401 Unauthorized\r\nContent-Length: %d\r\n\r\n" % len(body)
    p = ws.ClientProtocol(key=KEY)
    p.receive_data(head + body[:10])
    assert p.state == ws.CONNECTING and p.response.status == 401  # waiting for the rest
    with pytest.raises(ws.HandshakeRejected) as info:
        p.receive_data(body[10:])
    assert info.value.response.body == body and p.state == ws.CLOSED


def test_a_refusal_without_length_ends_at_eof_or_when_the_caller_stops_waiting():
    p = ws.ClientProtocol(key=KEY)
    p.receive_data(b"HTTP/1.1 404 Not Found\r\nServer: nginx\r\n\r\n<html>")
    with pytest.raises(ws.HandshakeRejected) as info:
        p.receive_eof()
    assert info.value.response.body == b"<html>"
    capped = ws.ClientProtocol(key=KEY)
    with pytest.raises(ws.HandshakeRejected) as info:  # 2 KiB of evidence is enough
        capped.receive_data(b"HTTP/1.1 502 Bad Gateway\r\n\r\n" + b"x" * 5000)
    assert len(info.value.response.body) == ws.BODY_EVIDENCE_BYTES
    slow = ws.ClientProtocol(key=KEY)
    slow.receive_data(b"HTTP/1.1 502 Bad Gateway\r\n\r\nshort")
    with pytest.raises(ws.HandshakeRejected) as info:
        slow.finish_refusal()
    assert info.value.response.body == b"short"


def test_eof_before_and_after_the_handshake():
    with pytest.raises(ws.ConnectionClosed, match="without a close frame"):
        ws.ClientProtocol().receive_eof()
    partial = ws.ClientProtocol()
    partial.receive_data(b"HTTP/1.1 101 Swi")
    with pytest.raises(ws.ProtocolError, match="middle of the HTTP response"):
        partial.receive_eof()
    p = open_protocol()
    p.receive_eof()  # abrupt, after the 101: no close code, nothing raised
    assert (p.state, p.close_code) == (ws.CLOSED, None)


def test_garbage_and_oversized_response_heads():
    with pytest.raises(ws.ProtocolError, match="not an HTTP response"):
        ws.ClientProtocol().receive_data(b"SSH-2.0-OpenSSH_9.2\r\n\r\n")
    huge = ws.ClientProtocol()
    with pytest.raises(ws.ProtocolError, match="larger than"):
        huge.receive_data(b"HTTP/1.1 101 OK\r\nX: " + b"a" * ws.MAX_HEADER_BYTES)
    assert huge.state == ws.CLOSED


def test_send_text_is_masked_and_only_allowed_while_open():
    p = ws.ClientProtocol(key=KEY)
    with pytest.raises(ws.ConnectionClosed):
        p.send_text("early")
    p.receive_data(OK_101)
    p.send_text('{"type":"auth"}')
    assert split_frames(p.data_to_send()) == [(True, ws.OP_TEXT, b'{"type":"auth"}', True)]
