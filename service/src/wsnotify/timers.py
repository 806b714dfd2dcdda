"""Deadlines for many connections with one timer: no timer (and no task) per connection.

A connection that must reach some state in time (authenticated within the auth timeout, gone
within the close grace) joins the bucket of its deadline, rounded up to ``resolution``. Every
member of a bucket shares one timeout, so buckets are created in deadline order; one
``call_at`` waits for the oldest. Leaving early is ``bucket.discard(member)``, O(1), so the
common case (a client that authenticates at once) costs a set insert and a set removal.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Deadlines(Generic[T]):
    """Members that expire ``timeout`` seconds after joining, unless they leave first."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        timeout: float,
        on_expire: Callable[[T], None],
        resolution: float = 0.1,
    ) -> None:
        self._loop = loop
        self._timeout = timeout
        self._on_expire = on_expire
        self._resolution = resolution
        self._buckets: dict[int, set[T]] = {}  # slot -> members; insertion order = slot order
        self._timer: asyncio.TimerHandle | None = None

    def __len__(self) -> int:
        return sum(len(bucket) for bucket in self._buckets.values())

    def add(self, member: T) -> set[T]:
        """Start ``member``'s clock; returns its bucket (``discard`` from it to leave)."""
        slot = math.ceil((self._loop.time() + self._timeout) / self._resolution)
        bucket = self._buckets.get(slot)
        if bucket is None:
            bucket = self._buckets[slot] = set()
            if self._timer is None:
                self._arm(slot)
        bucket.add(member)
        return bucket

    def close(self) -> None:
        """Stop the timer and forget every member (shutdown)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._buckets.clear()

    def _arm(self, slot: int) -> None:
        self._timer = self._loop.call_at(slot * self._resolution, self._fire)

    def _fire(self) -> None:
        self._timer = None
        now = self._loop.time()
        while self._buckets:
            slot = next(iter(self._buckets))
            if slot * self._resolution > now + 0.001:  # timers may fire a hair early
                self._arm(slot)
                return
            for member in self._buckets.pop(slot):
                self._on_expire(member)
