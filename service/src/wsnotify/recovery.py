"""Resuming a connection from the durable store: what it missed, then live, each exactly once.

A client that reconnects with ``after_id`` (the last id it saw) goes through three steps:

1. At authentication the connection joins the hub but stays out of the fan-out (its
   ``closing`` flag stays set, so the hub's loop skips it without a check of its own); every
   live message for it is appended to its :class:`Recovery` instead (``Service.deliver``).
2. One short-lived task reads PostgreSQL: the notifications the user can see (own and
   broadcast: the query of ``GET /api/user/notifications``) with id > ``after_id``, oldest
   first, at most the replay limit plus one row (to know whether there is more).
3. One write: the replayed rows, ``{"type":"recovered",...}``, then the held messages that
   were not replayed and are above ``after_id``, in arrival order (and ``resync`` if the
   Redis subscription was rebuilt meanwhile).
4. For :data:`SETTLE_SECONDS` more, live messages are still written by ``Service`` with the
   same check (not replayed, above ``after_id``); then the connection rejoins the fan-out.

No gap: ``publish`` inserts before it publishes, so a message this node received before step 1
was committed before step 2's snapshot and is replayed; one received after step 1 is held. No
duplicate: a live copy of a replayed notification is dropped, by id. Such a copy can arrive
after the replay is written, too: its row was committed before the snapshot but its publish
through Redis was still on its way (step 4). This module is the pure part (messages in, bytes
out, the check); ``Service`` runs the query, the writes and the timer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from . import protocol, rfc6455
from .protocol import Notification

RESYNC_FRAME = rfc6455.encode_text_frame(protocol.RESYNC.encode())
# How long after its replay a connection's live messages are still checked against it: longer
# than a notification takes from its commit to this node through Redis (milliseconds, unless a
# publisher stalls between the two; a copy later than this would reach the client twice).
SETTLE_SECONDS = 2.0


@dataclass(frozen=True)
class Replay:
    """What one recovery sends, and its counts (for the metrics)."""

    data: bytes
    replayed: int
    held: int
    duplicates: int
    complete: bool


@dataclass(slots=True)
class Recovery:
    """One recovering connection: its cursor and the live messages held while the store is read."""

    user_id: str
    after_id: int
    held: list[tuple[int | None, bytes]] = field(default_factory=list)
    held_bytes: int = 0
    resync: bool = False
    replayed: frozenset[int] | None = None  # set once the replay is written (settling)

    def hold(self, notification_id: int | None, frame: bytes) -> int:
        """Keep a live message (its id, None for another kind; its ready frame); returns the
        bytes held."""
        self.held.append((notification_id, frame))
        self.held_bytes += len(frame)
        return self.held_bytes

    def is_new(self, notification_id: int | None) -> bool:
        """Whether the client lacks this live message: not at or below its cursor, not replayed."""
        return notification_id is None or (
            notification_id > self.after_id
            and (self.replayed is None or notification_id not in self.replayed)
        )

    def finish(self, rows: Sequence[Notification], limit: int, max_bytes: int) -> Replay:
        """The replay of ``rows`` (the store's answer, oldest first, up to ``limit + 1``), then
        the held messages. At most ``limit`` rows and about ``max_bytes`` are replayed; past
        either, ``recovered`` says ``complete: false`` and the client pages the API from
        ``last_id``."""
        frames: list[bytes] = []
        size = 0
        replayed: set[int] = set()
        last_id = self.after_id
        for row in rows[:limit]:
            frame = rfc6455.encode_text_frame(row.to_frame_json().encode())
            if frames and size + len(frame) > max_bytes:
                break
            frames.append(frame)
            size += len(frame)
            replayed.add(row.id)
            last_id = row.id
        complete = len(frames) == len(rows)
        message = protocol.recovered(len(frames), last_id, complete)
        frames.append(rfc6455.encode_text_frame(message.encode()))
        self.replayed = frozenset(replayed)
        held, self.held = self.held, []
        sent = 0
        for notification_id, frame in held:
            if self.is_new(notification_id):
                frames.append(frame)
                sent += 1
        if self.resync:
            frames.append(RESYNC_FRAME)
        return Replay(
            data=b"".join(frames),
            replayed=len(replayed),
            held=sent,
            duplicates=len(held) - sent,
            complete=complete,
        )
