"""The load generator: many non-blocking WebSocket (or raw TCP) clients on one asyncio loop.

Why a hand-written ``asyncio.Protocol`` rather than a client library: with 10,000 sockets on one
core the client's own per-message cost would hide the server's. A protocol callback that parses
one small frame and stamps ``perf_counter_ns`` is the cheapest thing Python can do per socket.
Handshake bytes and frames come from ``wsframes`` (the single client-side wire implementation).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import wsframes

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
    """One connection. ``request`` None means raw TCP (the floor): open as soon as connected."""

    def __init__(self, request: bytes | None, key: str, want_welcome: bool) -> None:
        loop = asyncio.get_running_loop()
        self.request = request
        self.key = key
        self.want_welcome = want_welcome
        self.opened: asyncio.Future[None] = loop.create_future()
        self.closed: asyncio.Future[None] = loop.create_future()
        self.transport: asyncio.Transport | None = None
        self.handshaking = request is not None
        self.buf = bytearray()
        self.arrivals: Arrivals | None = None
        self.close_code: int | None = None
        self.texts: list[bytes] = []
        self.keep_texts = False

    # asyncio callbacks -------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no subclass
        if self.request is None:
            self.opened.set_result(None)
        else:
            transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        # Stamp first: the time the bytes reached us, not when we finished decoding them.
        now = time.perf_counter_ns() if self.arrivals is not None else 0
        self.buf += data
        if self.handshaking:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buf[:end])
            del self.buf[: end + 4]
            self.handshaking = False
            problem = wsframes.check_upgrade(head, self.key)
            if problem is not None:
                self._fail(problem)
                return
            if not self.want_welcome and not self.opened.done():
                self.opened.set_result(None)
        try:
            self._frames(now)
        except wsframes.ProtocolError as exc:
            self._fail(f"protocol error from the server: {exc}")

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.opened.done():
            why = f"close code {self.close_code}" if self.close_code else f"{exc or 'EOF'}"
            self.opened.set_exception(ConnectionError(f"connection lost before open: {why}"))
        if not self.closed.done():
            self.closed.set_result(None)

    def eof_received(self) -> bool:
        return False  # let the transport close; connection_lost follows

    # frames ------------------------------------------------------------------------------
    def _frames(self, now: int) -> None:
        while True:
            parsed = wsframes.parse_frame(self.buf)
            if parsed is None:
                return
            opcode, payload, used = parsed
            del self.buf[:used]
            if opcode == wsframes.OP_TEXT:
                self._text(payload, now)
            elif opcode == wsframes.OP_PING and self.transport is not None:
                self.transport.write(wsframes.encode_frame(wsframes.OP_PONG, payload))
            elif opcode == wsframes.OP_CLOSE:
                self.close_code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
                if self.transport is not None and not self.transport.is_closing():
                    self.transport.write(wsframes.close_frame(1000))

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
            self.transport.close()

    # actions -----------------------------------------------------------------------------
    def close(self) -> None:
        """Start a clean close (the server is expected to close TCP first, RFC 6455 7.1.1)."""
        if self.transport is None or self.transport.is_closing():
            return
        if self.request is None:
            self.transport.close()
        else:
            self.transport.write(wsframes.close_frame(1000))

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
        request, key = None, ""
    else:
        key = wsframes.new_key()
        request = wsframes.upgrade_request(
            "127.0.0.1", target.port, target.path, key, target.headers_for(index)
        )
    _transport, client = await asyncio.wait_for(
        loop.create_connection(
            lambda: Client(request, key, target.want_welcome),
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
