"""Client-side WebSocket wire format for the load generator, kept in one small place.

Why here: the project's one client implementation is meant to live in module_utils/websocket.py
(stdlib, pure functions). Until it exists this module carries the few pure functions the load
generator needs; once it does, these names are bound to it so there is a single handshake/framing
implementation (see ``_bind_module_utils``). Everything here is pure (no I/O) so it is cheap to
call from protocol callbacks on a hot path.
"""

from __future__ import annotations

import base64
import hashlib
import os
import struct

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

OP_TEXT = 0x1
OP_CLOSE = 0x8
OP_PING = 0x9
OP_PONG = 0xA


def new_key() -> str:
    """A random Sec-WebSocket-Key (16 random bytes, base64)."""
    return base64.b64encode(os.urandom(16)).decode("ascii")


def accept_for(key: str) -> str:
    """The Sec-WebSocket-Accept value a conforming server must answer for ``key``."""
    return base64.b64encode(hashlib.sha1(key.encode("ascii") + GUID).digest()).decode(
        "ascii"
    )


def upgrade_request(
    host: str, port: int, path: str, key: str, headers: dict[str, str]
) -> bytes:
    """The HTTP/1.1 upgrade request; no extension is offered (compression stays off)."""
    lines = [
        f"GET {path} HTTP/1.1",
        f"Host: {host}:{port}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        "Sec-WebSocket-Version: 13",
    ]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def encode_frame(opcode: int, payload: bytes, mask: bool = True) -> bytes:
    """One final frame; clients must mask (RFC 6455 5.3), servers must not."""
    length = len(payload)
    head = bytes([0x80 | opcode])
    mbit = 0x80 if mask else 0
    if length < 126:
        head += bytes([mbit | length])
    elif length < 65536:
        head += bytes([mbit | 126]) + struct.pack("!H", length)
    else:
        head += bytes([mbit | 127]) + struct.pack("!Q", length)
    if not mask:
        return head + payload
    key = os.urandom(4)
    masked = bytes(b ^ key[i & 3] for i, b in enumerate(payload))
    return head + key + masked


def close_frame(code: int = 1000, reason: bytes = b"") -> bytes:
    """A masked client close frame."""
    return encode_frame(OP_CLOSE, struct.pack("!H", code) + reason)


def parse_frame(buf: bytes | bytearray) -> tuple[int, bytes, int] | None:
    """Parse one unmasked server frame at the start of ``buf``.

    Returns (opcode, payload, bytes consumed), or None while the frame is incomplete.
    Fragmented messages are not expected from the servers under test (each notification
    is one small frame), so FIN is not tracked.
    """
    if len(buf) < 2:
        return None
    opcode = buf[0] & 0x0F
    length = buf[1] & 0x7F
    pos = 2
    if length == 126:
        if len(buf) < 4:
            return None
        length = struct.unpack_from("!H", buf, 2)[0]
        pos = 4
    elif length == 127:
        if len(buf) < 10:
            return None
        length = struct.unpack_from("!Q", buf, 2)[0]
        pos = 10
    if buf[1] & 0x80:
        pos += (
            4  # a masked server frame is a protocol error; skip the key to stay in sync
        )
    end = pos + length
    if len(buf) < end:
        return None
    return opcode, bytes(buf[pos:end]), end
