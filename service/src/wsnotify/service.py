"""The running service: its parts wired together, and the one publish path.

``Service`` owns the hub, the backends and the metrics; the HTTP/WS handlers and the CLI call
its methods. ``publish`` is the single "persist, then publish" used by both the publisher
endpoint and ``wsnotify publish``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field

from aiohttp import web

from . import protocol
from .auth import JwtSettings
from .bus import Publisher, Subscriber
from .config import Config
from .db import Store
from .hub import Connection, Hub
from .metrics import Metrics

log = logging.getLogger("wsnotify.service")

CLOSE_GRACE = 2.0  # seconds a client gets to answer our close frame before the socket is cut


class StorageUnavailable(Exception):
    """PostgreSQL did not take the write; the caller answers 503."""


async def publish(
    store: Store, publisher: Publisher, metrics: Metrics, request: protocol.PublishRequest
) -> tuple[protocol.Notification, bool]:
    """Persist, then publish; returns the notification and whether Redis took it.

    The notification exists once this returns, delivered or not.

    A Redis failure after the insert is logged and counted but not raised: the row is the
    source of truth, and a Redis outage makes every subscriber resync from it anyway.
    """
    try:
        notification = await store.insert(request)
    except Exception as exc:
        raise StorageUnavailable(str(exc).splitlines()[0][:200] if str(exc) else "error") from exc
    try:
        await publisher.publish(notification.user_id, notification.to_frame_json())
    except Exception as exc:
        metrics.published.labels("failed").inc()
        log.warning(
            "notification %d stored but not published (redis: %s); clients get it on resync",
            notification.id,
            str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__,
        )
        return notification, False
    metrics.published.labels("ok").inc()
    return notification, True


@dataclass
class Service:
    """Everything a handler needs, built once per process."""

    config: Config
    metrics: Metrics
    store: Store
    publisher: Publisher
    jwt: JwtSettings = field(init=False)
    hub: Hub = field(init=False)
    subscriber: Subscriber | None = None
    # Every open WebSocket, authenticated or not, so shutdown can close each with 1001.
    sockets: dict[web.WebSocketResponse, asyncio.BaseTransport] = field(default_factory=dict)
    stopping: bool = False
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.jwt = JwtSettings.from_config(self.config)
        self.hub = Hub(
            send_buffer_limit=self.config.send_buffer_limit,
            max_connections_per_user=self.config.max_connections_per_user,
            metrics=self.metrics,
            on_drop=self._drop_slow,
        )

    # ---- fan-out (called synchronously by the subscriber for every Redis message) ----

    def deliver(self, user_id: str | None, published_at: float | None, payload: bytes) -> None:
        frame = protocol.encode_text_frame(payload)
        started = time.perf_counter()
        if user_id is None:
            count = self.hub.deliver_all(frame)
            histogram = self.metrics.fanout_broadcast
        else:
            count = self.hub.deliver_user(user_id, frame)
            histogram = self.metrics.fanout_user
        if count:
            histogram.observe(time.perf_counter() - started)
            latency = protocol.seconds_since(published_at, time.time())
            if latency is not None:
                self.metrics.latency.observe(latency)

    def resync(self) -> None:
        count = self.hub.deliver_all(protocol.encode_text_frame(protocol.RESYNC.encode()))
        log.info("resync sent to %d connections", count)

    def _drop_slow(self, conn: Connection) -> None:
        buffered = conn.transport.get_write_buffer_size()
        log.warning(
            "slow client dropped with 1013: user=%s conn=%d peer=%s buffered=%d limit=%d",
            conn.user_id,
            conn.id,
            conn.peer,
            buffered,
            self.config.send_buffer_limit,
        )
        self.spawn(close_socket(conn.ws, conn.transport, 1013, b"Send buffer full"))

    def spawn(self, coro: object) -> None:
        """Run a background coroutine, keeping a reference so it is not garbage-collected."""
        task = asyncio.get_running_loop().create_task(coro)  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close_all(self, code: int, reason: bytes, grace: float = CLOSE_GRACE) -> int:
        """Close every WebSocket with ``code`` concurrently; returns how many were open."""
        sockets = list(self.sockets.items())
        if sockets:
            await asyncio.gather(
                *(close_socket(ws, transport, code, reason, grace) for ws, transport in sockets),
                return_exceptions=True,
            )
        return len(sockets)


SERVICE: web.AppKey[Service] = web.AppKey("service", Service)


async def close_socket(
    ws: web.WebSocketResponse,
    transport: asyncio.BaseTransport,
    code: int,
    reason: bytes,
    grace: float = CLOSE_GRACE,
) -> None:
    """Send a close frame, give the client ``grace`` seconds, then cut the socket if needed.

    ``drain=False``: a client that does not read must not make us wait on its buffer. If the
    buffer has not drained by the deadline, the transport is aborted: that frees the memory
    instead of holding it for as long as the peer keeps the TCP connection open.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + grace
    clean = False
    try:
        await asyncio.wait_for(ws.close(code=code, message=reason, drain=False), grace)
        clean = True
    except Exception as exc:  # timeout or a broken transport: either way, cut it below
        log.debug("close %d not completed cleanly: %s", code, type(exc).__name__)
    try:
        while clean and _buffered(transport) and loop.time() < deadline:
            await asyncio.sleep(0.05)
    finally:
        if not clean or _buffered(transport):
            transport.abort()


def _buffered(transport: asyncio.BaseTransport) -> int:
    try:
        return transport.get_write_buffer_size()  # type: ignore[attr-defined]
    except Exception:  # already torn down
        return 0
