"""RFC 6455, server side (sections 4-7), case by case against the real server over sockets.

Each test sends the exact bytes of one case with a raw socket (rawws.py) and checks the
status line or the close code that comes back.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import struct
import time

import pytest
from rawws import RawClient, accept_for, close_payload, frame, upgrade_request
from wsnotify_harness import make_token

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


def _welcomed(port: int, user: str = "conformance") -> RawClient:
    """An authenticated connection that has read its welcome."""
    client = RawClient(port)
    request, key = upgrade_request(port, f"Authorization: Bearer {make_token(user)}\r\n")
    client.send(request)
    status, headers, _ = client.response_head()
    assert status == 101 and headers["sec-websocket-accept"] == accept_for(key)
    assert client.next_frame() == (
        OP_TEXT,
        json.dumps({"type": "welcome", "user_id": user}, separators=(",", ":")).encode(),
    )
    return client


def _refused(port: int, request: bytes) -> tuple[int, dict[str, str], bytes]:
    client = RawClient(port)
    try:
        client.send(request)
        status, headers, body = client.response_head()
        assert client.closed_by_server(), "the server must close after refusing an upgrade"
        return status, headers, body
    finally:
        client.close()


def _close_code_after(port: int, *frames: bytes) -> int | None:
    client = _welcomed(port)
    try:
        client.send(b"".join(frames))
        code = client.close_code()
        assert client.closed_by_server(), "the server must close TCP after a failure"
        return code
    finally:
        client.close()


# ---- 4.2.1 / 4.4: the opening handshake ----------------------------------------------------


def test_valid_handshake_accept_is_computed_from_the_key_as_sent(service):
    # The RFC's own example key (section 1.3) and its accept value.
    client = RawClient(service.port)
    request, _ = upgrade_request(
        service.port, f"Authorization: Bearer {make_token()}\r\n", key="dGhlIHNhbXBsZSBub25jZQ=="
    )
    client.send(request)
    status, headers, _ = client.response_head()
    assert status == 101
    assert headers["sec-websocket-accept"] == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    assert headers["upgrade"].lower() == "websocket" and headers["connection"].lower() == "upgrade"
    assert "sec-websocket-extensions" not in headers  # no compression, ever
    assert "sec-websocket-protocol" not in headers
    client.close()


@pytest.mark.parametrize(
    ("case", "override", "status", "message"),
    [
        ("no Upgrade", {"Upgrade": ""}, 400, "Upgrade header must contain websocket"),
        ("Upgrade h2c", {"Upgrade": "h2c"}, 400, "Upgrade header must contain websocket"),
        ("no Connection", {"Connection": ""}, 400, "Connection header must contain upgrade"),
        ("Connection keep-alive", {"Connection": "keep-alive"}, 400, "Connection header"),
        ("no key", {"Sec_WebSocket_Key": ""}, 400, "Sec-WebSocket-Key"),
        (
            "key of 15 bytes",
            {"Sec_WebSocket_Key": base64.b64encode(b"x" * 15).decode()},
            400,
            "Sec-WebSocket-Key",
        ),
        (
            "key of 17 bytes",
            {"Sec_WebSocket_Key": base64.b64encode(b"x" * 17).decode()},
            400,
            "Sec-WebSocket-Key",
        ),
        (
            "key not base64",
            {"Sec_WebSocket_Key": "!!!!not-base64-at-all!!!"},
            400,
            "Sec-WebSocket-Key",
        ),
        (
            "two keys",
            {
                "Sec_WebSocket_Key": "dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Key: "
                "dGhlIHNhbXBsZSBub25jZQ=="
            },
            400,
            "Sec-WebSocket-Key",
        ),
        ("no Host", {"Host": ""}, 400, "Host header is required"),
    ],
    ids=lambda v: v if isinstance(v, str) and len(v) < 30 else "",
)
def test_invalid_upgrade_requests_get_400(service, case, override, status, message):
    request, _ = upgrade_request(service.port, **override)
    got, _, body = _refused(service.port, request)
    assert got == status, case
    assert message in json.loads(body)["error"]


@pytest.mark.parametrize("version", ["8", "12", "14", "13, 8", ""])
def test_any_version_but_13_gets_426_naming_13(service, version):
    request, _ = upgrade_request(service.port, Sec_WebSocket_Version=version)
    status, headers, _ = _refused(service.port, request)
    assert status == 426
    assert headers["sec-websocket-version"] == "13"


@pytest.mark.parametrize("method", ["POST", "PUT", "HEAD"])
def test_only_get_upgrades(service, method):
    request, _ = upgrade_request(service.port)
    status, headers, _ = _refused(service.port, request.replace(b"GET", method.encode(), 1))
    assert status == 405 and headers["allow"] == "GET"


def test_http_1_0_is_refused(service):
    request, _ = upgrade_request(service.port)
    status, _, _ = _refused(service.port, request.replace(b"HTTP/1.1", b"HTTP/1.0", 1))
    assert status == 400


def test_header_names_and_tokens_are_case_insensitive_and_connection_is_a_list(service):
    request, key = upgrade_request(
        service.port,
        f"authorization: Bearer {make_token()}\r\n",
        Upgrade="WebSocket",
        Connection="keep-alive, UPGRADE",
    )
    client = RawClient(service.port)
    client.send(request.replace(b"Sec-WebSocket-Version", b"SEC-WEBSOCKET-VERSION"))
    status, headers, _ = client.response_head()
    assert status == 101 and headers["sec-websocket-accept"] == accept_for(key)
    assert client.next_frame()[0] == OP_TEXT
    client.close()


def test_malformed_header_line_is_400(service):
    request, _ = upgrade_request(service.port, "this line has no colon\r\n")
    assert _refused(service.port, request)[0] == 400
    request, _ = upgrade_request(service.port, "Folded: a\r\n  continued\r\n")
    assert _refused(service.port, request)[0] == 400


def test_request_split_across_reads(service):
    request, key = upgrade_request(service.port, f"Authorization: Bearer {make_token()}\r\n")
    client = RawClient(service.port)
    client.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    for i in range(0, len(request), 7):  # 7-byte pieces, each its own segment
        client.send(request[i : i + 7])
        time.sleep(0.002)
    status, headers, _ = client.response_head()
    assert status == 101 and headers["sec-websocket-accept"] == accept_for(key)
    assert client.next_frame()[0] == OP_TEXT
    client.close()


def test_frames_in_the_same_read_as_the_request(service):
    # No token in the handshake: the auth message and a ping arrive with the request.
    request, _ = upgrade_request(service.port)
    auth = json.dumps({"type": "auth", "token": make_token("same-read")}).encode()
    client = RawClient(service.port)
    client.send(request + frame(OP_TEXT, auth) + frame(OP_PING, b"p1"))
    assert client.response_head()[0] == 101
    first, second = client.next_frame(), client.next_frame()
    assert first == (OP_TEXT, b'{"type":"welcome","user_id":"same-read"}')
    assert second == (OP_PONG, b"p1")
    client.close()


def test_101_and_welcome_arrive_in_one_segment(service):
    request, _ = upgrade_request(service.port, f"Authorization: Bearer {make_token()}\r\n")
    client = RawClient(service.port)
    client.send(request)
    time.sleep(0.2)
    data = client.sock.recv(65536)  # one write on the server: one read here
    assert data.startswith(b"HTTP/1.1 101") and data.endswith(b'"user_id":"42"}')
    client.close()


# ---- 5.1-5.4: framing ------------------------------------------------------------------------


def test_unmasked_client_frame_is_1002(service):
    assert _close_code_after(service.port, frame(OP_TEXT, b"{}", mask=False)) == 1002


@pytest.mark.parametrize("rsv", [1, 2, 4])
def test_reserved_bits_without_an_extension_are_1002(service, rsv):
    assert _close_code_after(service.port, frame(OP_TEXT, b"{}", rsv=rsv)) == 1002


@pytest.mark.parametrize("opcode", [3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF])
def test_reserved_opcodes_are_1002(service, opcode):
    assert _close_code_after(service.port, frame(opcode, b"x")) == 1002


def test_control_frame_over_125_bytes_is_1002(service):
    assert _close_code_after(service.port, frame(OP_PING, b"x" * 126)) == 1002


def test_fragmented_control_frame_is_1002(service):
    assert _close_code_after(service.port, frame(OP_PING, b"x", fin=False)) == 1002


def test_continuation_with_nothing_to_continue_is_1002(service):
    assert _close_code_after(service.port, frame(OP_CONT, b"x")) == 1002


def test_new_data_frame_inside_a_fragmented_message_is_1002(service):
    code = _close_code_after(
        service.port, frame(OP_TEXT, b'{"a":', fin=False), frame(OP_TEXT, b"1}")
    )
    assert code == 1002


def test_64_bit_length_with_the_top_bit_set_is_1002(service):
    bad = struct.pack("!BBQ", 0x81, 0x80 | 127, 1 << 63) + os.urandom(4)
    assert _close_code_after(service.port, bad) == 1002


def test_message_over_the_limit_is_1009(service):
    # The header alone announces 64 KiB + 1: refused before a byte of payload is buffered.
    big = struct.pack("!BBQ", 0x81, 0x80 | 127, 64 * 1024 + 1) + os.urandom(4)
    assert _close_code_after(service.port, big) == 1009


def test_fragmented_message_over_the_limit_is_1009(service):
    half = b"x" * (33 * 1024)
    code = _close_code_after(
        service.port, frame(OP_TEXT, half, fin=False), frame(OP_CONT, half, fin=True)
    )
    assert code == 1009


def test_invalid_utf8_text_is_1007(service):
    assert _close_code_after(service.port, frame(OP_TEXT, b'{"x":"\xff"}')) == 1007


def test_invalid_utf8_split_across_fragments_is_1007(service):
    # A valid prefix, then a continuation that makes the sequence invalid: refused in that
    # fragment, before the message is complete.
    code = _close_code_after(
        service.port, frame(OP_TEXT, b'{"x":"\xe2\x82', fin=False), frame(OP_CONT, b"(", fin=False)
    )
    assert code == 1007


def test_a_character_split_across_fragments_is_fine_and_control_frames_interleave(service):
    # The auth message itself, fragmented in the middle of "€" (e2 82 ac), a ping between.
    request, _ = upgrade_request(service.port)
    auth = json.dumps(
        {"type": "auth", "token": make_token("frag"), "x": "€"}, ensure_ascii=False
    ).encode()
    cut = auth.index(b"\xe2\x82") + 1
    client = RawClient(service.port)
    client.send(request)
    assert client.response_head()[0] == 101
    client.send(frame(OP_TEXT, auth[:cut], fin=False))
    client.send(frame(OP_PING, b"between"))
    client.send(frame(OP_CONT, auth[cut:], fin=True))
    assert client.next_frame() == (OP_PONG, b"between")
    assert client.next_frame() == (OP_TEXT, b'{"type":"welcome","user_id":"frag"}')
    client.close()


def test_frames_split_at_every_byte_are_reassembled(service):
    client = _welcomed(service.port)
    client.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    ping = frame(OP_PING, b"x" * 125)  # 2-byte header + mask + payload
    for byte in ping:
        client.send(bytes([byte]))
    assert client.next_frame() == (OP_PONG, b"x" * 125)
    client.close()


# ---- 5.5: control frames, 7: closing ---------------------------------------------------------


@pytest.mark.parametrize("payload", [b"", b"hello", bytes(range(125))])
def test_ping_gets_a_pong_with_the_same_payload(service, payload):
    client = _welcomed(service.port)
    client.send(frame(OP_PING, payload))
    assert client.next_frame() == (OP_PONG, payload)
    client.close()


def test_unsolicited_pong_is_ignored(service):
    client = _welcomed(service.port)
    client.send(frame(OP_PONG, b"nobody asked") + frame(OP_PING, b"still-open"))
    assert client.next_frame() == (OP_PONG, b"still-open")
    client.close()


@pytest.mark.parametrize("code", [1000, 1001, 1002, 1003, 1007, 1011, 1014, 3000, 4000, 4999])
def test_close_handshake_is_echoed_and_the_server_closes_tcp(service, code):
    client = _welcomed(service.port)
    client.send(frame(OP_CLOSE, close_payload(code, "bye €".encode())))
    opcode, payload = client.next_frame()
    assert opcode == OP_CLOSE and struct.unpack("!H", payload[:2])[0] == code
    assert client.closed_by_server()
    client.close()


def test_empty_close_gets_an_empty_close(service):
    client = _welcomed(service.port)
    client.send(frame(OP_CLOSE))
    assert client.next_frame() == (OP_CLOSE, b"")
    assert client.closed_by_server()
    client.close()


@pytest.mark.parametrize(
    "code", [0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535]
)
def test_invalid_close_codes_are_1002(service, code):
    assert _close_code_after(service.port, frame(OP_CLOSE, close_payload(code))) == 1002


def test_one_byte_close_payload_is_1002(service):
    assert _close_code_after(service.port, frame(OP_CLOSE, b"\x03")) == 1002


def test_close_reason_that_is_not_utf8_is_1007(service):
    assert _close_code_after(service.port, frame(OP_CLOSE, close_payload(1000, b"\xff"))) == 1007


def test_nothing_after_the_close_frame_is_answered(service):
    client = _welcomed(service.port)
    client.send(frame(OP_CLOSE, close_payload(1000)) + frame(OP_PING, b"late"))
    assert client.next_frame()[0] == OP_CLOSE
    assert client.next_frame() is None  # no pong: the connection is over
    client.close()


def test_binary_first_message_is_4401(service):
    request, _ = upgrade_request(service.port)
    client = RawClient(service.port)
    client.send(request + frame(OP_BINARY, b"\x00\x01"))
    assert client.response_head()[0] == 101
    assert client.close_code() == 4401
    client.close()


# ---- one port: what is not /ws goes to aiohttp, and back ------------------------------------


def test_rest_request_split_inside_its_first_line_reaches_aiohttp(service):
    client = RawClient(service.port)
    client.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    client.send(b"GET /hea")
    time.sleep(0.05)
    client.send(b"lthz HTTP/1.1\r\nHost: x\r\n\r\n")
    status, _, body = client.response_head()
    assert status == 200 and json.loads(body)["status"] == "ok"
    client.close()


def test_upgrade_on_a_kept_alive_http_connection(service):
    # nginx reuses its upstream keep-alive connections for any location, /ws included.
    client = RawClient(service.port)
    client.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    status, headers, _ = client.response_head()
    assert status == 200 and headers.get("connection", "keep-alive").lower() != "close"
    request, key = upgrade_request(service.port, f"Authorization: Bearer {make_token('kept')}\r\n")
    client.send(request)
    status, headers, _ = client.response_head()
    assert status == 101 and headers["sec-websocket-accept"] == accept_for(key)
    assert client.next_frame() == (OP_TEXT, b'{"type":"welcome","user_id":"kept"}')
    client.send(frame(OP_PING, b"mine now"))
    assert client.next_frame() == (OP_PONG, b"mine now")
    client.send(frame(OP_CLOSE, close_payload(1000)))
    assert client.next_frame()[0] == OP_CLOSE and client.closed_by_server()
    client.close()


def test_bad_upgrade_on_a_kept_alive_connection_is_refused_the_same_way(service):
    client = RawClient(service.port)
    client.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    assert client.response_head()[0] == 200
    request, _ = upgrade_request(service.port, Sec_WebSocket_Version="8")
    client.send(request)
    status, headers, _ = client.response_head()
    assert status == 426 and headers["sec-websocket-version"] == "13"
    assert client.closed_by_server()
    client.close()


def test_not_http_at_all_gets_400_from_aiohttp(service):
    client = RawClient(service.port)
    client.send(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\r\n\r\n")  # a TLS hello
    assert client.response_head()[0] == 400
    client.close()
