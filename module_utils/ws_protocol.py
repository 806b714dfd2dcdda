# Copyright: (c) 2026, wsnotify maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The client side of RFC 6455 without I/O: the one WebSocket state machine of this project.

``ClientProtocol`` is fed the bytes a socket produced (``receive_data``, ``receive_eof``) and
answers with events (``events_received``) and the bytes to write (``data_to_send``), in the shape
of python-websockets' ``protocol.py``. It parses and validates the 101 (Sec-WebSocket-Accept,
Upgrade, Connection, no unoffered subprotocol or extension), decodes frames, reassembles
fragmented messages around interleaved control frames, answers pings, runs the closing
handshake, and fails the connection with the right close code on a protocol error.

Who drives it: ``websocket.py`` (a blocking socket, for the Ansible modules on the targets) and
``bench/loadgen.py`` (asyncio callbacks, 10,000 connections on one core). Because the load
generator calls ``receive_data`` once per delivered frame, the frame loop is written inline,
events are plain tuples, and the class has ``__slots__``.

Standard library only, no Ansible imports: plain Python (tests, the bench) imports it as well.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import struct
from typing import NamedTuple
from urllib.parse import quote, urlsplit

WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
MAX_HEADER_BYTES = 16384
MAX_MESSAGE_BYTES = 1 << 20
BODY_EVIDENCE_BYTES = 2048

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
_KNOWN_OPCODES = frozenset((OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG))

# Connection states (RFC 6455 4.1, 7.1.3, 7.1.4); plain ints: compared on every frame.
CONNECTING, OPEN, CLOSING, CLOSED = 0, 1, 2, 3

# Close codes a peer may never put on the wire (RFC 6455 7.4.1 / 7.4.2).
_RESERVED_CLOSE_CODES = (1004, 1005, 1006, 1015)
# Close codes we send when we fail the connection (RFC 6455 7.4.1).
CLOSE_INVALID_DATA, CLOSE_TOO_BIG = 1007, 1009
_NOT_UTF8 = "text message is not valid UTF-8"


# --------------------------------------------------------------------------- errors


class WebSocketError(Exception):
    """Base error; ``kind`` is a stable machine-readable cause used to pick an operator hint."""

    kind = "error"
    # TLS details of the connection when it got that far (set by the socket driver).
    tls: dict | None = None


class ConnectFailed(WebSocketError):
    """TCP connection could not be made. kind: refused, timeout, dns, unreachable, reset."""

    def __init__(self, kind: str, host: str, port: int, detail: str) -> None:
        super().__init__(f"cannot connect to {host}:{port}: {detail}")
        self.kind = kind
        self.host = host
        self.port = port
        self.detail = detail


class TLSFailed(WebSocketError):
    """TLS handshake failed. ``verify_code`` is OpenSSL's for a failed certificate check (then
    ``detail`` is its message); ``certificate`` summarizes what the server presented, when it
    could be fetched."""

    kind = "tls"

    def __init__(
        self,
        host: str,
        port: int,
        detail: str,
        verify_code: int | None = None,
        certificate: dict | None = None,
    ) -> None:
        super().__init__(f"TLS handshake with {host}:{port} failed: {detail}")
        self.host = host
        self.port = port
        self.detail = detail
        self.verify_code = verify_code
        self.certificate = certificate
        self.tls = {"certificate_error": detail, **(certificate or {})}


class HandshakeRejected(WebSocketError):
    """The server answered the upgrade with an HTTP status other than 101."""

    kind = "status"

    def __init__(self, response: HttpResponse) -> None:
        super().__init__(f"upgrade refused with HTTP {response.status} {response.reason}".strip())
        self.response = response


class HandshakeInvalid(WebSocketError):
    """The server answered 101 but the response breaks RFC 6455 (e.g. a wrong accept value)."""

    kind = "invalid_101"

    def __init__(self, response: HttpResponse, problems: list[str], accept_valid: bool) -> None:
        super().__init__("invalid 101 response: " + "; ".join(problems))
        self.response = response
        self.problems = problems
        self.accept_valid = accept_valid


class ConnectionClosed(WebSocketError):
    """The connection ended. ``code`` is None when no close frame arrived (abrupt EOF)."""

    kind = "closed"

    def __init__(self, code: int | None, reason: str) -> None:
        what = f"code {code} {reason!r}" if code is not None else "without a close frame"
        super().__init__(f"connection closed by the server {what}")
        self.code = code
        self.reason = reason


