"""``GET /ws`` on a callback-level core: one small object per connection, no task, no timer.

Every TCP connection to the port starts here (:class:`Connection` is the listening socket's
protocol). Its first request line decides: ``/ws`` is upgraded by this module; anything else is
handed, with the bytes read so far, to aiohttp's request handler (``transport.set_protocol``),
which serves the REST API on the same port. The reverse also happens: nginx reuses its
keep-alive upstream connections, so an upgrade can arrive as a later request on a connection
aiohttp owns; aiohttp's ``/ws`` route (:func:`adopt_upgrade`) then hands the connection back.

Per connection, after the handshake: the :class:`rfc6455.ServerProtocol` state, the transport,
the user id and two flags. The request bytes and headers are dropped once the 101 is written
(with the welcome frame, in one write). Time-based rules are sweeps over all connections:
the auth timeout and the close grace are :class:`timers.Deadlines`, keep-alive pings one
periodic timer (:class:`PingSweep`).

Refusals happen *after* the 101 with a close code (4401, 4429): a browser's WebSocket API sees
close codes, not the status of a failed upgrade. The Origin check is the exception (403 before
the upgrade: the browser must not get a socket at all).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web

from . import protocol, rfc6455
from .auth import AuthError, bearer_token, verify_token
from .rfc6455 import (
    AUTH,
    CLOSING,
    HANDSHAKE,
    OPEN,
    BinaryMessage,
    HandshakeError,
    Request,
    TextMessage,
)
from .service import Service
from .timers import Deadlines

log = logging.getLogger("wsnotify.ws")

WS_PATH = "/ws"
_WS_GET = (b"GET /ws ", b"GET /ws?")
CLOSE_BAD_REQUEST = 4400  # an unusable after_id (mirrors HTTP 400)
CLOSE_UNAUTHORIZED = 4401
CLOSE_TOO_MANY = 4429  # per-user connection limit reached (mirrors HTTP 429)
CLOSE_GRACE = 2.0  # seconds a client gets to answer our close frame before the socket is cut


def _peer(transport: Any) -> str:
    try:
        host, port = transport.get_extra_info("peername")[:2]
    except Exception:  # closed, or not TCP
        return "?"
    return f"{host}:{port}"


def _query_params(query: str) -> tuple[str | None, str | None]:
    """``token`` and ``after_id`` from the request's query (the first of each)."""
    token = after_id = None
    if query:
        for name, value in parse_qsl(query, keep_blank_values=True):
            if name == "token" and token is None:
                token = value
            elif name == "after_id" and after_id is None:
                after_id = value
    return token, after_id


