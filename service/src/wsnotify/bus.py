"""Redis pub/sub: publishing, and the one supervised subscription per process.

One connection per process ``PSUBSCRIBE``s ``wsnotify:user:*`` and ``SUBSCRIBE``s
``wsnotify:broadcast``; the channel name routes a message, the payload is forwarded untouched.
(Every node sees every user's traffic and drops what it has no connection for: no per-user
SUBSCRIBE churn, no race between a client connecting and its channel being subscribed.)

redis-py's own reconnect would resubscribe silently, and clients would never learn that
messages were lost meanwhile. So retries are disabled on the subscriber connection and this
module runs the loop itself: on any error it backs off, reconnects, resubscribes, and only
*after* the subscription is confirmed tells every client ``{"type":"resync"}`` - a client that
then fetches from the API cannot miss anything.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from . import protocol
from .metrics import Metrics

log = logging.getLogger("wsnotify.bus")

KEEPALIVE_INTERVAL = 5.0  # PING the subscriber connection when idle this long...
DEAD_AFTER = 15.0  # ...and treat it as dead when nothing at all came back for this long.
BACKOFF_START = 0.1
BACKOFF_MAX = 5.0


def redis_client(url: str, *, for_pubsub: bool = False) -> aioredis.Redis:
    """A client that fails fast, so nothing hangs a request.

    Commands get one immediate retry on a fresh connection (the pooled one may have died with
    a Redis restart); the subscriber gets none, because its reconnects must be seen.
    """
    return aioredis.Redis.from_url(
        url,
        socket_connect_timeout=2.0,
        socket_timeout=None if for_pubsub else 2.0,
        socket_keepalive=True,
        retry=Retry(NoBackoff(), 0 if for_pubsub else 1),
        decode_responses=False,
    )


class Publisher:
    """Publishes ready-made client messages to the right channel."""

    def __init__(self, url: str) -> None:
        self._client = redis_client(url)

    async def publish(self, user_id: str | None, frame_json: str) -> None:
        channel = protocol.BROADCAST_CHANNEL if user_id is None else protocol.user_channel(user_id)
        await self._client.publish(channel, protocol.encode_envelope(time.time(), frame_json))

    async def ping(self) -> None:
        await self._client.ping()

    async def close(self) -> None:
        await self._client.aclose()


Deliver = Callable[[str | None, float | None, bytes], None]


class Subscriber:
    """The supervised subscription; calls ``deliver(user_id|None, published_at, payload)``.

    ``on_resync`` runs after every *re*-subscription (not the first one).
    """

    def __init__(
        self,
        url: str,
        *,
        deliver: Deliver,
        on_resync: Callable[[], None],
        metrics: Metrics,
    ) -> None:
        self._url = url
        self._deliver = deliver
        self._on_resync = on_resync
        self._metrics = metrics
        self._task: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()
        self._ever_subscribed = False

    @property
    def subscribed(self) -> bool:
        return self._subscribed.is_set()

    async def start(self) -> None:
        """Start the loop and wait until the first subscription is confirmed."""
        self._task = asyncio.get_running_loop().create_task(self._run(), name="redis-subscriber")
        waiter = asyncio.ensure_future(self._subscribed.wait())
        done, _ = await asyncio.wait({waiter, self._task}, return_when=asyncio.FIRST_COMPLETED)
        if self._task in done:
            waiter.cancel()
            self._task.result()  # re-raise whatever stopped it

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _run(self) -> None:
        backoff = BACKOFF_START
        while True:
            try:
                await self._session()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # any failure: back off and rebuild the session
                if self._subscribed.is_set():
                    log.warning("redis subscription lost: %s; reconnecting", _reason(exc))
                    backoff = BACKOFF_START
                else:
                    log.warning(
                        "redis subscriber cannot connect: %s; retrying in %.1fs",
                        _reason(exc),
                        backoff,
                    )
            self._set_subscribed(False)
            await asyncio.sleep(backoff * (0.5 + random.random() / 2))  # noqa: S311 (jitter)
            backoff = min(backoff * 2, BACKOFF_MAX)

    def _set_subscribed(self, value: bool) -> None:
        if value:
            self._subscribed.set()
        else:
            self._subscribed.clear()
        self._metrics.redis_subscribed.set(1 if value else 0)

    async def _session(self) -> None:
        client = redis_client(self._url, for_pubsub=True)
        pubsub = client.pubsub()
        try:
            await pubsub.psubscribe(protocol.USER_CHANNEL_PATTERN)
            await pubsub.subscribe(protocol.BROADCAST_CHANNEL)
            pending = {b"psubscribe", b"subscribe"}
            deadline = time.monotonic() + DEAD_AFTER
            while pending:
                if time.monotonic() > deadline:
                    raise TimeoutError("no subscribe confirmation from redis")
                message = await pubsub.get_message(timeout=1.0)
                if message is not None:
                    pending.discard(_bytes(message["type"]))
            first = not self._ever_subscribed
            self._ever_subscribed = True
            self._set_subscribed(True)
            if first:
                log.info("redis subscription active")
            else:
                self._metrics.redis_reconnects.inc()
                log.info("redis subscription restored; telling clients to resync")
                self._on_resync()
            await self._pump(pubsub)
        finally:
            with contextlib.suppress(Exception):  # already broken: nothing left to release
                await pubsub.aclose()
                await client.aclose()

    async def _pump(self, pubsub: aioredis.client.PubSub) -> None:
        deliver = self._deliver
        last_seen = time.monotonic()
        pinged = False
        while True:
            message = await pubsub.get_message(timeout=KEEPALIVE_INTERVAL)
            now = time.monotonic()
            if message is None:
                if now - last_seen > DEAD_AFTER:
                    raise TimeoutError(f"redis silent for {DEAD_AFTER:.0f}s")
                if not pinged or now - last_seen > KEEPALIVE_INTERVAL:
                    await pubsub.ping()
                    pinged = True
                continue
            last_seen = now
            kind = message["type"]
            if kind == "pmessage" or kind == b"pmessage":
                user_id: str | None = protocol.user_from_channel(
                    _bytes(message["channel"]).decode("utf-8", "replace")
                )
                if user_id is None:
                    continue
            elif kind == "message" or kind == b"message":
                user_id = None
            else:
                continue  # pong, subscribe confirmations
            published_at, payload = protocol.decode_envelope(message["data"])
            deliver(user_id, published_at, payload)


def _bytes(value: str | bytes) -> bytes:
    return value if isinstance(value, bytes) else value.encode()


def _reason(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0][:200].rstrip(". ")