class ProtocolError(WebSocketError):
    """The peer sent bytes that are not valid HTTP/WebSocket; ``close_code`` is what we answer."""

    kind = "protocol"

    def __init__(self, message: str, close_code: int = 1002) -> None:
        super().__init__(message)
        self.close_code = close_code


class Timeout(WebSocketError):
    """An operation did not finish before its deadline."""

    kind = "timeout"


# --------------------------------------------------------------------------- URLs and requests


class WsUrl(NamedTuple):
    """A parsed ws:// or wss:// URL; ``resource`` is the path + query of the request line."""

    scheme: str
    host: str
    port: int
    resource: str

    @property
    def secure(self) -> bool:
        return self.scheme == "wss"

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.secure else 80
        return host if self.port == default else f"{host}:{self.port}"


def parse_ws_url(url: str) -> WsUrl:
    """Split a ws/wss URL; raises ValueError with an actionable message when it is not one."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("ws", "wss"):
        raise ValueError(f"url must start with ws:// or wss://, got {parts.scheme or 'no'} scheme")
    if not parts.hostname:
        raise ValueError("url has no host name")
    if parts.username or parts.password:
        raise ValueError("url must not carry credentials; use the token option")
    try:
        port = parts.port or (443 if scheme == "wss" else 80)
    except ValueError as exc:
        raise ValueError(f"url has an invalid port: {exc}") from None
    resource = parts.path or "/"
    if parts.query:
        resource += "?" + parts.query
    return WsUrl(scheme, parts.hostname, port, resource)


def _add_query_param(resource: str, name: str, value: str) -> str:
    """Append ``name=value`` (percent-encoded) to a request target that may already have a query."""
    sep = "&" if "?" in resource else "?"
    return f"{resource}{sep}{quote(name, safe='')}={quote(value, safe='')}"


def token_placement(
    url: WsUrl, token: str | None, location: str = "header", after_id: int | None = None
) -> tuple[dict[str, str], str | None, str | None]:
    """Where a bearer token goes: (extra headers, request target override, first text message).

    wsnotify accepts ``Authorization: Bearer``, a ``token`` query parameter, or a first message
    ``{"type":"auth","token":...}``. The token never becomes part of a URL that callers return.
    ``after_id`` (resume: the server replays what came after it) goes beside the token: in the
    auth message, else in the query.
    """
    if location not in ("header", "query", "message"):
        raise ValueError(f"unknown token location {location!r}: use header, query or message")
    resource = None
    if after_id is not None and not (token and location == "message"):
        resource = _add_query_param(url.resource, "after_id", str(after_id))
    if not token:
        return {}, resource, None
    if location == "header":
        return {"Authorization": f"Bearer {token}"}, resource, None
    if location == "query":
        return {}, _add_query_param(resource or url.resource, "token", token), None
    auth: dict[str, object] = {"type": "auth", "token": token}
    if after_id is not None:
        auth["after_id"] = after_id
    return {}, None, json.dumps(auth)


def merge_headers(user: dict[str, str] | None, token: dict[str, str]) -> dict[str, str]:
    """User headers plus the token's; a clash (e.g. two Authorization) is a caller mistake."""
    merged = dict(user or {})
    names = {k.lower() for k in merged}
    for name, value in token.items():
        if name.lower() in names:
            raise ValueError(f"header {name!r} is set by the token option; do not also pass it")
        merged[name] = value
    return merged


def generate_key() -> str:
    """A fresh Sec-WebSocket-Key: 16 random bytes, base64 (RFC 6455 4.1)."""
    return base64.b64encode(os.urandom(16)).decode("ascii")


def compute_accept(key: str) -> str:
    """The Sec-WebSocket-Accept a correct server derives from our key (RFC 6455 4.2.2)."""
    digest = hashlib.sha1((key + WS_GUID).encode("ascii")).digest()  # noqa: S324 - RFC 6455
    return base64.b64encode(digest).decode("ascii")


_HANDSHAKE_HEADERS = frozenset(
    (
        "host",
        "upgrade",
        "connection",
        "sec-websocket-key",
        "sec-websocket-version",
        "sec-websocket-protocol",
    )
)


