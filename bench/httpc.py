"""A minimal keep-alive HTTP/1.1 client on asyncio streams (requests to 127.0.0.1 only).

Why not a client library: the bench needs three requests (publish, broadcast trigger, healthz)
and a persistent connection so a publish costs one request, not a TCP setup as well.
"""

from __future__ import annotations

import asyncio
import contextlib
import json


class HttpClient:
    """One persistent connection to 127.0.0.1:port; reconnects when the server closed it."""

    def __init__(self, port: int, timeout: float = 10.0) -> None:
        self.port = port
        self.timeout = timeout
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def request(
        self,
        method: str,
        path: str,
        body: object | bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, bytes]:
        """Send one request; returns (status, body). ``body`` objects are sent as JSON."""
        return await asyncio.wait_for(self._request(method, path, body, headers), self.timeout)

    async def _request(
        self,
        method: str,
        path: str,
        body: object | bytes | None,
        headers: dict[str, str] | None,
    ) -> tuple[int, bytes]:
        if body is None:
            raw = b""
        elif isinstance(body, bytes):
            raw = body
        else:
            raw = json.dumps(body).encode()
        lines = [
            f"{method} {path} HTTP/1.1",
            f"Host: 127.0.0.1:{self.port}",
            f"Content-Length: {len(raw)}",
        ]
        if body is not None and not isinstance(body, bytes):
            lines.append("Content-Type: application/json")
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        data = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + raw
        for attempt in (1, 2):
            if self._writer is None or self._writer.is_closing():
                self._reader, self._writer = await asyncio.open_connection("127.0.0.1", self.port)
            assert self._reader is not None
            self._writer.write(data)
            try:
                head = await self._reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, ConnectionError):
                await self.close()
                if attempt == 2:
                    raise
                continue  # a kept-alive connection the server had closed: retry once, fresh
            return await self._response(head)
        raise AssertionError("unreachable")

    async def _response(self, head: bytes) -> tuple[int, bytes]:
        assert self._reader is not None
        text = head.decode("latin-1")
        status = int(text.split(" ", 2)[1])
        fields = {}
        for line in text.split("\r\n")[1:]:
            name, _, value = line.partition(":")
            fields[name.strip().lower()] = value.strip()
        chunked = fields.get("transfer-encoding", "").lower() == "chunked"
        if chunked:
            body = b""
            while True:
                size = int((await self._reader.readuntil(b"\r\n")).split(b";")[0], 16)
                chunk = await self._reader.readexactly(size + 2)
                if size == 0:
                    break
                body += chunk[:-2]
        elif "content-length" in fields:
            body = await self._reader.readexactly(int(fields["content-length"]))
        else:
            body = await self._reader.read()  # delimited by the server closing
        delimited_by_close = not chunked and "content-length" not in fields
        if delimited_by_close or fields.get("connection", "").lower() == "close":
            await self.close()
        return status, body

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(ConnectionError):
                await self._writer.wait_closed()
        self._reader = self._writer = None
