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
   Redis subscription was rebuilt meanwhile). The connection then rejoins the fan-out.

No gap: ``publish`` inserts before it publishes, so a message this node received before step 1
was committed before step 2's snapshot and is replayed; one received after step 1 is held. No
duplicate: a held message that the replay also returned is dropped, by id. This module is the
pure part (held messages in, bytes out); ``Service`` runs the query and the write.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from . import protocol, rfc6455
from .protocol import Notification

RESYNC_FRAME = rfc6455.encode_text_frame(protocol.RESYNC.encode())


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

    def hold(self, payload: bytes, frame: bytes) -> int:
        """Keep a live message (its JSON ``payload``, its ready ``frame``); returns bytes held."""
        self.held.append((protocol.frame_notification_id(payload), frame))
        self.held_bytes += len(frame)
        return self.held_bytes

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
        sent = 0
        for notification_id, frame in self.held:
            if notification_id is not None and (
                notification_id <= self.after_id or notification_id in replayed
            ):
                continue  # the client has it (or just got it in the replay)
            frames.append(frame)
            sent += 1
        if self.resync:
            frames.append(RESYNC_FRAME)
        return Replay(
            data=b"".join(frames),
            replayed=len(replayed),
            held=sent,
            duplicates=len(self.held) - sent,
            complete=complete,
        )
