"""The sans-I/O protocol and the sweeps, without sockets (the same rules over sockets are in
test_conformance.py)."""

from __future__ import annotations

import asyncio
import sys

import pytest
from rawws import close_payload, frame

from wsnotify import rfc6455, ws
from wsnotify.rfc6455 import (
    BinaryMessage,
    CloseReceived,
    HandshakeError,
    PingReceived,
    ProtocolFailure,
    ServerProtocol,
    TextMessage,
)
from wsnotify.timers import Deadlines


def _open() -> ServerProtocol:
    proto = ServerProtocol()
    proto.state = rfc6455.OPEN
    return proto


def test_close_codes_match_section_7_4():
    invalid = {*range(0, 1000), 1004, 1005, 1006, 1015, *range(1016, 3000), *range(5000, 65536)}
    for code in range(65536):
        assert rfc6455.close_code_allowed(code) is (code not in invalid), code


def test_byte_by_byte_equals_all_at_once_and_nothing_stays_buffered():
    stream = (
        frame(0x1, b'{"a":', fin=False)
        + frame(0x9, b"ping")
        + frame(0x0, "€".encode(), fin=True)
        + frame(0x2, b"\x00" * 300)
        + frame(0x8, close_payload(1000, b"bye"))
    )
    whole = _open().receive_data(stream)
    proto = _open()
    pieces = []
    for i in range(len(stream)):
        pieces += proto.receive_data(stream[i : i + 1])
    assert pieces == whole
    assert [type(e) for e in whole] == [PingReceived, TextMessage, BinaryMessage, CloseReceived]
    assert whole[1] == TextMessage('{"a":€')
    assert whole[3] == CloseReceived(1000, "bye", rfc6455.close_frame(1000))
    assert proto._buf is None and proto._frag is None and proto._decoder is None


def test_idle_connection_keeps_no_buffer_between_frames():
    proto = _open()
    ping = frame(0x9, b"x")
    assert proto.receive_data(ping[:3]) == [] and proto._buf == ping[:3]
    assert proto.receive_data(ping[3:]) == [PingReceived(rfc6455.encode_frame(0xA, b"x"))]
    assert proto._buf is None


def test_server_initiated_close_waits_for_the_peer_and_ignores_data_meanwhile():
    proto = _open()
    assert proto.send_close(4401, b"Unauthorized") == rfc6455.close_frame(4401, b"Unauthorized")
    assert proto.send_close(1000) == b""  # only one close frame
    events = proto.receive_data(frame(0x1, b"late") + frame(0x8, close_payload(4401)))
    assert events == [CloseReceived(4401, "", b"")]  # no echo: we closed first
    assert proto.receive_data(frame(0x9, b"after")) == []


def test_failure_carries_the_close_frame_and_ends_the_stream():
    proto = _open()
    events = proto.receive_data(frame(0x1, b"\xff") + frame(0x9, b"never answered"))
    assert events == [
        ProtocolFailure(
            1007,
            "text message is not valid UTF-8",
            rfc6455.close_frame(1007, b"text message is not valid UTF-8"),
        )
    ]
    assert proto.state == rfc6455.CLOSED


def test_parse_request_joins_repeated_headers_and_lowercases_names():
    request = rfc6455.parse_request(
        b"GET /ws?token=a.b.c HTTP/1.1\r\nHost: h\r\nConnection: keep-alive\r\n"
        b"CONNECTION: Upgrade\r\nX-Empty:"
    )
    assert request.headers["connection"] == "keep-alive, Upgrade"
    assert request.headers["x-empty"] == ""
    assert (request.path, request.query) == ("/ws", "token=a.b.c")
    for bad in (
        b"GET /ws\r\nHost: h",
        b"G@T /ws HTTP/1.1",
        b"GET /ws HTTP/1.1\r\n: x",
        b"GET /ws HTTP/1.1\r\nHost: h\nX: smuggled",  # a bare LF
        b"GET /ws HTTP/1.1\r\nHost: h\rX: y",
        b"GET /ws HTTP/1.1\r\nHo st: h",
    ):
        with pytest.raises(HandshakeError):
            rfc6455.parse_request(bad)


def test_request_line_routes_before_the_head_is_complete():
    assert rfc6455.request_line(b"GET /w") is None
    assert rfc6455.request_line(b"GET /ws?x HTTP/1.1\r\nHo") == ("GET", "/ws?x")
    assert rfc6455.request_line(b"\x16\x03\x01garbage\r\n") == ("", "")
    assert rfc6455.request_line(b"x" * (rfc6455.MAX_HEAD + 1)) == ("", "")


def test_error_response_is_json_and_closes():
    raw = rfc6455.error_response(426, "only 13", (("Sec-WebSocket-Version", "13"),))
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 426 Upgrade Required\r\n")
    assert b"\r\nSec-WebSocket-Version: 13\r\n" in head and b"\r\nConnection: close" in head
    assert body == b'{"error":"only 13"}'


def test_a_connection_is_one_small_object_without_a_dict():
    # __slots__ all the way down (asyncio.Protocol has empty slots): no per-instance dict.
    assert ws.Connection.__dictoffset__ == 0
    assert ws.Connection.__weakrefoffset__ == 0
    conn = ws.Connection.__new__(ws.Connection)
    assert sys.getsizeof(conn) <= 128


def test_deadlines_expire_together_with_one_timer_and_leaving_is_free():
    async def scenario() -> tuple[list[str], int]:
        loop = asyncio.get_running_loop()
        expired: list[str] = []
        deadlines: Deadlines[str] = Deadlines(loop, 0.2, expired.append, resolution=0.05)
        buckets = {name: deadlines.add(name) for name in ("a", "b", "c")}
        buckets["b"].discard("b")  # b authenticated in time
        await asyncio.sleep(0.1)
        deadlines.add("d")
        timers = sum(1 for h in loop._scheduled if not h.cancelled())  # type: ignore[attr-defined]
        await asyncio.sleep(0.35)
        return expired, timers

    expired, timers = asyncio.run(scenario())
    assert sorted(expired) == ["a", "c", "d"]
    assert timers == 1
