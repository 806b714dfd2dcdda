"""``GET /ws``: upgrade, authenticate, register with the hub, read acks until the client leaves.

Refusals happen *after* the 101 with close code 4401: a browser's WebSocket API can see a
close code, but not the HTTP status of a failed upgrade.
"""

from __future__ import annotations

import logging

from aiohttp import WSMsgType, web

from . import protocol
from .api import respond
from .auth import AuthError, bearer_token, verify_token
from .hub import Connection
from .service import CLOSE_GRACE, SERVICE, Service

log = logging.getLogger("wsnotify.ws")

CLOSE_UNAUTHORIZED = 4401
CLOSE_TOO_MANY = 4429  # per-user connection limit reached (mirrors HTTP 429)
CLOSE_GOING_AWAY = 1001
MAX_CLIENT_MESSAGE = 64 * 1024


async def _token_from_first_message(ws: web.WebSocketResponse, timeout: float) -> str | None:
    """Wait for ``{"type":"auth","token":...}`` as the first message; None on anything else."""
    try:
        msg = await ws.receive(timeout=timeout)
    except TimeoutError:
        return None
    if msg.type is not WSMsgType.TEXT:
        return None
    try:
        message = protocol.parse_client_message(msg.data)
    except protocol.ValidationError:
        return None
    return message.token if isinstance(message, protocol.AuthMessage) else None


def _origin_allowed(request: web.Request, allowed: tuple[str, ...]) -> bool:
    # No allow-list: any origin. No Origin header: not a browser, nothing to protect against.
    origin = request.headers.get("Origin")
    return not allowed or origin is None or origin.rstrip("/").lower() in allowed


async def websocket_handler(request: web.Request) -> web.StreamResponse:
    svc = request.app[SERVICE]
    config = svc.config
    metrics = svc.metrics
    if not _origin_allowed(request, config.allowed_origins):
        metrics.handshake_origin_rejected.inc()
        log.info("websocket refused: origin not allowed, peer=%s", request.remote)
        return respond({"error": "Origin not allowed"}, 403)

    ws = web.WebSocketResponse(
        compress=False,  # permessage-deflate multiplies memory per connection
        heartbeat=config.ping_interval,
        timeout=CLOSE_GRACE,
        max_msg_size=MAX_CLIENT_MESSAGE,
    )
    await ws.prepare(request)
    transport = request.transport
    if transport is None:  # the client vanished during the handshake
        return ws
    svc.sockets[ws] = transport
    try:
        if svc.stopping:
            await ws.close(code=CLOSE_GOING_AWAY, message=b"Server shutting down")
            return ws
        token = bearer_token(request.headers.get("Authorization")) or request.query.get("token")
        if token is None:
            token = await _token_from_first_message(ws, config.auth_timeout)
        try:
            user_id = verify_token(token or "", svc.jwt)
        except AuthError as exc:
            metrics.handshake_unauthorized.inc()
            log.debug("websocket unauthorized: %s peer=%s", exc, request.remote)
            await ws.close(code=CLOSE_UNAUTHORIZED, message=b"Unauthorized")
            return ws
        conn = Connection(user_id, ws, transport, peer=request.remote or "")
        if not svc.hub.add(conn):
            metrics.handshake_over_limit.inc()
            log.info(
                "websocket refused: user=%s already has %d connections",
                user_id,
                config.max_connections_per_user,
            )
            await ws.close(code=CLOSE_TOO_MANY, message=b"Too many connections")
            return ws
        try:
            metrics.handshake_ok.inc()
            log.debug("websocket open: user=%s conn=%d peer=%s", user_id, conn.id, conn.peer)
            await ws.send_str(protocol.welcome(user_id))
            await _read_loop(svc, ws, conn)
        finally:
            svc.hub.remove(conn)
            log.debug("websocket closed: user=%s conn=%d code=%s", user_id, conn.id, ws.close_code)
    except ConnectionError:
        pass  # the peer went away mid-write; nothing to tell it
    finally:
        svc.sockets.pop(ws, None)
    return ws


async def _read_loop(svc: Service, ws: web.WebSocketResponse, conn: Connection) -> None:
    """Handle client messages: ``ack`` marks read; anything else is ignored."""
    async for msg in ws:
        if msg.type is not WSMsgType.TEXT:
            continue
        try:
            message = protocol.parse_client_message(msg.data)
        except protocol.ValidationError as exc:
            log.debug("ignored client message: %s user=%s", exc, conn.user_id)
            continue
        if isinstance(message, protocol.AckMessage) and message.ids:
            try:
                await svc.store.mark_read(conn.user_id, message.ids)
            except Exception as exc:  # keep the connection: the client can ack again later
                log.warning("ack not stored for user=%s: %s", conn.user_id, exc)
