# Copyright: (c) 2026, wsnotify maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one client-side WebSocket (RFC 6455) implementation of this project.

It runs on target hosts inside Ansible modules, so it uses the Python standard library only,
and it imports nothing from Ansible, so plain Python (tests, the service's tests) can import it.

Layout, so the protocol can be tested without sockets:
- pure functions: URL parsing, upgrade request building, Sec-WebSocket-Accept computation,
  response parsing and validation, frame encoding/decoding, close payloads, X.509 (DER) summary;
- I/O: ``connect()`` opens TCP (+TLS), performs the handshake and returns a ``ClientConnection``
  that reads messages (answering pings), sends masked frames and closes cleanly.
Every blocking call runs under a deadline; failures raise ``WebSocketError`` subclasses whose
``kind`` and fields let callers explain the real cause (see ``ws_diagnosis.py``).
"""

from __future__ import annotations

# Targets may run Python older than the controller's 3.11 (ansible-core 2.19 supports 3.8+):
# keep datetime.timezone.utc and socket.timeout (not yet TimeoutError before 3.10).
# ruff: noqa: UP017, UP041
import base64
import contextlib
import datetime
import hashlib
import os
import socket
import ssl
import struct
import time
from urllib.parse import quote, urlsplit

WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
MAX_HEADER_BYTES = 16384
MAX_MESSAGE_BYTES = 1 << 20
BODY_EVIDENCE_BYTES = 2048

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
CONTROL_OPCODES = (OP_CLOSE, OP_PING, OP_PONG)
DATA_OPCODES = (OP_CONT, OP_TEXT, OP_BINARY)

# Close codes a peer may never put on the wire (RFC 6455 7.4.1 / 7.4.2).
_RESERVED_CLOSE_CODES = (1004, 1005, 1006, 1015)


# --------------------------------------------------------------------------- errors


class WebSocketError(Exception):
    """Base error; ``kind`` is a stable machine-readable cause used to pick an operator hint."""

    kind = "error"
    # TLS details of the connection when it got that far (set by connect()).
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
    """TLS handshake failed. ``verify_code``/``verify_message`` are set for certificate checks."""

    kind = "tls"

    def __init__(
        self,
        host: str,
        port: int,
        detail: str,
        verify_code: int | None = None,
        verify_message: str | None = None,
    ) -> None:
        super().__init__(f"TLS handshake with {host}:{port} failed: {detail}")
        self.host = host
        self.port = port
        self.detail = detail
        self.verify_code = verify_code
        self.verify_message = verify_message
        # Filled by the caller with ``fetch_certificate()`` so the hint can show what was presented.
        self.certificate: dict | None = None


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
    """The peer sent bytes that are not valid HTTP/WebSocket."""

    kind = "protocol"


class Timeout(WebSocketError):
    """An operation did not finish before its deadline."""

    kind = "timeout"


# --------------------------------------------------------------------------- URLs and handshake


class WsUrl:
    """A parsed ws:// or wss:// URL; ``resource`` is the path + query of the request line."""

    def __init__(self, scheme: str, host: str, port: int, resource: str) -> None:
        self.scheme = scheme
        self.host = host
        self.port = port
        self.resource = resource

    @property
    def secure(self) -> bool:
        return self.scheme == "wss"

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.secure else 80
        return host if self.port == default else f"{host}:{self.port}"

    def __repr__(self) -> str:
        return f"WsUrl({self.scheme}://{self.host_header}{self.resource})"


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


def add_query_param(resource: str, name: str, value: str) -> str:
    """Append ``name=value`` (percent-encoded) to a request target that may already have a query."""
    sep = "&" if "?" in resource else "?"
    return f"{resource}{sep}{quote(name, safe='')}={quote(value, safe='')}"


def token_placement(
    url: WsUrl, token: str | None, location: str = "header"
) -> tuple[dict[str, str], str | None, str | None]:
    """Where a bearer token goes: (extra headers, request target override, first text message).

    wsnotify accepts ``Authorization: Bearer``, a ``token`` query parameter, or a first message
    ``{"type":"auth","token":...}``. The token never becomes part of a URL that callers return.
    """
    if not token:
        return {}, None, None
    if location == "header":
        return {"Authorization": f"Bearer {token}"}, None, None
    if location == "query":
        return {}, add_query_param(url.resource, "token", token), None
    if location == "message":
        import json  # local: only this branch needs it

        return {}, None, json.dumps({"type": "auth", "token": token})
    raise ValueError(f"unknown token location {location!r}: use header, query or message")


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
    make the check meaningless, so that is refused with ValueError.
    """
    reserved = {
        "host",
        "upgrade",
        "connection",
        "sec-websocket-key",
        "sec-websocket-version",
        "sec-websocket-protocol",
    }
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
        if name.lower() in reserved:
            raise ValueError(f"header {name!r} is part of the handshake and cannot be overridden")
        if name.lower() == "origin" and origin:
            raise ValueError("give the Origin either as origin or in headers, not both")
        text = f"{name}: {value}"
        if "\r" in text or "\n" in text:
            raise ValueError(f"header {name!r} contains a line break")
        lines.append(text)
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


class HttpResponse:
    """Status line and headers of the server's answer to the upgrade (plus body evidence)."""

    def __init__(self, status: int, reason: str, headers: list[tuple[str, str]]) -> None:
        self.status = status
        self.reason = reason
        self.header_list = headers
        self.body = b""

    def get(self, name: str, default: str | None = None) -> str | None:
        """First value of a header (case-insensitive); repeated headers are joined with ', '."""
        values = [v for k, v in self.header_list if k.lower() == name.lower()]
        return ", ".join(values) if values else default

    @property
    def headers(self) -> dict[str, str]:
        """Lower-cased header names, repeated ones joined: stable keys for playbook asserts."""
        out: dict[str, str] = {}
        for k, v in self.header_list:
            k = k.lower()
            out[k] = f"{out[k]}, {v}" if k in out else v
        return out

    def body_text(self) -> str:
        return self.body.decode("utf-8", "replace")


def parse_http_response(head: bytes) -> HttpResponse:
    """Parse a status line and headers (bytes up to, excluding, the blank line)."""
    try:
        text = head.decode("latin-1")
    except UnicodeDecodeError as exc:  # pragma: no cover - latin-1 decodes every byte
        raise ProtocolError(str(exc)) from None
    lines = text.split("\r\n")
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


# --------------------------------------------------------------------------- frames


class Frame:
    """One decoded WebSocket frame."""

    def __init__(self, fin: bool, opcode: int, payload: bytes, masked: bool = False) -> None:
        self.fin = fin
        self.opcode = opcode
        self.payload = payload
        self.masked = masked

    def __repr__(self) -> str:
        return f"Frame(fin={self.fin}, opcode={self.opcode:#x}, len={len(self.payload)})"


def apply_mask(payload: bytes, mask_key: bytes) -> bytes:
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
    if opcode in CONTROL_OPCODES and (len(payload) > 125 or not fin):
        raise ValueError("control frames carry at most 125 bytes and cannot be fragmented")
    head = bytes([(0x80 if fin else 0) | opcode])
    mask_bit = 0x80 if mask else 0
    n = len(payload)
    if n < 126:
        head += bytes([mask_bit | n])
    elif n < 1 << 16:
        head += bytes([mask_bit | 126]) + struct.pack("!H", n)
    else:
        head += bytes([mask_bit | 127]) + struct.pack("!Q", n)
    if not mask:
        return head + payload
    mask_key = mask_key if mask_key is not None else os.urandom(4)
    return head + mask_key + apply_mask(payload, mask_key)


def decode_frame(buf: bytes, max_size: int = MAX_MESSAGE_BYTES) -> tuple[Frame | None, int]:
    """Decode the first frame in ``buf``: (frame, bytes consumed), or (None, 0) if incomplete."""
    if len(buf) < 2:
        return None, 0
    b0, b1 = buf[0], buf[1]
    if b0 & 0x70:
        raise ProtocolError("reserved bits set: an extension was used without being negotiated")
    opcode = b0 & 0x0F
    if opcode not in DATA_OPCODES + CONTROL_OPCODES:
        raise ProtocolError(f"unknown opcode {opcode:#x}")
    fin = bool(b0 & 0x80)
    masked = bool(b1 & 0x80)
    length = b1 & 0x7F
    pos = 2
    if length == 126:
        if len(buf) < 4:
            return None, 0
        (length,) = struct.unpack("!H", buf[2:4])
        pos = 4
    elif length == 127:
        if len(buf) < 10:
            return None, 0
        (length,) = struct.unpack("!Q", buf[2:10])
        pos = 10
    if opcode in CONTROL_OPCODES and (length > 125 or not fin):
        raise ProtocolError("control frame longer than 125 bytes or fragmented")
    if length > max_size:
        raise ProtocolError(f"frame of {length} bytes exceeds the {max_size}-byte limit")
    mask_key = b""
    if masked:
        if len(buf) < pos + 4:
            return None, 0
        mask_key = buf[pos : pos + 4]
        pos += 4
    if len(buf) < pos + length:
        return None, 0
    payload = bytes(buf[pos : pos + length])
    if masked:
        payload = apply_mask(payload, mask_key)
    return Frame(fin, opcode, payload, masked), pos + length


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


# --------------------------------------------------------------------------- X.509 summary


_OID_NAMES = {
    "2.5.4.3": "CN",
    "2.5.4.6": "C",
    "2.5.4.7": "L",
    "2.5.4.8": "ST",
    "2.5.4.10": "O",
    "2.5.4.11": "OU",
    "1.2.840.113549.1.9.1": "emailAddress",
}
_OID_SAN = "2.5.29.17"


def _der_item(data: bytes, pos: int) -> tuple[int, int, int]:
    """(tag, content start, content end) of the DER element at ``pos``."""
    tag = data[pos]
    length = data[pos + 1]
    pos += 2
    if length & 0x80:
        count = length & 0x7F
        if count == 0 or count > 4:
            raise ValueError("unsupported DER length")
        length = int.from_bytes(data[pos : pos + count], "big")
        pos += count
    if pos + length > len(data):
        raise ValueError("truncated DER")
    return tag, pos, pos + length


def _der_children(data: bytes, start: int, end: int) -> list[tuple[int, int, int]]:
    items = []
    while start < end:
        item = _der_item(data, start)
        items.append(item)
        start = item[2]
    return items


def _der_oid(raw: bytes) -> str:
    parts = [raw[0] // 40, raw[0] % 40]
    value = 0
    for byte in raw[1:]:
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            parts.append(value)
            value = 0
    return ".".join(str(p) for p in parts)


def _der_time(tag: int, raw: bytes) -> datetime.datetime:
    text = raw.decode("ascii")
    fmt = "%y%m%d%H%M%SZ" if tag == 0x17 else "%Y%m%d%H%M%SZ"
    return datetime.datetime.strptime(text, fmt).replace(tzinfo=datetime.timezone.utc)


def _der_name(data: bytes, start: int, end: int) -> str:
    parts = []
    for _tag, s, e in _der_children(data, start, end):  # SET OF
        for _t2, s2, e2 in _der_children(data, s, e):  # AttributeTypeAndValue
            (_ot, os_, oe), (vt, vs, ve) = _der_children(data, s2, e2)[:2]
            oid = _der_oid(data[os_:oe])
            raw = data[vs:ve]
            value = raw.decode("utf-16-be" if vt == 0x1E else "utf-8", "replace")
            parts.append(f"{_OID_NAMES.get(oid, oid)}={value}")
    return ",".join(parts)


def _der_san(data: bytes, start: int, end: int) -> list[str]:
    names = []
    for tag, s, e in _der_children(data, start, end):
        raw = data[s:e]
        if tag == 0x82:
            names.append("DNS:" + raw.decode("ascii", "replace"))
        elif tag == 0x87 and len(raw) in (4, 16):
            import ipaddress  # local: only needed for IP SANs

            names.append("IP:" + str(ipaddress.ip_address(raw)))
        elif tag == 0x81:
            names.append("email:" + raw.decode("ascii", "replace"))
        elif tag == 0x86:
            names.append("URI:" + raw.decode("ascii", "replace"))
    return names


def summarize_certificate(der: bytes, now: datetime.datetime | None = None) -> dict:
    """Subject, issuer, validity, SANs and days to expiry of a DER certificate.

    The stdlib only decodes certificates it has verified; this small DER walk also describes one
    that failed verification, which is exactly when the operator needs to see it.
    """
    now = now or datetime.datetime.now(datetime.timezone.utc)
    _t, s, e = _der_item(der, 0)
    _t, ts, te = _der_children(der, s, e)[0]  # tbsCertificate
    fields = _der_children(der, ts, te)
    if fields and fields[0][0] == 0xA0:  # explicit [0] version
        fields = fields[1:]
    _serial, _sigalg, issuer, validity, subject = fields[:5]
    (nbt, nbs, nbe), (nat, nas, nae) = _der_children(der, validity[1], validity[2])[:2]
    not_before = _der_time(nbt, der[nbs:nbe])
    not_after = _der_time(nat, der[nas:nae])
    sans: list[str] = []
    for tag, xs, xe in fields[5:]:
        if tag != 0xA3:
            continue
        (_seq, ss, se) = _der_children(der, xs, xe)[0]
        for _et, es, ee in _der_children(der, ss, se):
            parts = _der_children(der, es, ee)
            oid = _der_oid(der[parts[0][1] : parts[0][2]])
            if oid == _OID_SAN:
                _os, vs, _ve = parts[-1]  # OCTET STRING wrapping GeneralNames
                _gt, gs, ge = _der_item(der, vs)
                sans = _der_san(der, gs, ge)
    subject_text = _der_name(der, subject[1], subject[2])
    issuer_text = _der_name(der, issuer[1], issuer[2])
    return {
        "subject": subject_text,
        "issuer": issuer_text,
        "self_signed": subject_text == issuer_text,
        "subject_alt_names": sans,
        "not_before": not_before.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "not_after": not_after.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "days_to_expiry": int((not_after - now).total_seconds() // 86400),
        "sha256_fingerprint": hashlib.sha256(der).hexdigest(),
    }


# --------------------------------------------------------------------------- I/O


def make_ssl_context(validate_certs: bool = True, ca_path: str | None = None) -> ssl.SSLContext:
    """Client TLS context: system trust (or ``ca_path`` file/dir), hostname check, HTTP/1.1 ALPN."""
    if validate_certs:
        if ca_path and os.path.isdir(ca_path):
            ctx = ssl.create_default_context(capath=ca_path)
        else:
            ctx = ssl.create_default_context(cafile=ca_path or None)
    else:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    # Offer only HTTP/1.1: a WebSocket upgrade is an HTTP/1.1 mechanism; h2 would break it.
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


def tcp_error(exc: OSError, host: str, port: int) -> ConnectFailed:
    """Classify a socket error raised while connecting into a ConnectFailed with a stable kind."""
    if isinstance(exc, socket.gaierror):
        return ConnectFailed("dns", host, port, f"cannot resolve {host!r}: {exc.strerror or exc}")
    if isinstance(exc, ConnectionRefusedError):
        return ConnectFailed("refused", host, port, "connection refused")
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return ConnectFailed("timeout", host, port, "no answer before the timeout")
    if isinstance(exc, (ConnectionResetError, BrokenPipeError, ConnectionAbortedError)):
        return ConnectFailed("reset", host, port, "connection reset by the peer")
    return ConnectFailed("unreachable", host, port, exc.strerror or str(exc))


def tls_error(exc: ssl.SSLError, host: str, port: int) -> TLSFailed:
    """Turn an ssl error into TLSFailed, keeping OpenSSL's verify code for the hint."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return TLSFailed(
            host, port, exc.verify_message or str(exc), exc.verify_code, exc.verify_message
        )
    return TLSFailed(host, port, exc.reason or str(exc))


def open_stream(
    host: str,
    port: int,
    timeout: float,
    ssl_context: ssl.SSLContext | None = None,
    server_hostname: str | None = None,
) -> socket.socket:
    """TCP connect (+TLS handshake) under ``timeout``; raises ConnectFailed or TLSFailed."""
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except OSError as exc:
        raise tcp_error(exc, host, port) from None
    if ssl_context is None:
        return sock
    try:
        return ssl_context.wrap_socket(sock, server_hostname=server_hostname or host)
    except ssl.SSLError as exc:
        sock.close()
        raise tls_error(exc, host, port) from None
    except OSError as exc:
        sock.close()
        raise tcp_error(exc, host, port) from None


def fetch_certificate(host: str, port: int, timeout: float) -> dict | None:
    """Certificate summary of an endpoint without verifying it (evidence for a TLS failure)."""
    try:
        sock = open_stream(host, port, timeout, make_ssl_context(validate_certs=False))
    except WebSocketError:
        return None
    try:
        der = sock.getpeercert(binary_form=True)
        return summarize_certificate(der) if der else None
    except (ValueError, IndexError):
        return None
    finally:
        sock.close()


def tls_details(sock: socket.socket) -> dict | None:
    """Protocol, cipher and certificate summary of an established TLS socket (None for plain)."""
    if not isinstance(sock, ssl.SSLSocket):
        return None
    info: dict = {"protocol": sock.version(), "cipher": (sock.cipher() or ("",))[0]}
    der = sock.getpeercert(binary_form=True)
    if der:
        try:
            info.update(summarize_certificate(der))
        except (ValueError, IndexError):
            info["certificate_error"] = "certificate could not be decoded"
    return info


class Message:
    """A complete data message or the server's close: kind is 'text', 'binary' or 'close'."""

    def __init__(
        self, kind: str, data: bytes = b"", code: int | None = None, reason: str = ""
    ) -> None:
        self.kind = kind
        self.data = data
        self.code = code
        self.reason = reason

    @property
    def text(self) -> str:
        return self.data.decode("utf-8", "replace")


class ClientConnection:
    """An open client WebSocket. Not thread-safe; one caller reads and writes."""

    def __init__(self, sock: socket.socket, response: HttpResponse, buffered: bytes = b"") -> None:
        self.sock = sock
        self.response = response
        self._buf = bytearray(buffered)
        self._fragments: list[bytes] = []
        self._fragment_opcode: int | None = None
        self.closed = False
        self.close_code: int | None = None
        self.close_reason = ""
        self.closed_by: str | None = None
        self.tls = tls_details(sock)

    @property
    def subprotocol(self) -> str | None:
        return self.response.get("sec-websocket-protocol")

    # -- low level
    def _send(self, data: bytes, timeout: float) -> None:
        self.sock.settimeout(max(timeout, 0.001))
        try:
            self.sock.sendall(data)
        except (socket.timeout, TimeoutError):
            raise Timeout("sending timed out") from None
        except OSError as exc:
            self.closed = True
            raise ConnectionClosed(None, f"send failed: {exc.strerror or exc}") from None

    def _read_frame(self, deadline: float) -> Frame | None:
        """Next frame, or None when the deadline passes first."""
        while True:
            frame, used = decode_frame(bytes(self._buf))
            if frame is not None:
                del self._buf[:used]
                return frame
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            self.sock.settimeout(remaining)
            try:
                chunk = self.sock.recv(65536)
            except (socket.timeout, TimeoutError):
                return None
            except ssl.SSLError as exc:
                self.closed = True
                raise ConnectionClosed(None, f"TLS error: {exc.reason or exc}") from None
            except OSError as exc:
                self.closed = True
                raise ConnectionClosed(None, exc.strerror or str(exc)) from None
            if not chunk:
                self.closed = True
                raise ConnectionClosed(None, "")
            self._buf.extend(chunk)

    # -- public API
    def send_text(self, text: str, timeout: float = 5.0) -> None:
        self._send(encode_frame(OP_TEXT, text.encode("utf-8")), timeout)

    def send_binary(self, data: bytes, timeout: float = 5.0) -> None:
        self._send(encode_frame(OP_BINARY, data), timeout)

    def ping(self, data: bytes = b"", timeout: float = 5.0) -> None:
        self._send(encode_frame(OP_PING, data), timeout)

    def recv(self, timeout: float) -> Message | None:
        """Next text/binary message or the server's close; None if nothing before ``timeout``.

        Pings are answered with pongs and fragmented messages reassembled on the way. A close
        from the server is echoed (closing handshake) and returned as a 'close' Message once.
        """
        if self.closed:
            raise ConnectionClosed(self.close_code, self.close_reason)
        deadline = time.monotonic() + timeout
        while True:
            frame = self._read_frame(deadline)
            if frame is None:
                return None
            if frame.masked:
                raise ProtocolError("the server sent a masked frame (RFC 6455 5.1 forbids it)")
            if frame.opcode == OP_PING:
                self._send(
                    encode_frame(OP_PONG, frame.payload), max(deadline - time.monotonic(), 1)
                )
                continue
            if frame.opcode == OP_PONG:
                continue
            if frame.opcode == OP_CLOSE:
                code, reason = parse_close_payload(frame.payload)
                self.close_code, self.close_reason = code, reason
                if self.closed_by is None:
                    self.closed_by = "server"
                    # Echo the close (closing handshake); the server may already be gone.
                    with contextlib.suppress(WebSocketError):
                        self._send(encode_frame(OP_CLOSE, frame.payload[:2]), 1.0)
                self._shutdown()
                return Message("close", code=code, reason=reason)
            message = self._assemble(frame)
            if message is not None:
                return message

    def _assemble(self, frame: Frame) -> Message | None:
        if frame.opcode == OP_CONT:
            if self._fragment_opcode is None:
                raise ProtocolError("continuation frame without a message to continue")
        elif self._fragment_opcode is not None:
            raise ProtocolError("new data frame while a fragmented message is incomplete")
        else:
            self._fragment_opcode = frame.opcode
        self._fragments.append(frame.payload)
        if sum(len(f) for f in self._fragments) > MAX_MESSAGE_BYTES:
            raise ProtocolError(f"message exceeds {MAX_MESSAGE_BYTES} bytes")
        if not frame.fin:
            return None
        data = b"".join(self._fragments)
        opcode = self._fragment_opcode
        self._fragments, self._fragment_opcode = [], None
        if opcode == OP_TEXT:
            try:
                data.decode("utf-8")
            except UnicodeDecodeError:
                raise ProtocolError("text message is not valid UTF-8") from None
            return Message("text", data)
        return Message("binary", data)

    def close(self, code: int = 1000, reason: str = "", timeout: float = 2.0) -> None:
        """Closing handshake: send our close, wait (bounded) for the server's, drop the socket."""
        if self.closed:
            self._shutdown()
            return
        self.closed_by = "client"
        try:
            self._send(encode_frame(OP_CLOSE, encode_close_payload(code, reason)), timeout)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                msg = self.recv(deadline - time.monotonic())
                if msg is None or msg.kind == "close":
                    break
        except WebSocketError:
            pass
        self._shutdown()

    def _shutdown(self) -> None:
        self.closed = True
        with contextlib.suppress(OSError):
            self.sock.close()


def _read_head(sock: socket.socket, deadline: float) -> tuple[bytes, bytes]:
    """Bytes up to the blank line ending the response head, and whatever followed it."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        if len(buf) > MAX_HEADER_BYTES:
            raise ProtocolError(f"response head larger than {MAX_HEADER_BYTES} bytes")
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise Timeout("no complete HTTP response to the upgrade before the timeout")
        sock.settimeout(remaining)
        try:
            chunk = sock.recv(4096)
        except (socket.timeout, TimeoutError):
            raise Timeout("no complete HTTP response to the upgrade before the timeout") from None
        except ssl.SSLError as exc:
            raise ConnectionClosed(None, f"TLS error: {exc.reason or exc}") from None
        except OSError as exc:
            raise ConnectionClosed(None, exc.strerror or str(exc)) from None
        if not chunk:
            if not buf:
                raise ConnectionClosed(None, "the server closed the connection without answering")
            raise ProtocolError("connection closed in the middle of the HTTP response")
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    return head, rest


def _read_body_evidence(sock: socket.socket, response: HttpResponse, rest: bytes, deadline: float):
    """Up to BODY_EVIDENCE_BYTES of a refusal's body: nginx and apps explain themselves there."""
    body = rest
    length = response.get("content-length")
    want = min(int(length), BODY_EVIDENCE_BYTES) if length and length.isdigit() else None
    while (want is None or len(body) < want) and len(body) < BODY_EVIDENCE_BYTES:
        remaining = min(deadline - time.monotonic(), 1.0)
        if remaining <= 0:
            break
        sock.settimeout(remaining)
        try:
            chunk = sock.recv(4096)
        except (OSError, ssl.SSLError):
            break
        if not chunk:
            break
        body += chunk
    response.body = body[:BODY_EVIDENCE_BYTES]


def connect(
    url: str,
    timeout: float = 10.0,
    headers: dict[str, str] | None = None,
    origin: str | None = None,
    subprotocols: list[str] | None = None,
    ssl_context: ssl.SSLContext | None = None,
    resource: str | None = None,
) -> ClientConnection:
    """Open a WebSocket: TCP, TLS for wss, upgrade request, strict validation of the 101.

    ``resource`` overrides the request target (e.g. to add a token query parameter that must not
    appear in the URL callers log). Raises ConnectFailed, TLSFailed, Timeout, HandshakeRejected
    (non-101, with up to 2 KiB of body), HandshakeInvalid (bad 101) or ConnectionClosed.
    """
    target = parse_ws_url(url)
    deadline = time.monotonic() + timeout
    ctx = None
    if target.secure:
        ctx = ssl_context or make_ssl_context()
    sock = open_stream(target.host, target.port, timeout, ctx)
    tls = tls_details(sock)
    try:
        key = generate_key()
        request = build_upgrade_request(target, key, origin, headers, subprotocols, resource)
        sock.settimeout(max(deadline - time.monotonic(), 0.001))
        try:
            sock.sendall(request)
        except (socket.timeout, TimeoutError):
            raise Timeout("sending the upgrade request timed out") from None
        except OSError as exc:
            raise ConnectionClosed(None, exc.strerror or str(exc)) from None
        head, rest = _read_head(sock, deadline)
        response = parse_http_response(head)
        if response.status != 101:
            _read_body_evidence(sock, response, rest, deadline)
            raise HandshakeRejected(response)
        accept_valid, problems = validate_upgrade_response(response, key, subprotocols)
        if problems:
            raise HandshakeInvalid(response, problems, accept_valid)
        return ClientConnection(sock, response, rest)
    except WebSocketError as exc:
        exc.tls = tls  # the certificate is evidence even when the upgrade is refused
        sock.close()
        raise
    except BaseException:
        sock.close()
        raise
