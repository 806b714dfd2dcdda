"""The raw floor's frame: the one server-side frame the bench builds itself, from the project's
one wire implementation (module_utils/ws_protocol.py), so it is byte-identical to a real one.
The clients drive ``ClientProtocol`` directly (see loadgen.py)."""

from __future__ import annotations

import sys
from pathlib import Path

# module_utils/ lives at the project root, which is not on sys.path when bench/ runs.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from module_utils import ws_protocol as ws

OP_TEXT = ws.OP_TEXT


def encode_frame(opcode: int, payload: bytes, mask: bool = True) -> bytes:
    """One final frame; clients mask (RFC 6455 5.3), the raw floor's server frame does not."""
    return ws.encode_frame(opcode, payload, mask=mask)
