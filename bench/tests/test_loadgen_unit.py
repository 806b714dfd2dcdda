"""loadgen.Client's callbacks with a fake transport: it drives module_utils' ClientProtocol
(validated upgrade, welcome, ping -> pong, closing handshake, protocol errors) and stamps
arrivals; the raw floor's frame is what a server sends. The whole machinery against real
servers runs in ``run.py --smoke``."""

from __future__ import annotations

import asyncio
import struct

import loadgen
import pytest
import wsframes

from module_utils import ws_protocol as ws


class FakeTransport:
    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.closing = False

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def abort(self) -> None:
        self.closing = True


def frame(opcode: int, payload: bytes) -> bytes:
    return wsframes.encode_frame(opcode, payload, mask=False)


def client_frames(transport: FakeTransport) -> list[tuple[int, bytes]]:
    """(opcode, unmasked payload) of what the client wrote after its request."""
    out = []
    for data in transport.written:
        if data.startswith(b"GET "):
            continue
        n, key = data[1] & 0x7F, data[2:6]
        assert data[1] & 0x80, "client frames are masked"
        out.append((data[0] & 0x0F, bytes(b ^ key[i % 4] for i, b in enumerate(data[6 : 6 + n]))))
    return out


def accept_101(client: loadgen.Client) -> bytes:
    return (
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Accept: {ws.compute_accept(client.protocol.key)}\r\n\r\n"
    ).encode()


def run(coro):
    return asyncio.run(coro)


def ws_client(want_welcome: bool = False, upgraded: bool = True):
    """A WebSocket Client on a fake transport, past a valid 101 unless ``upgraded`` is False."""
    client = loadgen.Client(ws.WsUrl("ws", "127.0.0.1", 1, "/ws"), {}, want_welcome)
    transport = FakeTransport()
    client.connection_made(transport)
    if upgraded:
        client.data_received(accept_101(client))
    return client, transport


def test_the_raw_floor_frame_is_204_bytes_and_raw_clients_read_it_split() -> None:
    async def body() -> None:
        payload = b"x" * 200
        data = frame(ws.OP_TEXT, payload)
        assert len(data) == 204  # 2-byte header + 2-byte extended length, as in PERF-NOTES
        client = loadgen.Client(None, {}, False)
        client.connection_made(FakeTransport())
        assert client.opened.done()  # raw TCP: open at once
        arrivals = loadgen.Arrivals(1)
        client.arrivals = arrivals
        client.data_received(data[:100])
        assert arrivals.count == 0  # a partial frame waits
        client.data_received(data[100:])
        assert arrivals.count == 1 and arrivals.payload == payload and arrivals.done.done()

    run(body())


def test_the_upgrade_is_validated_and_the_welcome_opens() -> None:
    async def body() -> None:
        client = loadgen.Client(ws.WsUrl("ws", "127.0.0.1", 1, "/ws"), {"X-A": "1"}, True)
        transport = FakeTransport()
        client.connection_made(transport)
        request = transport.written[0].decode()
        assert request.startswith("GET /ws HTTP/1.1\r\n") and "X-A: 1\r\n" in request
        client.data_received(accept_101(client) + frame(ws.OP_PING, b"hb"))
        assert not client.opened.done()  # waits for the welcome
        assert client_frames(transport) == [(ws.OP_PONG, b"hb")]
        client.data_received(frame(ws.OP_TEXT, b'{"type":"welcome"}'))
        assert client.opened.done() and client.opened.exception() is None

    run(body())


def test_a_wrong_accept_fails_the_open() -> None:
    async def body() -> None:
        client, transport = ws_client(upgraded=False)
        wrong = accept_101(client).replace(b"Accept: ", b"Accept: x")
        client.data_received(wrong)
        with pytest.raises(ConnectionError, match="Sec-WebSocket-Accept"):
            client.opened.result()
        assert transport.closing

    run(body())


def test_closing_handshakes_both_ways() -> None:
    async def body() -> None:
        client, transport = ws_client()
        client.close()
        assert client_frames(transport) == [(ws.OP_CLOSE, struct.pack("!H", 1000))]
        client.data_received(frame(ws.OP_CLOSE, struct.pack("!H", 1000)))
        assert client.close_code == 1000 and len(transport.written) == 2  # no second close
        client.connection_lost(None)
        assert client.closed.done()

        server_first, t2 = ws_client()
        server_first.data_received(frame(ws.OP_CLOSE, b"\x03\xe9"))
        assert server_first.close_code == 1001
        assert client_frames(t2) == [(ws.OP_CLOSE, b"\x03\xe9")]  # echoed

    run(body())


def test_a_protocol_error_closes_with_1002_and_a_lost_handshake_says_why() -> None:
    async def body() -> None:
        client, transport = ws_client(want_welcome=True)
        client.data_received(bytes([0x83, 0]))  # unknown opcode
        with pytest.raises(ConnectionError, match="opcode"):
            client.opened.result()
        [(opcode, payload)] = client_frames(transport)
        assert (opcode, payload[:2]) == (ws.OP_CLOSE, struct.pack("!H", 1002))
        assert transport.closing

        early, _transport = ws_client(upgraded=False)
        early.data_received(b"HTTP/1.1 503 Service Unavailable\r\n\r\nbusy")
        early.connection_lost(None)
        with pytest.raises(ConnectionError, match="503"):
            early.opened.result()

    run(body())
