"""The connection registry and the fan-out: who is connected, and writing to them fast.

Fan-out is a plain synchronous loop: for each target, check its transport's write buffer and
write the pre-built frame. There is no ``await`` per client, so a client that does not read
cannot hold up anyone else; it only grows its own buffer until it crosses the limit, and is
then handed to ``on_drop`` (which closes it with 1013 in the background).

The hub knows transports only through the tiny :class:`Transport` protocol, so it is tested
with fakes, without sockets.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable
from typing import Protocol

from .metrics import Metrics


class Transport(Protocol):
    """The subset of ``asyncio.Transport`` the fan-out uses."""

    def write(self, data: bytes) -> None: ...

    def get_write_buffer_size(self) -> int: ...

    def is_closing(self) -> bool: ...


class Socket(Protocol):
    """The subset of the WebSocket response the hub looks at."""

    @property
    def closed(self) -> bool: ...


_ids = itertools.count(1)


class Connection:
    """One authenticated client. ``closing`` is set once we decided to close it."""

    __slots__ = ("closing", "id", "peer", "transport", "user_id", "ws")

    def __init__(self, user_id: str, ws: Socket, transport: Transport, peer: str = "") -> None:
        self.id = next(_ids)
        self.user_id = user_id
        self.ws = ws
        self.transport = transport
        self.peer = peer
        self.closing = False

    def __repr__(self) -> str:
        return f"Connection(id={self.id}, user={self.user_id!r})"


class Hub:
    """Local connections by user, and the synchronous fan-out over them."""

    def __init__(
        self,
        *,
        send_buffer_limit: int,
        max_connections_per_user: int,
        metrics: Metrics,
        on_drop: Callable[[Connection], None],
    ) -> None:
        self._limit = send_buffer_limit
        self._max_per_user = max_connections_per_user
        self._metrics = metrics
        self._on_drop = on_drop
        self._by_user: dict[str, set[Connection]] = {}
        self._all: set[Connection] = set()

    def __len__(self) -> int:
        return len(self._all)

    @property
    def connections(self) -> frozenset[Connection]:
        return frozenset(self._all)

    def add(self, conn: Connection) -> bool:
        """Register ``conn``; False (and nothing registered) when its user is at the limit."""
        mine = self._by_user.get(conn.user_id)
        if mine is None:
            mine = self._by_user[conn.user_id] = set()
        elif len(mine) >= self._max_per_user:
            return False
        mine.add(conn)
        self._all.add(conn)
        self._metrics.connections.set(len(self._all))
        return True

    def remove(self, conn: Connection) -> None:
        if conn not in self._all:
            return
        self._all.discard(conn)
        mine = self._by_user.get(conn.user_id)
        if mine is not None:
            mine.discard(conn)
            if not mine:
                del self._by_user[conn.user_id]
        self._metrics.connections.set(len(self._all))

    def deliver_user(self, user_id: str, frame: bytes) -> int:
        """Write ``frame`` to every connection of ``user_id``; returns how many got it."""
        targets = self._by_user.get(user_id)
        if not targets:
            return 0
        return self._write(targets, frame)

    def deliver_all(self, frame: bytes) -> int:
        """Write ``frame`` to every connection (broadcasts and resync)."""
        return self._write(self._all, frame)

    def _write(self, targets: Iterable[Connection], frame: bytes) -> int:
        # Hot loop: locals only, one buffer check and one write per target. on_drop only
        # schedules work, so ``targets`` cannot change while we iterate.
        limit = self._limit - len(frame)
        delivered = 0
        dropped: list[Connection] = []
        for conn in targets:
            if conn.closing:
                continue
            transport = conn.transport
            if conn.ws.closed or transport.is_closing():
                continue
            if transport.get_write_buffer_size() > limit:
                conn.closing = True
                dropped.append(conn)
                continue
            try:
                transport.write(frame)
            except Exception:  # a transport torn down under us: its handler cleans up
                conn.closing = True
                continue
            delivered += 1
        if delivered:
            self._metrics.deliveries.inc(delivered)
        for conn in dropped:
            self._metrics.slow_drops.inc()
            self._on_drop(conn)
        return delivered