def build_upgrade_request(
    url: WsUrl,
    key: str,
    origin: str | None = None,
    headers: dict[str, str] | None = None,
    subprotocols: list[str] | None = None,
    resource: str | None = None,
) -> bytes:
    """The exact bytes of the HTTP/1.1 upgrade request.

    Extra ``headers`` may not override the handshake's own fields: a wrong Upgrade or key would
    make the check meaningless, so that is refused with ValueError. No extension is offered
    (permessage-deflate costs 4-8x the memory per connection and is not needed).
    """
    lines = [
        f"GET {resource or url.resource} HTTP/1.1",
        f"Host: {url.host_header}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        "Sec-WebSocket-Version: 13",
    ]
    if origin:
        lines.append(f"Origin: {origin}")
    if subprotocols:
        lines.append("Sec-WebSocket-Protocol: " + ", ".join(subprotocols))
    for name, value in (headers or {}).items():
        if name.lower() in _HANDSHAKE_HEADERS:
            raise ValueError(f"header {name!r} is part of the handshake and cannot be overridden")
        if name.lower() == "origin" and origin:
            raise ValueError("give the Origin either as origin or in headers, not both")
        text = f"{name}: {value}"
        if "\r" in text or "\n" in text:
            raise ValueError(f"header {name!r} contains a line break")
        lines.append(text)
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


# --------------------------------------------------------------------------- responses


class HttpResponse:
    """Status line and headers of the server's answer to the upgrade (plus body evidence)."""

    def __init__(self, status: int, reason: str, headers: list[tuple[str, str]]) -> None:
        self.status = status
        self.reason = reason
        # Lower-cased names, repeated ones joined: stable keys for playbook asserts, and one
        # dict lookup per check of the 101 (the load generator validates thousands a second).
        self.headers: dict[str, str] = {}
        for name, value in headers:
            name = name.lower()
            previous = self.headers.get(name)
            self.headers[name] = value if previous is None else f"{previous}, {value}"
        self.body = b""

    def get(self, name: str, default: str | None = None) -> str | None:
        """A header's value (case-insensitive); repeated headers are joined with ', '."""
        return self.headers.get(name.lower(), default)

    def body_text(self) -> str:
        return self.body.decode("utf-8", "replace")


def parse_http_response(head: bytes) -> HttpResponse:
    """Parse a status line and headers (bytes up to, excluding, the blank line)."""
    lines = head.decode("latin-1").split("\r\n")  # latin-1 decodes every byte
    status_line = lines[0]
    parts = status_line.split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        raise ProtocolError(f"not an HTTP response: {status_line[:80]!r}")
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        if not line:
            continue
        if line[0] in " \t" and headers:  # obsolete folding: continuation of the previous value
            name, value = headers[-1]
            headers[-1] = (name, value + " " + line.strip())
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise ProtocolError(f"malformed header line: {line[:80]!r}")
        headers.append((name.strip(), value.strip()))
    return HttpResponse(int(parts[1]), parts[2] if len(parts) > 2 else "", headers)


def _tokens(value: str | None) -> list[str]:
    return [t.strip().lower() for t in (value or "").split(",") if t.strip()]


def validate_upgrade_response(
    response: HttpResponse, key: str, subprotocols: list[str] | None = None
) -> tuple[bool, list[str]]:
    """Check a 101 against RFC 6455 4.1; returns (accept_valid, problems)."""
    problems: list[str] = []
    if "websocket" not in _tokens(response.get("upgrade")):
        problems.append(f"Upgrade header is {response.get('upgrade')!r}, expected 'websocket'")
    if "upgrade" not in _tokens(response.get("connection")):
        problems.append(f"Connection header is {response.get('connection')!r}, expected 'Upgrade'")
    expected = compute_accept(key)
    received = response.get("sec-websocket-accept")
    accept_valid = received == expected
    if not accept_valid:
        problems.append(
            f"Sec-WebSocket-Accept is {received!r}, expected {expected!r} for the key we sent"
        )
    chosen = response.get("sec-websocket-protocol")
    if chosen and chosen not in (subprotocols or []):
        problems.append(f"server chose subprotocol {chosen!r}, which was not offered")
    if response.get("sec-websocket-extensions"):
        problems.append(
            f"server enabled extensions {response.get('sec-websocket-extensions')!r} "
            "that were not offered"
        )
    return accept_valid, problems


