"""A raw-socket WebSocket client for conformance tests: it sends exactly the bytes a test
asks for (unmasked frames, reserved bits, split requests), which no client library would."""

from __future__ import annotations

import base64
import hashlib
import os
import socket
import struct
import time

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def frame(
    opcode: int,
    payload: bytes = b"",
    *,
    fin: bool = True,
    rsv: int = 0,
    mask: bool = True,
    length: int | None = None,
) -> bytes:
    """A client frame; ``length`` overrides the encoded length (for lying headers)."""
    n = len(payload) if length is None else length
    first = (0x80 if fin else 0) | (rsv << 4) | opcode
    mask_bit = 0x80 if mask else 0
    if n < 126:
        head = struct.pack("!BB", first, mask_bit | n)
    elif n < 65536:
        head = struct.pack("!BBH", first, mask_bit | 126, n)
    else:
        head = struct.pack("!BBQ", first, mask_bit | 127, n)
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def close_payload(code: int, reason: bytes = b"") -> bytes:
    return struct.pack("!H", code) + reason


def accept_for(key: str) -> str:
    return base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()


def upgrade_request(
    port: int, extra: str = "", *, key: str | None = None, path: str = "/ws", **override: str
) -> tuple[bytes, str]:
    """(request bytes, key). ``override`` replaces a standard header (value "" drops it);
    names use underscores: Sec_WebSocket_Version="8"."""
    key = key if key is not None else base64.b64encode(os.urandom(16)).decode()
    headers = {
        "Host": f"127.0.0.1:{port}",
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Key": key,
        "Sec-WebSocket-Version": "13",
    }
    for name, value in override.items():
        headers[name.replace("_", "-")] = value
    lines = [f"GET {path} HTTP/1.1"] + [f"{k}: {v}" for k, v in headers.items() if v != ""]
    return ("\r\n".join(lines) + "\r\n" + extra + "\r\n").encode(), key


class RawClient:
    def __init__(self, port: int, timeout: float = 5.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _more(self) -> bool:
        try:
            chunk = self.sock.recv(65536)
        except (ConnectionResetError, TimeoutError):
            return False
        self.buf += chunk
        return bool(chunk)

    def response_head(self) -> tuple[int, dict[str, str], bytes]:
        """(status, lower-case headers, body as far as Content-Length says)."""
        while b"\r\n\r\n" not in self.buf:
            assert self._more(), f"connection closed during the response: {self.buf!r}"
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        while len(self.buf) < length:
            assert self._more(), "connection closed inside the body"
        body, self.buf = self.buf[:length], self.buf[length:]
        return status, headers, body

    def next_frame(self) -> tuple[int, bytes] | None:
        """(opcode, payload) of the next server frame; None when the server closed TCP."""
        while True:
            if len(self.buf) >= 2:
                assert not self.buf[1] & 0x80, "server frames must not be masked"
                n, pos = self.buf[1] & 0x7F, 2
                if n == 126 and len(self.buf) >= 4:
                    (n,), pos = struct.unpack("!H", self.buf[2:4]), 4
                elif n == 127 and len(self.buf) >= 10:
                    (n,), pos = struct.unpack("!Q", self.buf[2:10]), 10
                if (n < 126 or pos > 2) and len(self.buf) >= pos + n:
                    opcode = self.buf[0] & 0x0F
                    payload = self.buf[pos : pos + n]
                    self.buf = self.buf[pos + n :]
                    return opcode, payload
            if not self._more():
                return None

    def close_code(self, timeout: float = 5.0) -> int | None:
        """Read until the server's close frame; its code (1005 if none)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.next_frame()
            if got is None:
                return None
            if got[0] == 0x8:
                return struct.unpack("!H", got[1][:2])[0] if len(got[1]) >= 2 else 1005
        raise AssertionError("no close frame")

    def closed_by_server(self, timeout: float = 5.0) -> bool:
        """True once the server closed TCP (EOF), skipping anything still in flight."""
        self.sock.settimeout(timeout)
        try:
            while self.sock.recv(65536):
                pass
        except ConnectionResetError:
            return True
        except TimeoutError:
            return False
        return True

    def close(self) -> None:
        self.sock.close()
