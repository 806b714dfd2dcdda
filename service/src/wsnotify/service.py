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

from . import protocol, rfc6455
from .auth import JwtSettings
from .bus import Publisher, Subscriber
from .config import Config
from .db import Store
from .hub import Hub, Member
from .metrics import Metrics
from .recovery import SETTLE_SECONDS, Recovery

log = logging.getLogger("wsnotify.service")

SEND_BUFFER_FULL = b"Send buffer full"  # the reason of a 1013 for a client that does not read


class StorageUnavailable(Exception):
    """PostgreSQL did not take the write; the caller answers 503."""


def _brief(exc: BaseException) -> str:
    """A backend error's first line, for one log line."""
    return str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__


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
            _brief(exc),
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
    # Connections resuming with after_id (out of the fan-out until their replay is written).
    recovering: dict[Member, Recovery] = field(default_factory=dict)
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
        frame = rfc6455.encode_text_frame(payload)
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
        if self.recovering:  # empty (one falsy check per message) unless clients are resuming
            self._to_recovering(user_id, payload, frame)

    def resync(self) -> None:
        count = self.hub.deliver_all(rfc6455.encode_text_frame(protocol.RESYNC.encode()))
        for recovery in self.recovering.values():
            recovery.resync = True  # sent after its replay
        log.info("resync sent to %d connections", count)

    # ---- recovery (service/src/wsnotify/recovery.py has the why) ----

    def recover(self, conn: Member, after_id: int) -> None:
        """Replay to ``conn`` what came after ``after_id``, then (SETTLE_SECONDS later) let it
        into the fan-out.

        The caller has registered it in the hub with ``closing`` set, so from now on its live
        messages come through ``_to_recovering``, not the hub's loop."""
        recovery = Recovery(conn.user_id or "", after_id)
        self.recovering[conn] = recovery
        self.spawn(self._replay(conn, recovery))

    def leave(self, conn: Member) -> None:
        """``conn`` is closing or gone: out of the hub, and of any recovery."""
        self.hub.remove(conn)
        if self.recovering:
            self.recovering.pop(conn, None)

    def _to_recovering(self, user_id: str | None, payload: bytes, frame: bytes) -> None:
        """A live message for the connections the hub skips because they are recovering: held
        while their replay is read, afterwards (settling) written unless they already have it."""
        limit = self.config.send_buffer_limit
        notification_id = protocol.frame_notification_id(payload)
        over = []
        duplicates = 0
        for conn, recovery in self.recovering.items():
            if user_id is not None and recovery.user_id != user_id:
                continue
            if recovery.replayed is None:
                if recovery.hold(notification_id, frame) > limit:
                    over.append(conn)
            elif not recovery.is_new(notification_id):
                duplicates += 1
            elif conn.transport is not None:
                if conn.transport.get_write_buffer_size() > limit - len(frame):
                    over.append(conn)
                else:
                    conn.transport.write(frame)
        if duplicates:
            self.metrics.recovered.labels("duplicate").inc(duplicates)
        for conn in over:
            self.metrics.slow_drops.inc()
            log.warning("slow client dropped with 1013 while recovering: user=%s", conn.user_id)
            conn.close(rfc6455.TRY_AGAIN_LATER, SEND_BUFFER_FULL)

    async def _replay(self, conn: Member, recovery: Recovery) -> None:
        limit = self.config.recovery_limit
        query = protocol.ListQuery(after_id=recovery.after_id, limit=limit + 1)
        try:
            rows = await self.store.list_for(recovery.user_id, query)
            if not rows:  # nothing missed, or a cursor from elsewhere (another database)
                newest = await self.store.newest_id()
                if newest < recovery.after_id:  # resume from the newest; again, for what
                    recovery.after_id = newest  # was committed between the two queries
                    query = protocol.ListQuery(after_id=newest, limit=limit + 1)
                    rows = await self.store.list_for(recovery.user_id, query)
        except Exception as exc:
            if self.recovering.get(conn) is recovery:
                self.metrics.recoveries.labels("failed").inc()
                log.warning(
                    "recovery failed for user=%s (postgres: %s); closed with 1013",
                    recovery.user_id,
                    _brief(exc),
                )
                conn.close(rfc6455.TRY_AGAIN_LATER, b"Recovery unavailable, try again later")
            return
        if self.recovering.get(conn) is not recovery or conn.transport is None:
            return  # closed while the store was read
        replay = recovery.finish(rows, limit, self.config.send_buffer_limit // 2)
        conn.transport.write(replay.data)
        asyncio.get_running_loop().call_later(SETTLE_SECONDS, self._settled, conn, recovery)
        metrics = self.metrics
        metrics.recoveries.labels("complete" if replay.complete else "partial").inc()
        metrics.recovered.labels("replayed").inc(replay.replayed)
        metrics.recovered.labels("held").inc(replay.held)
        metrics.recovered.labels("duplicate").inc(replay.duplicates)
        log.debug(
            "recovered user=%s after_id=%d: %d replayed, %d held, %d duplicates, complete=%s",
            recovery.user_id,
            recovery.after_id,
            replay.replayed,
            replay.held,
            replay.duplicates,
            replay.complete,
        )

    def _settled(self, conn: Member, recovery: Recovery) -> None:
        """The replay's live copies have passed: the connection rejoins the fan-out."""
        if self.recovering.get(conn) is recovery:
            del self.recovering[conn]
            conn.closing = False

    def _drop_slow(self, conn: Member) -> None:
        transport = conn.transport
        log.warning(
            "slow client dropped with 1013: user=%s buffered=%d limit=%d",
            conn.user_id,
            transport.get_write_buffer_size() if transport is not None else 0,
            self.config.send_buffer_limit,
        )
        # The close frame queues behind what the client did not read; if it still has not
        # read it CLOSE_GRACE later, the transport is aborted, which frees the memory.
        conn.close(rfc6455.TRY_AGAIN_LATER, SEND_BUFFER_FULL)

    async def mark_read(self, user_id: str, ids: tuple[int, ...]) -> None:
        """A WebSocket ``ack``; failures keep the connection (the client can ack again)."""
        try:
            await self.store.mark_read(user_id, ids)
        except Exception as exc:
            log.warning("ack not stored for user=%s: %s", user_id, exc)

    def spawn(self, coro: object) -> None:
        """Run a background coroutine, keeping a reference so it is not garbage-collected."""
        task = asyncio.get_running_loop().create_task(coro)  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


SERVICE: web.AppKey[Service] = web.AppKey("service", Service)