def _body_evidence_wanted(response: HttpResponse) -> int:
    """How many body bytes of a refusal to wait for: its Content-Length, capped."""
    length = response.get("content-length")
    if length and length.isdigit():
        return min(int(length), BODY_EVIDENCE_BYTES)
    return BODY_EVIDENCE_BYTES


# --------------------------------------------------------------------------- frames


def _apply_mask(payload: bytes, mask_key: bytes) -> bytes:
    """XOR with the 4-byte key (masking and unmasking are the same operation)."""
    if not payload:
        return b""
    n = len(payload)
    key = (mask_key * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(key, "big")).to_bytes(n, "big")


def encode_frame(
    opcode: int,
    payload: bytes,
    fin: bool = True,
    mask: bool = True,
    mask_key: bytes | None = None,
) -> bytes:
    """Serialize one frame; clients must mask (RFC 6455 5.3), so ``mask`` defaults to True."""
    if opcode & 0x8 and (len(payload) > 125 or not fin):
        raise ValueError("control frames carry at most 125 bytes and cannot be fragmented")
    mask_bit = 0x80 if mask else 0
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", (0x80 if fin else 0) | opcode, mask_bit | n)
    elif n < 1 << 16:
        head = struct.pack("!BBH", (0x80 if fin else 0) | opcode, mask_bit | 126, n)
    else:
        head = struct.pack("!BBQ", (0x80 if fin else 0) | opcode, mask_bit | 127, n)
    if not mask:
        return head + payload
    mask_key = mask_key if mask_key is not None else os.urandom(4)
    return head + mask_key + _apply_mask(payload, mask_key)


def encode_close_payload(code: int | None = 1000, reason: str = "") -> bytes:
    """Close frame body: 2-byte code + UTF-8 reason (empty body when code is None)."""
    if code is None:
        return b""
    data = struct.pack("!H", code) + reason.encode("utf-8")
    if len(data) > 125:
        raise ValueError("close reason too long (the close payload is limited to 125 bytes)")
    return data


def parse_close_payload(payload: bytes) -> tuple[int | None, str]:
    """(code, reason) of a close frame; (None, '') when it has no body (RFC 6455 5.5.1)."""
    if not payload:
        return None, ""
    if len(payload) == 1:
        raise ProtocolError("close frame with a 1-byte payload")
    (code,) = struct.unpack("!H", payload[:2])
    if code < 1000 or code in _RESERVED_CLOSE_CODES or 1016 <= code < 3000 or code > 4999:
        raise ProtocolError(f"invalid close code {code}")
    try:
        reason = payload[2:].decode("utf-8")
    except UnicodeDecodeError:
        raise ProtocolError("close reason is not valid UTF-8") from None
    return code, reason


# --------------------------------------------------------------------------- the state machine


