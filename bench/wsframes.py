"""The load generator's view of the WebSocket wire format: a thin adapter, no second protocol.

Why: the project has one client-side implementation, module_utils/websocket.py (stdlib, pure
functions). The bench reuses its handshake and framing functions, so a bug there shows up here
too and is fixed once. This adapter only narrows them to what the load generator needs and
keeps the hot path (one frame per callback) free of per-call setup.
"""

from __future__ import annotations

import sys
from pathlib import Path

# module_utils/ lives at the project root, which is not on sys.path when bench/ runs.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from module_utils import websocket as ws

OP_TEXT = ws.OP_TEXT
OP_CLOSE = ws.OP_CLOSE
OP_PING = ws.OP_PING
OP_PONG = ws.OP_PONG
ProtocolError = ws.ProtocolError

new_key = ws.generate_key
accept_for = ws.compute_accept


def upgrade_request(host: str, port: int, path: str, key: str, headers: dict[str, str]) -> bytes:
    """The HTTP/1.1 upgrade request; no extension is offered (compression stays off)."""
    return ws.build_upgrade_request(ws.WsUrl("ws", host, port, path), key, headers=headers)


def check_upgrade(head: bytes, key: str) -> str | None:
    """None when ``head`` (status line + headers) is a valid 101 for ``key``, else why not."""
    response = ws.parse_http_response(head)
    if response.status != 101:
        return f"upgrade refused: {response.status} {response.reason}"
    _accept_ok, problems = ws.validate_upgrade_response(response, key)
    return "; ".join(problems) or None


def encode_frame(opcode: int, payload: bytes, mask: bool = True) -> bytes:
    """One final frame; clients mask (RFC 6455 5.3), the raw floor's server frame does not."""
    return ws.encode_frame(opcode, payload, mask=mask)


def close_frame(code: int = 1000) -> bytes:
    """A masked client close frame with ``code``."""
    return ws.encode_frame(ws.OP_CLOSE, ws.encode_close_payload(code))


def parse_frame(buf: bytes | bytearray) -> tuple[int, bytes, int] | None:
    """(opcode, payload, bytes consumed) of the first frame in ``buf``, None while partial."""
    frame, used = ws.decode_frame(buf)
    if frame is None:
        return None
    return frame.opcode, frame.payload, used
