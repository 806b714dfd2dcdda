"""The load generator: many non-blocking WebSocket (or raw TCP) clients on one asyncio loop.

Why a hand-written ``asyncio.Protocol`` rather than a client library: with 10,000 sockets on one
core the client's own per-message cost would hide the server's. A protocol callback that stamps
``perf_counter_ns`` on arrival and hands the bytes to the project's one client state machine,
``module_utils/ws_protocol.py``'s ``ClientProtocol`` (the one the Ansible modules drive), is the
cheapest thing Python can do per socket without a second WebSocket implementation: the upgrade
is validated (101, Sec-WebSocket-Accept, no unoffered extension), pings answered, the closing
handshake run, and a bug in the client shows up here and is fixed once.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

# module_utils/ lives at the project root, which is not on sys.path when bench/ runs.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from module_utils.ws_protocol import (
    CONNECTING,
    OP_CLOSE,
    OP_TEXT,
    OPEN,
    ClientProtocol,
    WebSocketError,
    WsUrl,
)

HeadersFor = Callable[[int], dict[str, str]]


class Arrivals:
    """Collects the first text frame each armed client receives; resolves once all have one."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.count = 0
        self.first_ns = 0
        self.last_ns = 0
        self.payload = b""
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def hit(self, now_ns: int, payload: bytes) -> None:
        if self.count == 0:
            self.first_ns = now_ns
            self.payload = payload
        self.count += 1
        self.last_ns = now_ns
        if self.count >= self.expected and not self.done.done():
            self.done.set_result(None)


class Client(asyncio.Protocol):
    """One connection. ``url`` None means raw TCP (the floor): open as soon as connected, and
    the frames the raw server sends are parsed from the first byte."""

    __slots__ = (
        "arrivals",
        "close_code",
        "closed",
        "handshaking",
        "headers",
        "keep_texts",
        "opened",
        "protocol",
        "texts",
        "transport",
        "url",
        "want_welcome",
    )

    def __init__(self, url: WsUrl | None, headers: dict[str, str], want_welcome: bool) -> None:
        loop = asyncio.get_running_loop()
        self.url = url
        self.headers = headers
        self.want_welcome = want_welcome
        self.protocol = ClientProtocol(state=CONNECTING if url is not None else OPEN)
        self.handshaking = url is not None
        self.opened: asyncio.Future[None] = loop.create_future()
        self.closed: asyncio.Future[None] = loop.create_future()
        self.transport: asyncio.Transport | None = None
        self.arrivals: Arrivals | None = None
        self.close_code: int | None = None
        self.texts: list[bytes] = []
        self.keep_texts = False

    # asyncio callbacks -------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no subclass
        if self.url is None:
            self.opened.set_result(None)
        else:
            self.protocol.send_request(self.url, headers=self.headers)
            transport.write(self.protocol.data_to_send())  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        # Stamp first: the time the bytes reached us, not when we finished decoding them.
        now = time.perf_counter_ns() if self.arrivals is not None else 0
        protocol = self.protocol
        try:
            protocol.receive_data(data)
        except WebSocketError as exc:
            self._fail(f"from the server: {exc}")
            return
        out = protocol.data_to_send()  # pongs, the echo of a close
        if out:
            self.transport.write(out)  # type: ignore[union-attr]
        if self.handshaking and protocol.state != CONNECTING:
            self.handshaking = False
            if not self.want_welcome and not self.opened.done():
                self.opened.set_result(None)
        for event in protocol.events_received():
            if event[0] == OP_TEXT:
                self._text(event[1], now)
            elif event[0] == OP_CLOSE:
                self.close_code = event[1] if event[1] is not None else 1005

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.opened.done():
            why = f"close code {self.close_code}" if self.close_code else f"{exc or 'EOF'}"
            try:
                self.protocol.receive_eof()  # mid-handshake: says what was missing
            except WebSocketError as err:
                why = str(err)
            self.opened.set_exception(ConnectionError(f"connection lost before open: {why}"))
        if not self.closed.done():
            self.closed.set_result(None)

    def eof_received(self) -> bool:
        return False  # let the transport close; connection_lost follows

    def _text(self, payload: bytes, now: int) -> None:
        if not self.opened.done():
            self.opened.set_result(None)  # the welcome message
            return
        if self.arrivals is not None:
            arrivals, self.arrivals = self.arrivals, None
            arrivals.hit(now or time.perf_counter_ns(), payload)
        if self.keep_texts:
            self.texts.append(payload)

    def _fail(self, why: str) -> None:
        self.handshaking = False
        if not self.opened.done():
            self.opened.set_exception(ConnectionError(why))
        if self.transport is not None:
            out = self.protocol.data_to_send()  # our close naming a protocol error
            if out and not self.transport.is_closing():
                self.transport.write(out)
            self.transport.close()

    # actions -----------------------------------------------------------------------------
    def close(self) -> None:
        """Start a clean close (the server is expected to close TCP first, RFC 6455 7.1.1)."""
        if self.transport is None or self.transport.is_closing():
            return
        if self.url is None:
            self.transport.close()
            return
        self.protocol.send_close(1000)
        out = self.protocol.data_to_send()
        if out:
            self.transport.write(out)

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()


