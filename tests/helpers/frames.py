"""Decode the frames a client wrote, for assertions: an implementation of its own (not
module_utils/ws_protocol.py), so a bug in the client cannot hide behind the same bug here."""

from __future__ import annotations

import struct


def split_frames(data: bytes) -> list[tuple[bool, int, bytes, bool]]:
    """(fin, opcode, unmasked payload, masked) of every complete frame in ``data``."""
    frames = []
    pos = 0
    while pos + 2 <= len(data):
        b0, b1 = data[pos], data[pos + 1]
        n, pos = b1 & 0x7F, pos + 2
        if n == 126:
            (n,) = struct.unpack_from("!H", data, pos)
            pos += 2
        elif n == 127:
            (n,) = struct.unpack_from("!Q", data, pos)
            pos += 8
        mask = data[pos : pos + 4] if b1 & 0x80 else b"\0\0\0\0"
        pos += 4 if b1 & 0x80 else 0
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(data[pos : pos + n]))
        frames.append((bool(b0 & 0x80), b0 & 0x0F, payload, bool(b1 & 0x80)))
        pos += n
    return frames


def server_frame(opcode: int, payload: bytes, fin: bool = True) -> bytes:
    """An unmasked frame as a server sends it (RFC 6455 5.2)."""
    first = (0x80 if fin else 0) | opcode
    n = len(payload)
    if n < 126:
        return struct.pack("!BB", first, n) + payload
    if n < 1 << 16:
        return struct.pack("!BBH", first, 126, n) + payload
    return struct.pack("!BBQ", first, 127, n) + payload
