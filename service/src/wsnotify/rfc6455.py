"""The server side of RFC 6455, sans I/O: bytes in, events and bytes out.

Nothing here touches a socket, a loop or a clock, so every rule of the protocol is tested
directly (``tests/test_rfc6455.py``) and again over real sockets (``tests/test_conformance.py``).
The shape follows python-websockets' ``protocol.py``; what differs is what this service needs:

- one object per connection, with ``__slots__``: :class:`ServerProtocol` is the *base class* of
  the asyncio protocol in ``ws.py``, so a connection is one small object, not two;
- no per-connection read buffer while idle (``_buf`` is None between frames), no output queue
  (``receive_data`` returns the bytes to write), no events list unless something happened;
- no extensions (permessage-deflate multiplies memory per connection), no subprotocols.

Handshake (section 4.2): :func:`parse_request` reads a request head, :func:`check_upgrade`
applies the opening-handshake rules and returns the key, :func:`accept_response` builds the 101.
Frames (sections 5-7): :meth:`ServerProtocol.receive_data`.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import hashlib
import json
import re
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
MAX_HEAD = 16 * 1024  # request line + headers; a ?token= and an Authorization header fit twice

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
_DATA_OPCODES = (OP_CONT, OP_TEXT, OP_BINARY)
_CONTROL_OPCODES = (OP_CLOSE, OP_PING, OP_PONG)

# Close codes (section 7.4 and the IANA registry).
NORMAL = 1000
GOING_AWAY = 1001
SERVICE_RESTART = 1012
PROTOCOL_ERROR = 1002
NO_STATUS = 1005  # never on the wire: "the close frame had no code"
INVALID_DATA = 1007  # e.g. text that is not UTF-8
TOO_BIG = 1009
INTERNAL_ERROR = 1011
TRY_AGAIN_LATER = 1013


def close_code_allowed(code: int) -> bool:
    """Codes a peer may send (section 7.4): 1000-1003, 1007-1014 and 3000-4999.

    0-999 are unused, 1004 reserved, 1005/1006/1015 are never sent, 1016-2999 are reserved for
    the protocol's future use; 5000 and up are undefined.
    """
    return 1000 <= code <= 1003 or 1007 <= code <= 1014 or 3000 <= code <= 4999


# --- the opening handshake ----------------------------------------------------------------


class HandshakeError(Exception):
    """The request is not an acceptable upgrade: answer ``status`` and close the connection."""

    def __init__(self, status: int, message: str, headers: tuple[tuple[str, str], ...] = ()):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers


@dataclass(slots=True)
class Request:
    """A parsed request head. Header names are lower-case; repeated fields are joined with
    ", " (RFC 9110 section 5.3). Kept only for the duration of the handshake."""

    method: str
    target: str
    version: str
    headers: Mapping[str, str]

    @property
    def path(self) -> str:
        return self.target.partition("?")[0]

    @property
    def query(self) -> str:
        return self.target.partition("?")[2]


_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # RFC 9110 field-name / method syntax
_HTTP11 = re.compile(r"HTTP/1\.[1-9]")


def request_line(buf: bytes) -> tuple[str, str] | None:
    """(method, target) once the first line is complete, else None; ("", "") if not HTTP-like.

    Enough to route a connection before the rest of the head has arrived.
    """
    end = buf.find(b"\r\n")
    if end < 0:
        return ("", "") if len(buf) > MAX_HEAD else None
    parts = buf[:end].split(b" ")
    if len(parts) != 3:
        return ("", "")
    return parts[0].decode("latin-1"), parts[1].decode("latin-1")


def parse_request(head: bytes) -> Request:
    """Parse a request head (everything before the blank line) or raise HandshakeError 400."""
    text = head.decode("latin-1")
    crlf = text.count("\r\n")
    if text.count("\n") != crlf or text.count("\r") != crlf:
        raise HandshakeError(400, "bare CR or LF in the request head")
    first, _, fields = text.partition("\r\n")
    parts = first.split(" ")
    if len(parts) != 3 or not _TOKEN.fullmatch(parts[0]) or not parts[1]:
        raise HandshakeError(400, "malformed request line")
    headers = header_map(fields.split("\r\n")) if fields else {}
    return Request(parts[0], parts[1], parts[2], headers)


def header_map(lines: Iterable[str]) -> dict[str, str]:
    """``Name: value`` lines by lower-case name, values trimmed, repeats joined with ", "
    (RFC 9110 section 5.3). No whitespace in or before a name: obs-fold and "Name : value"
    are refused (RFC 9112 section 5), so two parsers can never disagree about a header."""
    headers: dict[str, str] = {}
    for line in lines:
        name, colon, value = line.partition(":")
        if not colon or not name or " " in name or "\t" in name:
            raise HandshakeError(400, "malformed header line")
        name = name.lower()
        value = value.strip(" \t")
        if name in headers:
            headers[name] += ", " + value
        else:
            headers[name] = value
    return headers


def _has_token(value: str | None, token: str) -> bool:
    """Whether the comma-separated ``value`` lists ``token`` (ASCII case-insensitive)."""
    if not value:
        return False
    value = value.lower()
    return value == token or token in (t.strip() for t in value.split(","))


def check_upgrade(request: Request) -> str:
    """Apply section 4.2.1 (and 4.4 for the version); return the Sec-WebSocket-Key as sent."""
    if request.method != "GET":
        raise HandshakeError(405, "a WebSocket upgrade must be a GET", (("Allow", "GET"),))
    if not _HTTP11.fullmatch(request.version):
        raise HandshakeError(400, "a WebSocket upgrade needs HTTP/1.1")
    headers = request.headers
    if not headers.get("host"):
        raise HandshakeError(400, "the Host header is required")
    if not _has_token(headers.get("upgrade"), "websocket"):
        raise HandshakeError(400, "the Upgrade header must contain websocket")
    if not _has_token(headers.get("connection"), "upgrade"):
        raise HandshakeError(400, "the Connection header must contain upgrade")
    if headers.get("sec-websocket-version") != "13":
        raise HandshakeError(
            426,
            "only WebSocket version 13 is supported",
            (("Sec-WebSocket-Version", "13"), ("Upgrade", "websocket")),
        )
    key = headers.get("sec-websocket-key", "")
    try:
        raw = binascii.a2b_base64(key.encode("ascii"), strict_mode=True)
    except (UnicodeEncodeError, binascii.Error):
        raw = b""
    if len(raw) != 16:
        raise HandshakeError(400, "Sec-WebSocket-Key must be 16 bytes in base64")
    return key


def accept_value(key: str) -> str:
    """Sec-WebSocket-Accept for ``key``, computed from the key text exactly as sent."""
    return base64.b64encode(hashlib.sha1(key.encode("ascii") + GUID).digest()).decode()  # noqa: S324


def accept_response(key: str) -> bytes:
    """The 101. No extension and no subprotocol is ever selected."""
    return (
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: " + accept_value(key).encode() + b"\r\n\r\n"
    )


_REASONS = {
    400: "Bad Request",
    403: "Forbidden",
    405: "Method Not Allowed",
    426: "Upgrade Required",
    431: "Request Header Fields Too Large",
    503: "Service Unavailable",
}


def error_response(status: int, message: str, headers: tuple[tuple[str, str], ...] = ()) -> bytes:
    """An HTTP error with a JSON body ``{"error": message}``; the connection closes after it."""
    body = json.dumps({"error": message}, separators=(",", ":")).encode()
    lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}"]
    lines += [f"{name}: {value}" for name, value in headers]
    lines += [
        "Content-Type: application/json; charset=utf-8",
        f"Content-Length: {len(body)}",
        "Connection: close",
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


# --- frames, server to client (unmasked, FIN set) -----------------------------------------

_PACK_LEN1 = struct.Struct("!BB").pack
_PACK_LEN2 = struct.Struct("!BBH").pack
_PACK_LEN3 = struct.Struct("!BBQ").pack


def encode_frame(opcode: int, payload: bytes) -> bytes:
    """One unmasked, final frame. Built once per fan-out and written as-is to every transport:
    frames are stateless because compression is never negotiated."""
    length = len(payload)
    first = 0x80 | opcode
    if length < 126:
        header = _PACK_LEN1(first, length)
    elif length < 65536:
        header = _PACK_LEN2(first, 126, length)
    else:
        header = _PACK_LEN3(first, 127, length)
    return header + payload


def encode_text_frame(payload: bytes) -> bytes:
    """A text frame of UTF-8 ``payload``."""
    return encode_frame(OP_TEXT, payload)


def close_frame(code: int, reason: bytes = b"") -> bytes:
    """A close frame with ``code`` (and a reason of at most 123 bytes)."""
    return encode_frame(OP_CLOSE, code.to_bytes(2, "big") + reason[:123])


PING_FRAME = encode_frame(OP_PING, b"")


# --- frames, client to server: the state machine ------------------------------------------


@dataclass(slots=True)
class TextMessage:
    text: str


@dataclass(slots=True)
class BinaryMessage:
    data: bytes


@dataclass(slots=True)
class PingReceived:
    """Write ``reply`` (the pong with the same payload, section 5.5.2)."""

    reply: bytes


@dataclass(slots=True)
class CloseReceived:
    """The peer's close frame (``code`` 1005 when it had none). Write ``reply`` (the echo, or
    nothing if we had sent our close first), then the server closes TCP (section 7.1.1)."""

    code: int
    reason: str
    reply: bytes


@dataclass(slots=True)
class ProtocolFailure:
    """The peer broke the protocol: write ``reply`` (our close frame with ``code``), then close
    TCP (section 7.1.7)."""

    code: int
    reason: str
    reply: bytes


Event = TextMessage | BinaryMessage | PingReceived | CloseReceived | ProtocolFailure

# States
HANDSHAKE = 0  # reading the request head (the transport layer does that part)
AUTH = 1  # 101 sent, waiting for the first-message token
OPEN = 2  # authenticated
CLOSING = 3  # we sent a close frame and wait for the peer's
CLOSED = 4  # nothing more is read or written

MAX_MESSAGE = 64 * 1024  # client messages are acks and auth; anything larger is refused (1009)

_utf8_decoder = codecs.getincrementaldecoder("utf-8")


class _Fail(Exception):
    def __init__(self, code: int, reason: str) -> None:
        self.code = code
        self.reason = reason


def _decode(decoder: codecs.IncrementalDecoder, payload: bytes, final: bool) -> None:
    # Fail fast: an invalid sequence is refused in the fragment where it appears, while a
    # character split across two fragments is fine.
    try:
        decoder.decode(payload, final)
    except UnicodeDecodeError:
        raise _Fail(INVALID_DATA, "text message is not valid UTF-8") from None


def _unmask(mask: bytes, payload: bytes) -> bytes:
    # XOR as one big integer: linear time in C, no per-byte Python loop.
    length = len(payload)
    if not length:
        return payload
    key = int.from_bytes((mask * (length // 4 + 1))[:length], "big")
    return (int.from_bytes(payload, "big") ^ key).to_bytes(length, "big")


class ServerProtocol:
    """The per-connection frame state machine (sections 5 and 7), server side.

    ``receive_data(data)`` returns the events, in the order of the frames; those that need an
    answer carry the bytes to write. ``send_close(code, reason)`` starts a server-initiated
    close.
    """

    __slots__ = ("_buf", "_decoder", "_frag", "state")

    def __init__(self) -> None:
        self.state = HANDSHAKE
        self._buf: bytes | None = None  # an incomplete frame, None between frames
        self._frag: bytearray | None = None  # a fragmented message being assembled
        self._decoder: codecs.IncrementalDecoder | None = None  # text fragments: UTF-8 so far

    def send_close(self, code: int, reason: bytes = b"") -> bytes:
        """Start the closing handshake: the close frame to write (nothing if already closing)."""
        if self.state >= CLOSING:
            return b""
        self.state = CLOSING
        self._buf = self._frag = self._decoder = None
        return close_frame(code, reason)

    def receive_data(self, data: bytes) -> list[Event]:
        if self.state >= CLOSED:
            return []
        buf = self._buf + data if self._buf else data
        self._buf = None
        events: list[Event] = []
        pos = 0
        end = len(buf)
        try:
            while end - pos >= 2 and self.state < CLOSED:
                first, second = buf[pos], buf[pos + 1]
                opcode = first & 0x0F
                if first & 0x70:
                    raise _Fail(PROTOCOL_ERROR, "reserved bits set without an extension")
                if not second & 0x80:
                    raise _Fail(PROTOCOL_ERROR, "client frames must be masked")
                if opcode not in _DATA_OPCODES and opcode not in _CONTROL_OPCODES:
                    raise _Fail(PROTOCOL_ERROR, f"reserved opcode {opcode:#x}")
                fin = first & 0x80
                length = second & 0x7F
                head = 2
                if opcode >= OP_CLOSE:
                    if not fin:
                        raise _Fail(PROTOCOL_ERROR, "fragmented control frame")
                    if length > 125:
                        raise _Fail(PROTOCOL_ERROR, "control frame over 125 bytes")
                elif length == 126:
                    if end - pos < 4:
                        break
                    length = int.from_bytes(buf[pos + 2 : pos + 4], "big")
                    head = 4
                elif length == 127:
                    if end - pos < 10:
                        break
                    length = int.from_bytes(buf[pos + 2 : pos + 10], "big")
                    if length >> 63:
                        raise _Fail(PROTOCOL_ERROR, "64-bit length with the top bit set")
                    head = 10
                if opcode < OP_CLOSE:
                    so_far = len(self._frag) if self._frag is not None else 0
                    if so_far + length > MAX_MESSAGE:
                        raise _Fail(TOO_BIG, f"message over {MAX_MESSAGE} bytes")
                start = pos + head + 4
                if end - start < length:
                    break
                payload = _unmask(buf[pos + head : start], buf[start : start + length])
                pos = start + length
                if self.state == CLOSING and opcode != OP_CLOSE:
                    continue  # after our close frame only the peer's close matters
                self._frame(fin, opcode, payload, events)
        except _Fail as fail:
            self.state = CLOSED
            self._frag = self._decoder = None
            reply = close_frame(fail.code, fail.reason.encode()[:123])
            events.append(ProtocolFailure(fail.code, fail.reason, reply))
            return events
        if pos < end and self.state < CLOSED:
            self._buf = buf[pos:]
        return events

    def _frame(self, fin: int, opcode: int, payload: bytes, events: list[Event]) -> None:
        """Handle one complete, unmasked frame."""
        if opcode == OP_PING:
            events.append(PingReceived(encode_frame(OP_PONG, payload)))
            return
        if opcode == OP_PONG:
            return
        if opcode == OP_CLOSE:
            self._close_received(payload, events)
            return
        if opcode == OP_CONT:
            if self._frag is None:
                raise _Fail(PROTOCOL_ERROR, "continuation frame with nothing to continue")
            self._frag += payload
            if self._decoder is not None:
                _decode(self._decoder, payload, final=bool(fin))
            if fin:
                message, self._frag = bytes(self._frag), None
                if self._decoder is not None:
                    self._decoder = None
                    events.append(TextMessage(message.decode("utf-8")))
                else:
                    events.append(BinaryMessage(message))
            return
        if self._frag is not None:
            raise _Fail(PROTOCOL_ERROR, "new data frame inside a fragmented message")
        if fin:
            if opcode == OP_TEXT:
                try:
                    events.append(TextMessage(payload.decode("utf-8")))
                except UnicodeDecodeError:
                    raise _Fail(INVALID_DATA, "text message is not valid UTF-8") from None
            else:
                events.append(BinaryMessage(payload))
            return
        self._frag = bytearray(payload)
        if opcode == OP_TEXT:
            self._decoder = _utf8_decoder()
            _decode(self._decoder, payload, final=False)

    def _close_received(self, payload: bytes, events: list[Event]) -> None:
        if len(payload) == 1:
            raise _Fail(PROTOCOL_ERROR, "close frame with a 1-byte payload")
        code = int.from_bytes(payload[:2], "big") if payload else NO_STATUS
        if payload and not close_code_allowed(code):
            raise _Fail(PROTOCOL_ERROR, f"invalid close code {code}")
        try:
            reason = payload[2:].decode("utf-8")
        except UnicodeDecodeError:
            raise _Fail(INVALID_DATA, "close reason is not valid UTF-8") from None
        echo = b"" if self.state == CLOSING else encode_frame(OP_CLOSE, payload[:2])
        self.state = CLOSED
        self._frag = self._decoder = None
        events.append(CloseReceived(code, reason, echo))