@dataclass
class Target:
    """Where and how to connect: ``path`` None means raw TCP."""

    port: int
    path: str | None = "/ws"
    headers_for: HeadersFor = field(default=lambda _i: {})
    want_welcome: bool = False


async def connect(target: Target, index: int, timeout: float = 10.0) -> Client:
    """Open one client and wait until it is usable (101, plus welcome when expected)."""
    loop = asyncio.get_running_loop()
    if target.path is None:
        url, headers = None, {}
    else:
        url = WsUrl("ws", "127.0.0.1", target.port, target.path)
        headers = target.headers_for(index)
    _transport, client = await asyncio.wait_for(
        loop.create_connection(
            lambda: Client(url, headers, target.want_welcome),
            "127.0.0.1",
            target.port,
        ),
        timeout,
    )
    try:
        await asyncio.wait_for(asyncio.shield(client.opened), timeout)
    except BaseException:
        client.abort()
        raise
    return client


async def open_many(target: Target, count: int, concurrency: int = 64) -> list[Client]:
    """Open ``count`` clients with at most ``concurrency`` handshakes in flight."""
    clients: list[Client] = []
    next_index = iter(range(count))

    async def worker() -> None:
        for i in next_index:
            clients.append(await connect(target, i))

    workers = [asyncio.create_task(worker()) for _ in range(min(concurrency, count))]
    try:
        await asyncio.gather(*workers)
    except BaseException:
        for w in workers:
            w.cancel()
        await close_many(clients)
        raise
    return clients


async def close_many(clients: list[Client], timeout: float = 10.0) -> None:
    """Close every client and wait (bounded) until the server has closed too; abort stragglers."""
    for c in clients:
        c.close()
    pending = [c.closed for c in clients if not c.closed.done()]
    if pending:
        _done, rest = await asyncio.wait(pending, timeout=timeout)
        if rest:
            for c in clients:
                if not c.closed.done():
                    c.abort()


async def handshake_loop(target: Target, seconds: float, concurrency: int) -> tuple[int, int, str]:
    """Open, (welcome,) clean close, repeat, for ``seconds``.

    Returns (completed, failed, first failure's text). A handshake counts once the server has
    closed TCP after the close handshake, so the server's CPU for the whole life is included.
    """
    deadline = time.monotonic() + seconds
    done = [0, 0]
    first_error: list[str] = []
    counter = iter(range(1 << 30))

    async def worker() -> None:
        while time.monotonic() < deadline:
            try:
                client = await connect(target, next(counter))
                client.close()
                await asyncio.wait_for(asyncio.shield(client.closed), 5)
                done[0] += 1
            except (OSError, TimeoutError) as exc:
                done[1] += 1
                first_error.append(f"{type(exc).__name__}: {exc}")
                if done[1] > 50 and done[1] > done[0]:
                    raise RuntimeError(f"handshakes mostly failing: {first_error[0]}") from exc

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return done[0], done[1], first_error[0] if first_error else ""


async def wait_arrivals(
    clients: list[Client], trigger: Callable[[], object], timeout: float
) -> tuple[Arrivals, int]:
    """Arm every client, run ``trigger`` (sync or async), wait until each got one text frame.

    Returns the arrivals and the trigger time (perf_counter_ns, same clock as the arrivals).
    """
    arrivals = Arrivals(len(clients))
    for c in clients:
        c.arrivals = arrivals
    t0 = time.perf_counter_ns()
    result = trigger()
    if asyncio.iscoroutine(result):
        await result
    try:
        await asyncio.wait_for(asyncio.shield(arrivals.done), timeout)
    except TimeoutError as exc:
        raise RuntimeError(
            f"only {arrivals.count} of {len(clients)} clients received the message within "
            f"{timeout:.0f} s"
        ) from exc
    finally:
        for c in clients:
            c.arrivals = None
    return arrivals, t0