class ClientProtocol:
    """Sans-I/O client connection: bytes in, events and bytes to send out.

    Use: ``send_request(url, ...)`` then write ``data_to_send()``; feed whatever the socket
    reads to ``receive_data`` (EOF to ``receive_eof``), write ``data_to_send()`` after each
    call, and take ``events_received()``. Events are tuples, no object per frame:

    - ``(OP_TEXT, bytes)``: a complete text message (valid UTF-8), ``(OP_BINARY, bytes)``;
    - ``(OP_CLOSE, code, reason)``: the server's close frame (``code`` None when it had no body).

    The handshake's outcome: ``state`` becomes OPEN and ``response`` holds the validated 101.
    A refusal (non-101) is raised as HandshakeRejected once up to 2 KiB of its body arrived
    (or at EOF), a broken 101 as HandshakeInvalid. Pings are answered, a server's close is
    echoed, and a protocol error queues the matching close frame, sets CLOSED and raises
    ProtocolError.
    """

    __slots__ = (
        "_body_want",
        "_buf",
        "_events",
        "_frag_opcode",
        "_frag_size",
        "_frags",
        "_writes",
        "close_code",
        "close_reason",
        "closed_by",
        "key",
        "max_size",
        "response",
        "state",
        "subprotocols",
    )

    def __init__(
        self,
        subprotocols: list[str] | None = None,
        max_size: int = MAX_MESSAGE_BYTES,
        key: str | None = None,
        state: int = CONNECTING,
    ) -> None:
        self.key = key or generate_key()
        self.subprotocols = subprotocols
        self.max_size = max_size
        # OPEN: frames from the first byte, for a stream whose handshake happened elsewhere
        # (the benchmark's raw TCP floor sends WebSocket frames to plain sockets).
        self.state = state
        self.response: HttpResponse | None = None
        # Set once a close frame was received (or echoed after ours); None while open.
        self.close_code: int | None = None
        self.close_reason = ""
        # 'server' when the server's close came first, 'client' when we sent ours first.
        self.closed_by: str | None = None
        self._buf = bytearray()
        self._events: list[tuple] = []
        self._writes: list[bytes] = []
        self._frags: list[bytes] = []
        self._frag_opcode: int | None = None
        self._frag_size = 0
        self._body_want = 0

    # -- output
    def events_received(self) -> list[tuple] | tuple:
        """Events parsed since the last call: the list itself is handed over (no copy), or an
        empty tuple when there are none (no allocation on the hot path)."""
        events = self._events
        if not events:
            return ()
        self._events = []
        return events

    def data_to_send(self) -> bytes:
        """Bytes to write to the socket since the last call (b'' when none)."""
        if not self._writes:
            return b""
        data = b"".join(self._writes)
        self._writes = []
        return data

    # -- actions
    def send_request(
        self,
        url: WsUrl,
        origin: str | None = None,
        headers: dict[str, str] | None = None,
        resource: str | None = None,
    ) -> None:
        """Queue the upgrade request (ValueError for headers that would break the handshake)."""
        self._writes.append(
            build_upgrade_request(url, self.key, origin, headers, self.subprotocols, resource)
        )

    def send_text(self, text: str) -> None:
        if self.state != OPEN:
            raise ConnectionClosed(self.close_code, self.close_reason)
        self._writes.append(encode_frame(OP_TEXT, text.encode("utf-8")))

    def send_close(self, code: int = 1000, reason: str = "") -> None:
        """Start the closing handshake; the server's answering close ends it (state CLOSED)."""
        if self.state != OPEN:
            return
        self._writes.append(encode_frame(OP_CLOSE, encode_close_payload(code, reason)))
        self.state = CLOSING
        self.closed_by = "client"

    def fail(self, code: int, reason: str) -> None:
        """Fail the connection (RFC 6455 7.1.7): send a close with ``code`` if still open."""
        if self.state == OPEN:
            self._writes.append(encode_frame(OP_CLOSE, encode_close_payload(code, reason[:100])))
        self.state = CLOSED

    # -- input
    def receive_eof(self) -> None:
        """The server closed TCP. Before the handshake completed, that is its failure."""
        state, self.state = self.state, CLOSED
        if state != CONNECTING:
            return
        if self.response is not None:  # a refusal whose body ended with the connection
            self.response.body = bytes(self._buf[:BODY_EVIDENCE_BYTES])
            raise HandshakeRejected(self.response)
        if self._buf:
            raise ProtocolError("connection closed in the middle of the HTTP response")
        raise ConnectionClosed(None, "the server closed the connection without answering")

    def finish_refusal(self) -> None:
        """No more body is coming in time: raise the refusal with the body received so far."""
        if self.state == CONNECTING and self.response is not None:
            self.receive_eof()

    def receive_data(self, data: bytes) -> None:
        """Parse ``data``; raises the WebSocketError that ends the connection, if any."""
        if self.state == CONNECTING:
            self._buf += data
            if not self._handshake():
                return
            data = b""  # what followed the 101 is in _buf now
        elif self.state == CLOSED:
            return
        if self._buf:
            self._buf += data
            buf = self._buf
        else:
            buf = data  # common case: nothing pending, parse the bytes as they came
        try:
            pos = self._frames(buf)
        except ProtocolError as exc:
            self._buf = bytearray()
            self.fail(exc.close_code, str(exc))
            raise
        if buf is self._buf:
            del buf[:pos]
        elif pos < len(buf):
            self._buf = bytearray(buf[pos:])

    def _handshake(self) -> bool:
        """True once the 101 is validated (state OPEN); raises the handshake's failure."""
        buf = self._buf
        if self.response is not None:  # collecting a refusal's body
            if len(buf) >= self._body_want:
                self.receive_eof()
            return False
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            if len(buf) > MAX_HEADER_BYTES:
                self.state = CLOSED
                raise ProtocolError(f"response head larger than {MAX_HEADER_BYTES} bytes")
            return False
        try:
            response = parse_http_response(bytes(buf[:end]))
        except ProtocolError:
            self.state = CLOSED
            raise
        del buf[: end + 4]
        self.response = response
        if response.status != 101:
            self._body_want = _body_evidence_wanted(response)
            if len(buf) >= self._body_want:
                self.receive_eof()
            return False
        accept_valid, problems = validate_upgrade_response(response, self.key, self.subprotocols)
        if problems:
            self.state = CLOSED
            raise HandshakeInvalid(response, problems, accept_valid)
        self.state = OPEN
        return True

    def _frames(self, buf) -> int:
        """Handle every complete frame in ``buf``; returns how many bytes were consumed."""
        n = len(buf)
        pos = 0
        max_size = self.max_size
        while n - pos >= 2:
            b0 = buf[pos]
            length = buf[pos + 1]
            if length & 0x80:
                raise ProtocolError("the server sent a masked frame (RFC 6455 5.1 forbids it)")
            start = pos + 2
            if length == 126:
                if n < pos + 4:
                    break
                length = (buf[pos + 2] << 8) | buf[pos + 3]
                start = pos + 4
            elif length == 127:
                if n < pos + 10:
                    break
                length = int.from_bytes(buf[pos + 2 : pos + 10], "big")
                if length >> 63:
                    raise ProtocolError("64-bit payload length with its most significant bit set")
                start = pos + 10
            if b0 & 0x70:
                raise ProtocolError(
                    "reserved bits set: an extension was used without being negotiated"
                )
            opcode = b0 & 0x0F
            if opcode not in _KNOWN_OPCODES:
                raise ProtocolError(f"unknown opcode {opcode:#x}")
            if opcode & 0x8:
                if length > 125 or not b0 & 0x80:
                    raise ProtocolError("control frame longer than 125 bytes or fragmented")
            elif length > max_size:
                raise ProtocolError(
                    f"frame of {length} bytes exceeds the {max_size}-byte limit", CLOSE_TOO_BIG
                )
            end = start + length
            if end > n:
                break
            payload = bytes(buf[start:end])
            pos = end
            if opcode == OP_TEXT and b0 & 0x80 and self._frag_opcode is None:
                # The common case first: one unfragmented text frame.
                try:
                    payload.decode("utf-8")
                except UnicodeDecodeError:
                    raise ProtocolError(_NOT_UTF8, CLOSE_INVALID_DATA) from None
                self._events.append((OP_TEXT, payload))
            elif opcode & 0x8:
                self._control(opcode, payload)
                if self.state == CLOSED:
                    return n  # nothing may follow a close (RFC 6455 5.5.1)
            else:
                self._fragment(opcode, b0 & 0x80, payload)
        return pos

    def _control(self, opcode: int, payload: bytes) -> None:
        if opcode == OP_PING:
            if self.state == OPEN:
                self._writes.append(encode_frame(OP_PONG, payload))
        elif opcode == OP_CLOSE:
            code, reason = parse_close_payload(payload)
            self.close_code, self.close_reason = code, reason
            if self.state == OPEN:  # the server closes first: echo its code (RFC 6455 5.5.1)
                self.closed_by = "server"
                self._writes.append(encode_frame(OP_CLOSE, payload[:2]))
            self.state = CLOSED
            self._events.append((OP_CLOSE, code, reason))
        # a pong needs nothing: we send no pings of our own

    def _fragment(self, opcode: int, fin: int, payload: bytes) -> None:
        if opcode == OP_CONT:
            if self._frag_opcode is None:
                raise ProtocolError("continuation frame without a message to continue")
        elif self._frag_opcode is not None:
            raise ProtocolError("new data frame while a fragmented message is incomplete")
        else:
            self._frag_opcode = opcode
        self._frag_size += len(payload)
        if self._frag_size > self.max_size:
            raise ProtocolError(f"message exceeds {self.max_size} bytes", CLOSE_TOO_BIG)
        self._frags.append(payload)
        if not fin:
            return
        data = b"".join(self._frags)
        kind = self._frag_opcode
        self._frags, self._frag_opcode, self._frag_size = [], None, 0
        if kind == OP_TEXT:
            try:
                data.decode("utf-8")
            except UnicodeDecodeError:
                raise ProtocolError(_NOT_UTF8, CLOSE_INVALID_DATA) from None
        self._events.append((kind, data))
