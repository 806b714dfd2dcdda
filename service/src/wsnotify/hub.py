"""The connection registry and the fan-out: who is connected, and writing to them fast.

Fan-out is a plain synchronous loop: for each target, check its transport's write buffer and
write the pre-built frame. There is no ``await`` per client, so a client that does not read
cannot hold up anyone else; it only grows its own buffer until it crosses the limit, and is
then handed to ``on_drop`` (which closes it with 1013).

The hub knows connections only through the tiny :class:`Member` protocol (a user id, a
transport, a ``closing`` flag), so it is tested with fakes, without sockets. A connection leaves
the hub as soon as it starts closing, so the loop never meets a closed transport; ``closing``
guards the rest of the loop in which it was dropped.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator
from typing import Protocol

from .metrics import Metrics


class Transport(Protocol):
    """The subset of ``asyncio.Transport`` the fan-out uses."""

    def write(self, data: bytes) -> None: ...

    def get_write_buffer_size(self) -> int: ...


class Member(Protocol):
    """What the hub needs of a connection (``ws.Connection`` in the service)."""

    user_id: str | None
    transport: Transport | None
    closing: bool

    def close(self, code: int, reason: bytes) -> None: ...


class Hub:
    """Local connections by user, and the synchronous fan-out over them.

    Memory: a user with one connection maps to the connection itself; only a second one
    makes a set (most users have one connection, and an empty set costs ~200 bytes).
    """

    def __init__(
        self,
        *,
        send_buffer_limit: int,
        max_connections_per_user: int,
        metrics: Metrics,
        on_drop: Callable[[Member], None],
    ) -> None:
        self._limit = send_buffer_limit
        self._max_per_user = max_connections_per_user
        self._metrics = metrics
        self._on_drop = on_drop
        self._by_user: dict[str, Member | set[Member]] = {}
        self._all: set[Member] = set()
        # Read at scrape time: no metric update (and no lock) per connect and disconnect.
        metrics.connections.set_function(self.__len__)

    def __len__(self) -> int:
        return len(self._all)

    def __iter__(self) -> Iterator[Member]:
        """A snapshot, safe to iterate while connections come and go."""
        return iter(list(self._all))

    def add(self, conn: Member) -> bool:
        """Register ``conn``; False (and nothing registered) when its user is at the limit."""
        user = conn.user_id or ""  # only authenticated connections join the hub
        mine = self._by_user.get(user)
        if mine is None:
            self._by_user[user] = conn
        elif isinstance(mine, set):
            if len(mine) >= self._max_per_user:
                return False
            mine.add(conn)
        else:
            if self._max_per_user < 2:
                return False
            self._by_user[user] = {mine, conn}
        self._all.add(conn)
        return True

    def remove(self, conn: Member) -> None:
        if conn not in self._all:
            return
        self._all.discard(conn)
        user = conn.user_id or ""
        mine = self._by_user.get(user)
        if mine is conn:
            del self._by_user[user]
        elif isinstance(mine, set):
            mine.discard(conn)
            if len(mine) == 1:
                self._by_user[user] = mine.pop()

    def deliver_user(self, user_id: str, frame: bytes) -> int:
        """Write ``frame`` to every connection of ``user_id``; returns how many got it."""
        targets = self._by_user.get(user_id)
        if targets is None:
            return 0
        return self._write(targets if isinstance(targets, set) else (targets,), frame)

    def deliver_all(self, frame: bytes) -> int:
        """Write ``frame`` to every connection (broadcasts and resync)."""
        return self._write(self._all, frame)

    def _write(self, targets: Collection[Member], frame: bytes) -> int:
        # Hot loop: locals only, one buffer check and one write per target. on_drop runs
        # after the loop, so ``targets`` cannot change while we iterate.
        limit = self._limit - len(frame)
        delivered = 0
        dropped: list[Member] = []
        for conn in targets:
            if conn.closing:
                continue
            transport = conn.transport
            try:
                if transport.get_write_buffer_size() > limit:  # type: ignore[union-attr]
                    conn.closing = True
                    dropped.append(conn)
                    continue
                transport.write(frame)  # type: ignore[union-attr]
            except Exception:  # a transport torn down under us: connection_lost cleans up
                conn.closing = True
                continue
            delivered += 1
        if delivered:
            self._metrics.deliveries.inc(delivered)
        for conn in dropped:
            self._metrics.slow_drops.inc()
            self._on_drop(conn)
        return delivered
