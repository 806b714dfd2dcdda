"""A minimal wsnotify stand-in for tests: the CONTRACT subset the verification modules speak.

Written on asyncio with its OWN frame and accept code (deliberately not
module_utils/ws_protocol.py), so a bug in the client cannot hide behind the same bug in the
server. It runs in a thread on 127.0.0.1 and implements:
- GET /ws: token from ``Authorization: Bearer``, ``?token=`` or a first ``{"type":"auth"}``
  message within ``auth_timeout``; HS256 JWT with ``sub``; bad/missing token -> close 4401
  "Unauthorized" after the 101; success -> ``{"type":"welcome","user_id":sub}``; acks recorded.
  A GET /ws without Upgrade/Connection headers gets 400, as aiohttp (the service's stack) answers.
- POST /api/notifications with ``Authorization: Bearer <publish_token>`` -> 202 {"id": N} and
  delivery of ``{"type":"notification",...}`` to the user's sockets (or all, for broadcast).
Misbehaviours for failure tests: ``accept_mode="wrong"`` (101 with a wrong Sec-WebSocket-Accept),
``delivery="none"`` (publisher accepts, nothing is delivered), ``delivery="mangled"`` (what is
delivered lost its body and data, as a broken serializer would do).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime
import hashlib
import hmac
import json
import struct
import threading
import time
from urllib.parse import parse_qs, urlsplit

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
MAX_BODY = 64 * 1024


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def verify_jwt(token: str, secret: str) -> str | None:
    """The ``sub`` of a valid HS256 token, else None (alg none, bad signature, expired...)."""
    try:
        head_b64, body_b64, sig_b64 = token.split(".")
        header = json.loads(_b64url_decode(head_b64))
        claims = json.loads(_b64url_decode(body_b64))
        signature = _b64url_decode(sig_b64)
    except ValueError:
        return None
    if header.get("alg") != "HS256":
        return None
    expected = hmac.new(secret.encode(), f"{head_b64}.{body_b64}".encode(), hashlib.sha256).digest()
    if not hmac.compare_digest(expected, signature):
        return None
    if not isinstance(claims.get("exp"), int) or claims["exp"] < time.time():
        return None
    sub = claims.get("sub")
    return sub if isinstance(sub, str) and sub else None


def server_frame(opcode: int, payload: bytes) -> bytes:
    """Unmasked server frame (RFC 6455 5.2)."""
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x80 | opcode, n)
    elif n < 65536:
        head = struct.pack("!BBH", 0x80 | opcode, 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 127, n)
    return head + payload


async def read_client_frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """(opcode, unmasked payload) of one client frame; fragments are not needed by the tests."""
    b0, b1 = await reader.readexactly(2)
    n = b1 & 0x7F
    if n == 126:
        (n,) = struct.unpack("!H", await reader.readexactly(2))
    elif n == 127:
        (n,) = struct.unpack("!Q", await reader.readexactly(8))
    if not b1 & 0x80:
        raise ValueError("client frame not masked")
    mask = await reader.readexactly(4)
    data = await reader.readexactly(n)
    return b0 & 0x0F, bytes(b ^ mask[i % 4] for i, b in enumerate(data))


def http_response(status: int, reason: str, body: bytes, ctype: str = "text/plain") -> bytes:
    return (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: {ctype}\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode() + body


class Session:
    def __init__(self, user_id: str, writer: asyncio.StreamWriter) -> None:
        self.user_id = user_id
        self.writer = writer

    def send_json(self, obj: dict) -> None:
        self.writer.write(server_frame(0x1, json.dumps(obj).encode()))


class WsNotifyTestServer:
    """Run with ``start()``/``stop()`` (or as a context manager); ``port`` 0 picks a free one."""

    def __init__(
        self,
        jwt_secret: str,
        publish_token: str,
        port: int = 0,
        auth_timeout: float = 1.0,
        accept_mode: str = "correct",
        delivery: str = "normal",
    ) -> None:
        self.jwt_secret = jwt_secret
        self.publish_token = publish_token
        self.port = port
        self.auth_timeout = auth_timeout
        self.accept_mode = accept_mode
        self.delivery = delivery
        self.sessions: list[Session] = []
        self.published: list[dict] = []
        self.acks: list[int] = []
        self.requests: list[tuple[str, str, dict]] = []
        # Called with (method, target) for every request: lets a test react to a playbook step.
        self.on_request = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.base_events.Server | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._next_id = 1

    # -- lifecycle
    @property
    def base(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, delay: float = 0.0) -> WsNotifyTestServer:
        """Start serving; with ``delay`` the port only opens later (a service still starting)."""
        self._thread = threading.Thread(target=self._run, args=(delay,), daemon=True)
        self._thread.start()
        if delay == 0 and not self._ready.wait(5):
            raise RuntimeError("test WebSocket server did not start within 5 s")
        return self

    def _run(self, delay: float) -> None:
        time.sleep(delay)
        self._loop = asyncio.new_event_loop()
        self._loop.run_until_complete(self._serve())
        self._ready.set()
        self._loop.run_forever()
        self._loop.run_until_complete(self._loop.shutdown_asyncgens())
        self._loop.close()

    async def _serve(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    def stop(self) -> None:
        if self._thread is None:
            return
        self._ready.wait(10)
        loop = self._loop
        if loop is not None:

            async def shutdown() -> None:
                self._server.close()
                for s in self.sessions:
                    s.writer.close()
                loop.stop()

            asyncio.run_coroutine_threadsafe(shutdown(), loop)
        self._thread.join(5)
        self._thread = None

    def __enter__(self) -> WsNotifyTestServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- HTTP
    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            first = await asyncio.wait_for(reader.readexactly(1), 5)
            if not first.isalpha():  # e.g. a TLS ClientHello: answer like an HTTP server does
                writer.write(http_response(400, "Bad Request", b"Invalid method encountered"))
                return
            head = first + await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            lines = head.decode("latin-1").split("\r\n")
            method, target, _version = lines[0].split(" ", 2)
            headers = {}
            for line in lines[1:]:
                if ":" in line:
                    k, v = line.split(":", 1)
                    headers[k.strip().lower()] = v.strip()
            self.requests.append((method, target, headers))
            if self.on_request is not None:
                self.on_request(method, target)
            path = urlsplit(target).path
            if method == "GET" and path == "/ws":
                await self._websocket(reader, writer, target, headers)
            elif method == "POST" and path == "/api/notifications":
                await self._publish(reader, writer, headers)
            else:
                writer.write(http_response(404, "Not Found", b"404: Not Found"))
        except (TimeoutError, asyncio.IncompleteReadError, ConnectionError, ValueError):
            pass
        finally:
            with contextlib.suppress(ConnectionError):
                await writer.drain()
            writer.close()

    async def _publish(self, reader, writer, headers: dict) -> None:
        def json_reply(status: int, reason: str, obj: dict) -> None:
            writer.write(
                http_response(status, reason, json.dumps(obj).encode(), "application/json")
            )

        length = int(headers.get("content-length", "0"))
        if length > MAX_BODY:
            json_reply(413, "Payload Too Large", {"error": "Payload too large"})
            return
        body = await reader.readexactly(length)
        auth = headers.get("authorization", "")
        if not hmac.compare_digest(auth.encode(), f"Bearer {self.publish_token}".encode()):
            json_reply(401, "Unauthorized", {"error": "Authentication required"})
            return
        try:
            req = json.loads(body)
        except ValueError:
            json_reply(400, "Bad Request", {"error": "body is not JSON"})
            return
        broadcast = req.get("broadcast") is True
        if not isinstance(req.get("title"), str) or not (
            broadcast or isinstance(req.get("user_id"), str)
        ):
            json_reply(400, "Bad Request", {"error": "title and user_id (or broadcast) required"})
            return
        nid = self._next_id
        self._next_id += 1
        note = {
            "type": "notification",
            "id": nid,
            "user_id": None if broadcast else req["user_id"],
            "title": req["title"],
            "body": req.get("body", ""),
            "data": req.get("data", {}),
            "created_at": datetime.datetime.now(datetime.UTC).isoformat(),
        }
        self.published.append(note)
        json_reply(202, "Accepted", {"id": nid})
        if self.delivery == "none":
            return
        sent = note if self.delivery == "normal" else {**note, "body": "", "data": {}}
        for s in list(self.sessions):
            if broadcast or s.user_id == note["user_id"]:
                s.send_json(sent)

    # -- WebSocket
    async def _websocket(self, reader, writer, target: str, headers: dict) -> None:
        upgrade = headers.get("upgrade", "").lower()
        connection = headers.get("connection", "").lower()
        key = headers.get("sec-websocket-key")
        if upgrade != "websocket" or "upgrade" not in connection or not key:
            writer.write(http_response(400, "Bad Request", b"No WebSocket UPGRADE hdr"))
            return
        guid = GUID if self.accept_mode == "correct" else "not-the-rfc-6455-guid"
        digest = hashlib.sha1((key + guid).encode()).digest()  # noqa: S324 - RFC 6455 mandates it
        accept = base64.b64encode(digest).decode()
        writer.write(
            (
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
            ).encode()
        )
        token = None
        auth = headers.get("authorization", "")
        if auth.startswith("Bearer "):
            token = auth[7:]
        elif "token" in parse_qs(urlsplit(target).query):
            token = parse_qs(urlsplit(target).query)["token"][0]
        else:
            try:
                opcode, data = await asyncio.wait_for(read_client_frame(reader), self.auth_timeout)
                msg = json.loads(data) if opcode == 0x1 else {}
                if msg.get("type") == "auth":
                    token = msg.get("token")
            except (TimeoutError, ValueError, AttributeError):
                pass
        user = verify_jwt(token, self.jwt_secret) if isinstance(token, str) else None
        if user is None:
            writer.write(server_frame(0x8, struct.pack("!H", 4401) + b"Unauthorized"))
            await writer.drain()
            # Wait (bounded) for the client's close echo, as a real server does.
            with contextlib.suppress(TimeoutError, asyncio.IncompleteReadError, ValueError):
                await asyncio.wait_for(read_client_frame(reader), 2)
            return
        session = Session(user, writer)
        self.sessions.append(session)
        session.send_json({"type": "welcome", "user_id": user})
        try:
            while True:
                opcode, data = await read_client_frame(reader)
                if opcode == 0x8:
                    writer.write(server_frame(0x8, data[:2]))
                    return
                if opcode == 0x9:
                    writer.write(server_frame(0xA, data))
                elif opcode == 0x1:
                    msg = json.loads(data)
                    if msg.get("type") == "ack":
                        self.acks.extend(msg.get("ids", []))
        finally:
            self.sessions.remove(session)