class Connection(rfc6455.ServerProtocol, asyncio.Protocol):
    """One client connection: the listening socket's protocol, and the hub's member."""

    __slots__ = ("_bucket", "after_id", "closing", "core", "pinged", "transport", "user_id")

    def __init__(self, core: Core) -> None:
        super().__init__()
        self.core = core
        self.transport: asyncio.Transport | None = None
        self.user_id: str | None = None
        self.closing = False  # set once we decided to close it: the hub skips it
        self.pinged = False  # a ping went out and nothing came back since
        self.after_id: int | None = None  # resume after this id (recovery.py), until replayed
        self._bucket: set[Connection] | None = None  # the deadline it is waiting for

    def __repr__(self) -> str:
        return f"Connection(user={self.user_id!r}, state={self.state})"

    # ---- asyncio callbacks ----

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no subclass
        core = self.core
        core.sockets.add(self)
        # Handshake and first-message auth must be done within the auth timeout.
        self._bucket = core.auth_deadlines.add(self)

    def data_received(self, data: bytes) -> None:
        if self.state == HANDSHAKE:
            self._request_data(data)
            return
        self.pinged = False  # any frame proves the client is alive
        was = self.state
        for event in self.receive_data(data):
            if isinstance(event, TextMessage):
                if self.state == AUTH:
                    self._first_message(event.text)
                elif self.state == OPEN:
                    self._client_message(event.text)
            elif isinstance(event, rfc6455.PingReceived):
                if self.transport is not None:
                    self.transport.write(event.reply)
            elif isinstance(event, BinaryMessage):
                if self.state == AUTH:
                    self._authenticate("")
            else:  # CloseReceived or ProtocolFailure: answer, then close TCP
                if isinstance(event, rfc6455.ProtocolFailure):
                    log.debug("websocket protocol error %d: %s", event.code, event.reason)
                if was < CLOSING:
                    self._closing()
                if self.transport is not None:
                    self.transport.write(event.reply)
                    self.transport.close()  # the server closes TCP first (7.1.1)

    def eof_received(self) -> None:
        return None  # the transport closes itself; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        core = self.core
        self._leave_deadline()
        self.state = rfc6455.CLOSED
        self.closing = True
        if self.user_id is not None:
            core.svc.leave(self)
            log.debug("websocket closed: user=%s", self.user_id)
        self.transport = None
        core.forget(self)

    # ---- the opening handshake ----

    def _request_data(self, data: bytes) -> None:
        buf = self._buf + data if self._buf else data
        self._buf = None
        if not buf.startswith(_WS_GET):  # the common case needs no look at the request line
            line = rfc6455.request_line(buf)
            if line is None:  # the first line is still incomplete
                self._buf = buf
                return
            if line[1].partition("?")[0] != WS_PATH:
                self._hand_off(buf)  # not ours (or not HTTP): aiohttp answers it
                return
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            if len(buf) > rfc6455.MAX_HEAD:
                self._refuse(431, "request head too large")
            else:
                self._buf = buf
            return
        try:
            request = rfc6455.parse_request(buf[:end])
        except HandshakeError as exc:
            self._refuse(exc.status, exc.message, exc.headers)
            return
        self.handshake(request, buf[end + 4 :])

    def handshake(self, request: Request, rest: bytes = b"") -> None:
        """Upgrade (or refuse) a parsed request; ``rest`` is what followed it (frames)."""
        core = self.core
        try:
            key = rfc6455.check_upgrade(request)
        except HandshakeError as exc:
            self._refuse(exc.status, exc.message, exc.headers)
            return
        headers = request.headers
        if not core.origin_allowed(headers.get("origin")):
            core.metrics.handshake_origin_rejected.inc()
            log.info("websocket refused: origin not allowed, peer=%s", _peer(self.transport))
            self._refuse(403, "Origin not allowed")
            return
        response = rfc6455.accept_response(key)
        self.state = AUTH
        if core.stopping:
            self.close(*core.stop_close, response)
            return
        query_token, after_id = _query_params(request.query)
        if after_id is not None and not self._resume_after(after_id, response):
            return
        token = bearer_token(headers.get("authorization")) or query_token
        if token is None:
            self.transport.write(response)  # type: ignore[union-attr]
        else:
            self._authenticate(token, response)
        if rest:
            self.data_received(rest)

    def _refuse(self, status: int, message: str, headers: tuple[tuple[str, str], ...] = ()) -> None:
        """An HTTP error instead of the 101; the connection closes after it."""
        log.debug("websocket handshake refused: %d %s", status, message)
        self.state = rfc6455.CLOSED
        self._closing()
        transport = self.transport
        if transport is not None:
            transport.write(rfc6455.error_response(status, message, headers))
            transport.close()

    def _hand_off(self, data: bytes) -> None:
        """Give the connection to aiohttp as if it had accepted it, bytes read so far included."""
        transport = self.transport
        if transport is None:
            return
        self._leave_deadline()
        self.state = rfc6455.CLOSED
        self.transport = None
        self.core.forget(self)
        http = self.core.http_protocol()
        transport.set_protocol(http)
        http.connection_made(transport)
        http.data_received(data)

    # ---- authentication ----

    def _resume_after(self, value: str, prefix: bytes = b"") -> bool:
        """Take the query's recovery cursor; False (and closed) when it is unusable."""
        try:
            self.after_id = protocol.parse_after_id(value)
        except protocol.BadAfterId as exc:
            self._bad_after_id(exc, prefix)
            return False
        return True

    def _bad_after_id(self, exc: protocol.BadAfterId, prefix: bytes = b"") -> None:
        """Close with 4400 and the rule as the reason, before any token check."""
        log.debug("websocket refused: %s, peer=%s", exc, _peer(self.transport))
        self.close(CLOSE_BAD_REQUEST, str(exc).encode(), prefix)

    def _first_message(self, text: str) -> None:
        try:
            message = protocol.parse_client_message(text)
        except protocol.BadAfterId as exc:
            self._bad_after_id(exc)
            return
        except protocol.ValidationError:
            message = None
        if not isinstance(message, protocol.AuthMessage):
            self._authenticate("")
            return
        if message.after_id is not None:  # the auth message's cursor wins over the query's
            self.after_id = message.after_id
        self._authenticate(message.token)

    def _authenticate(self, token: str, prefix: bytes = b"") -> None:
        """Verify, register, welcome; ``prefix`` (the 101) goes out in the same write."""
        core = self.core
        cap = core.config.max_connections
        if cap and len(core.hub) >= cap:
            # Past the node's share of the capacity: "try again later", before spending a token
            # check. The client backs off and retries (service/README.md, the client contract).
            core.metrics.handshake_over_capacity.inc()
            log.warning("websocket refused: at capacity (%d connections)", cap)
            self.close(rfc6455.TRY_AGAIN_LATER, b"At capacity, try again later", prefix)
            return
        try:
            user_id = verify_token(token, core.jwt)
        except AuthError as exc:
            core.metrics.handshake_unauthorized.inc()
            log.debug("websocket unauthorized: %s peer=%s", exc, _peer(self.transport))
            self.close(CLOSE_UNAUTHORIZED, b"Unauthorized", prefix)
            return
        self.user_id = user_id
        after_id = self.after_id
        self.closing = after_id is not None  # a resuming client waits for its replay (below)
        if not core.hub.add(self):
            core.metrics.handshake_over_limit.inc()
            log.info(
                "websocket refused: user=%s already has %d connections",
                user_id,
                core.config.max_connections_per_user,
            )
            self.close(CLOSE_TOO_MANY, b"Too many connections", prefix)
            return
        self.state = OPEN
        self._leave_deadline()
        core.metrics.handshake_ok.inc()
        log.debug("websocket open: user=%s", user_id)
        self.transport.write(prefix + rfc6455.encode_text_frame(protocol.welcome(user_id).encode()))  # type: ignore[union-attr]
        if after_id is not None:
            self.after_id = None
            core.svc.recover(self, after_id)

    def _client_message(self, text: str) -> None:
        """``ack`` marks read; ``ping`` gets a pong; anything else is ignored."""
        try:
            message = protocol.parse_client_message(text)
        except protocol.ValidationError as exc:
            log.debug("ignored client message: %s user=%s", exc, self.user_id)
            return
        if isinstance(message, protocol.PingMessage):
            # Written at once, like the pong to a ping frame: the round trip is the socket's.
            if self.transport is not None:
                frame = rfc6455.encode_text_frame(protocol.pong(message.id).encode())
                self.transport.write(frame)
        elif isinstance(message, protocol.AckMessage) and message.ids:
            self.core.svc.spawn(self.core.svc.mark_read(self.user_id or "", message.ids))

    # ---- closing ----

    def close(self, code: int, reason: bytes, prefix: bytes = b"") -> None:
        """Start the closing handshake; the client gets CLOSE_GRACE to answer, then is cut."""
        if self.state >= CLOSING:
            return
        frame = self.send_close(code, reason)
        self._closing()
        if self.transport is not None:
            self.transport.write(prefix + frame)

    def _closing(self) -> None:
        """Out of the fan-out now, and aborted if still connected after CLOSE_GRACE (a client
        that does not read, or does not answer our close frame)."""
        self.closing = True
        if self.user_id is not None:
            self.core.svc.leave(self)
        self._leave_deadline()
        self._bucket = self.core.close_deadlines.add(self)

    def _leave_deadline(self) -> None:
        if self._bucket is not None:
            self._bucket.discard(self)
            self._bucket = None


