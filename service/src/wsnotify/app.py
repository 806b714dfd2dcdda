"""The process lifecycle of ``wsnotify serve``, and the aiohttp application for the REST API.

Start: wait until PostgreSQL and Redis both answer (retrying with backoff, logging why), check
the schema version, subscribe, listen, and only then send READY=1. Stop (SIGTERM/SIGINT):
STOPPING=1, stop accepting, close every WebSocket with 1001 concurrently, release the
backends; every step is bounded so the process is gone within 5 seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from . import api, protocol, rfc6455, ws
from .bus import Publisher, Subscriber
from .config import Config, scrub
from .db import SchemaError, Store
from .metrics import Metrics
from .service import SERVICE, Service
from .systemd import Notifier

log = logging.getLogger("wsnotify.app")

# The listen backlog: connections the kernel completes while no process accepts (a restart, a
# burst of reconnects). Linux caps it at net.core.somaxconn (per network namespace: 4096 by
# default since 5.4, a container has its own); asking for the most means that sysctl decides.
# wsnotify.socket (role wsnotify) asks the same.
BACKLOG = 65535

BACKOFF_MAX = 5.0
# Shutdown budget (systemd's default stop timeout is far longer; we promise 5 s): clients get
# ws.CLOSE_GRACE (2 s), the HTTP server 1 s, the backends RELEASE_TIMEOUT.
RELEASE_TIMEOUT = 1.0


@web.middleware
async def _errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Turn an unexpected exception into a logged, JSON 500 (bad input never gets here)."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return api.respond({"error": exc.reason}, exc.status)
    except (asyncio.CancelledError, ConnectionError):
        raise
    except Exception:
        log.exception("unhandled error in %s %s", request.method, request.path)
        return api.respond({"error": "internal error"}, 500)


def build_app(svc: Service, core: ws.Core) -> web.Application:
    """The REST API. ``/ws`` is here only for upgrades on kept-alive connections (see ws.py)."""
    app = web.Application(client_max_size=protocol.MAX_PUBLISH_BYTES, middlewares=[_errors])
    app[SERVICE] = svc
    app[ws.CORE] = core
    app.router.add_get(ws.WS_PATH, ws.adopt_upgrade)
    app.router.add_get("/api/user/notifications", api.list_notifications)
    app.router.add_post("/api/user/notifications/read", api.mark_read)
    app.router.add_post("/api/notifications", api.publish_notification)
    app.router.add_get("/healthz", api.healthz)
    app.router.add_get("/metrics", api.metrics)
    return app


async def _stopped_within(stop: asyncio.Event, seconds: float) -> bool:
    """Sleep up to ``seconds``; True as soon as ``stop`` is set."""
    try:
        await asyncio.wait_for(stop.wait(), seconds)
    except TimeoutError:
        return False
    return True


@dataclass
class Backends:
    """The backend clients opened so far; ``release`` closes whichever exist."""

    store: Store | None = None
    publisher: Publisher | None = None
    subscriber: Subscriber | None = None

    async def release(self) -> None:
        """Close the backends concurrently, within RELEASE_TIMEOUT overall."""
        closers = []
        if self.subscriber is not None:
            closers.append(self.subscriber.stop())
        if self.publisher is not None:
            closers.append(self.publisher.close())
        if self.store is not None:
            closers.append(self.store.close())
        results = asyncio.gather(*closers, return_exceptions=True)
        try:
            outcomes = await asyncio.wait_for(results, RELEASE_TIMEOUT)
        except TimeoutError:
            log.warning("backends not released within %.1fs; exiting anyway", RELEASE_TIMEOUT)
            return
        for outcome in outcomes:
            if isinstance(outcome, Exception):
                log.warning("backend not released cleanly: %s", outcome)


async def _connect_backends(
    config: Config, stop: asyncio.Event, notifier: Notifier, backends: Backends
) -> tuple[Store, Publisher] | None:
    """Retry until PostgreSQL and Redis both answer; None if asked to stop meanwhile.
    What it opens is in ``backends`` at once, for the caller to release."""
    publisher = backends.publisher = Publisher(config.redis_url.reveal())
    backoff = 0.2
    while True:
        problems = []
        try:
            if backends.store is None:
                backends.store = await Store.connect(config.database_url.reveal())
            await backends.store.ping()
        except Exception as exc:
            problems.append(f"postgres ({config.database_display}): {scrub(exc, config)}")
        try:
            await publisher.ping()
        except Exception as exc:
            problems.append(f"redis ({config.redis_display}): {scrub(exc, config)}")
        if not problems and backends.store is not None:
            return backends.store, publisher
        status = "waiting for " + "; ".join(problems)
        log.warning("%s; retrying in %.1fs", status, backoff)
        notifier.notify(f"STATUS={status}")
        if await _stopped_within(stop, backoff):
            return None
        backoff = min(backoff * 2, BACKOFF_MAX)


async def _first(work: Awaitable[None], stop: asyncio.Event) -> bool:
    """Run ``work`` unless ``stop`` comes first; True when the work finished."""
    working = asyncio.ensure_future(work)
    stopping = asyncio.ensure_future(stop.wait())
    await asyncio.wait({working, stopping}, return_when=asyncio.FIRST_COMPLETED)
    for future in (working, stopping):
        future.cancel()
    return not stop.is_set()


async def _bounded(work: Awaitable[None], seconds: float, what: str) -> None:
    try:
        await asyncio.wait_for(work, seconds)
    except TimeoutError:
        log.warning("%s timed out after %.1fs; exiting anyway", what, seconds)


async def _watchdog(notifier: Notifier, usec: int) -> None:
    """WATCHDOG=1 at half the interval systemd expects; sent from the loop, it proves the loop."""
    interval = usec / 2_000_000
    while True:
        notifier.notify("WATCHDOG=1")
        await asyncio.sleep(interval)


async def serve(config: Config) -> int:
    """Run until SIGTERM/SIGINT; return the process exit code.

    Everything acquired is pushed on one exit stack as it is acquired, so every way out
    (stopped early, schema mismatch, port in use, normal shutdown) releases exactly what
    exists, in reverse order, each step bounded.
    """
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with contextlib.AsyncExitStack() as stack:
        notifier = Notifier(config.notify_socket)
        stack.callback(notifier.close)
        log.info(
            "starting: listen=%s:%d postgres=%s redis=%s",
            config.host,
            config.port,
            config.database_display,
            config.redis_display,
        )
        backends = Backends()
        stack.push_async_callback(backends.release)
        connected = await _connect_backends(config, stop, notifier, backends)
        if connected is None:
            log.info("stopped before the backends answered")
            return 0
        store, publisher = connected
        try:
            await store.check_schema()
        except SchemaError as exc:
            log.error("%s", exc)
            return 1
        except Exception as exc:  # PostgreSQL went away between the ping and the check
            log.error("cannot read the schema version: %s; restarting is safe", scrub(exc, config))
            return 1

        metrics = Metrics()
        svc = Service(config=config, metrics=metrics, store=store, publisher=publisher)
        svc.subscriber = backends.subscriber = Subscriber(
            config.redis_url.reveal(), deliver=svc.deliver, on_resync=svc.resync, metrics=metrics
        )
        if not await _first(svc.subscriber.start(), stop):
            return 0

        core = ws.Core(svc)
        runner = web.AppRunner(build_app(svc, core), access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        stack.push_async_callback(_bounded, runner.cleanup(), 1.0, "http server cleanup")
        core.http_protocol = runner.server  # type: ignore[assignment]
        try:
            if config.listen_fd is not None:
                # Socket activation: systemd holds the socket across restarts, so clients that
                # connect while no process serves wait in its backlog instead of being refused.
                listener = socket.socket(fileno=config.listen_fd)
                listener.setblocking(False)
                # asyncio calls listen() again on it: the same backlog as wsnotify.socket's.
                server = await loop.create_server(core.protocol, sock=listener, backlog=BACKLOG)
                where = f"the socket systemd passed ({listener.getsockname()})"
            else:
                server = await loop.create_server(
                    core.protocol, config.host, config.port, backlog=BACKLOG
                )
                where = f"{config.host}:{config.port}"
        except OSError as exc:
            log.error(
                "cannot listen on %s:%d: %s (is another process using the port? set WSNOTIFY_PORT)",
                config.host,
                config.port,
                exc.strerror or exc,
            )
            return 1
        stack.callback(server.close)
        core.pings.start()
        stack.callback(core.pings.stop)

        notifier.notify("READY=1", f"STATUS=serving on {where}")
        log.info("ready: listening on %s", where)
        if config.watchdog_usec and notifier.enabled:
            watchdog = loop.create_task(_watchdog(notifier, config.watchdog_usec))
            stack.callback(watchdog.cancel)

        await stop.wait()

        started = time.monotonic()
        notifier.notify("STOPPING=1")
        server.close()  # stop accepting
        # With an inherited socket the port outlives this process: this is a restart (the next
        # process takes over the backlog), so clients are told 1012 and reconnect; bound by
        # hand, the port goes away with us: 1001.
        if config.listen_fd is not None:
            code, reason = rfc6455.SERVICE_RESTART, b"Service restart, reconnect"
        else:
            code, reason = rfc6455.GOING_AWAY, b"Server shutting down"
        log.info("shutting down: closing %d connections with %d", core.upgraded(), code)
        closed = await core.close_all(code, reason)
    log.info("stopped: %d connections closed in %.2fs", closed, time.monotonic() - started)
    return 0