class PingSweep:
    """Keep-alive for every connection with one timer: every ``interval`` a ping goes to each
    open connection; one that has sent nothing half an interval later is closed (1011).

    The ping also keeps proxies from timing out idle connections (nginx's proxy_read_timeout).
    """

    def __init__(self, core: Core, interval: float) -> None:
        self._core = core
        self._half = interval / 2
        self._checking = False
        self._timer: asyncio.TimerHandle | None = None

    def start(self) -> None:
        self._timer = asyncio.get_running_loop().call_later(self._half, self._tick)

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _tick(self) -> None:
        self._timer = asyncio.get_running_loop().call_later(self._half, self._tick)
        core = self._core
        if self._checking:
            silent = [c for c in core.hub if c.pinged and not c.closing]
            for conn in silent:
                log.info("websocket closed: user=%s did not answer a ping", conn.user_id)
                conn.close(rfc6455.INTERNAL_ERROR, b"Ping timeout")  # type: ignore[attr-defined]
        else:
            frame = rfc6455.PING_FRAME
            for conn in core.hub:
                if conn.closing or conn.transport is None:
                    continue
                conn.pinged = True  # type: ignore[attr-defined]
                try:
                    conn.transport.write(frame)
                except Exception:  # torn down under us; connection_lost cleans up
                    conn.closing = True
        self._checking = not self._checking


class Core:
    """What every connection of one process shares: settings, the hub, the deadlines."""

    def __init__(self, svc: Service) -> None:
        loop = asyncio.get_running_loop()
        self.svc = svc
        self.config = svc.config
        self.metrics = svc.metrics
        self.hub = svc.hub
        self.jwt = svc.jwt
        self._origins = self.config.allowed_origins
        # Every connection of ours not yet lost, so shutdown can close each with 1001.
        self.sockets: set[Connection] = set()
        self.stopping = False
        # The close every WebSocket gets at shutdown, set by close_all (1012 or 1001).
        self.stop_close: tuple[int, bytes] = (rfc6455.GOING_AWAY, b"Server shutting down")
        self._all_gone: asyncio.Event | None = None
        self.auth_deadlines: Deadlines[Connection] = Deadlines(
            loop, self.config.auth_timeout, self._auth_expired
        )
        self.close_deadlines: Deadlines[Connection] = Deadlines(loop, CLOSE_GRACE, _abort)
        self.pings = PingSweep(self, self.config.ping_interval)
        # aiohttp's request-handler factory (``AppRunner.server``), set once it exists.
        self.http_protocol: Callable[[], asyncio.Protocol] = _no_http

    def protocol(self) -> Connection:
        """The listening socket's protocol factory."""
        return Connection(self)

    def origin_allowed(self, origin: str | None) -> bool:
        # No allow-list: any origin. No Origin header: not a browser, nothing to protect against.
        allowed = self._origins
        return not allowed or origin is None or origin.rstrip("/").lower() in allowed

    def forget(self, conn: Connection) -> None:
        self.sockets.discard(conn)
        if not self.sockets and self._all_gone is not None:
            self._all_gone.set()

    def _auth_expired(self, conn: Connection) -> None:
        conn._bucket = None
        if conn.state == HANDSHAKE:  # never finished its request: not a WebSocket yet
            if conn.transport is not None:
                conn.transport.close()
        elif conn.state == AUTH:
            self.metrics.handshake_unauthorized.inc()
            log.debug("websocket unauthorized: no token within the auth timeout")
            conn.close(CLOSE_UNAUTHORIZED, b"Unauthorized")

    def upgraded(self) -> int:
        """Connections past the 101 (authenticated or still authenticating)."""
        return sum(1 for conn in self.sockets if conn.state != HANDSHAKE)

    async def close_all(self, code: int, reason: bytes, grace: float = CLOSE_GRACE) -> int:
        """Close every connection (WebSockets with ``code``) and wait up to ``grace`` for them
        to go; cut the rest. Returns how many WebSockets were open."""
        self.stopping = True
        self.stop_close = (code, reason)
        self.pings.stop()
        count = 0
        for conn in list(self.sockets):
            # One still in its opening handshake (accepted just before the listener closed: a
            # request may be on its way) gets the grace to finish it: a WebSocket is answered
            # 101 and closed with ``code`` (handshake), an HTTP request goes to aiohttp, which
            # answers it before its own shutdown. Closed unanswered, nginx would say 502.
            if conn.state == HANDSHAKE:
                continue
            count += 1
            conn.close(code, reason)
        if self.sockets:
            self._all_gone = asyncio.Event()
            try:
                await asyncio.wait_for(self._all_gone.wait(), grace)
            except TimeoutError:
                log.warning("%d connections did not close in %.1fs; cut", len(self.sockets), grace)
        for conn in list(self.sockets):
            _abort(conn)
        await asyncio.sleep(0)  # let connection_lost run for the aborted ones
        self.auth_deadlines.close()
        self.close_deadlines.close()
        return count


def _abort(conn: Connection) -> None:
    conn._bucket = None
    if conn.transport is not None:
        conn.transport.abort()


def _no_http() -> asyncio.Protocol:
    raise RuntimeError("the HTTP handler is not set up yet")


CORE: web.AppKey[Core] = web.AppKey("core", Core)


async def adopt_upgrade(request: web.Request) -> web.StreamResponse:
    """``GET /ws`` that reached aiohttp: an upgrade on a kept-alive connection (nginx reuses
    its upstream connections across locations). Take the connection back from aiohttp and run
    the same handshake as on a fresh one.

    aiohttp's handler first loses its transport reference (so it cannot close it), then is
    told the connection is gone (``connection_lost``): it stops its keep-alive timer and its
    request loop, and the response returned here is never written. Bytes a
    client sent after the request, before the 101, stay with aiohttp: nginx sends none.
    """
    transport = request.transport
    if transport is None:
        return web.Response(status=400)
    headers = rfc6455.header_map(
        f"{name.decode('latin-1')}:{value.decode('latin-1')}" for name, value in request.raw_headers
    )
    version = f"HTTP/{request.version.major}.{request.version.minor}"
    conn = request.app[CORE].protocol()
    transport.set_protocol(conn)
    handler = request.protocol
    handler.transport = None
    handler.connection_lost(None)
    conn.connection_made(transport)
    conn.handshake(Request(request.method, request.raw_path, version, headers))
    return web.Response()
