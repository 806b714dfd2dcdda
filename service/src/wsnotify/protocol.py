"""Wire formats and input validation: pure functions, no I/O, tested without sockets.

Everything a client or publisher can send is parsed here into small typed values, and
everything the service sends is built here, so the formats live in exactly one place.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from json.encoder import encode_basestring  # type: ignore[attr-defined]
from typing import Any

MAX_TITLE = 500
MAX_BODY = 10_000
MAX_IDS = 1000
MAX_USER_ID = 128
DEFAULT_LIMIT = 50
MAX_LIMIT = 100
MAX_PUBLISH_BYTES = 64 * 1024
MAX_PING_ID = 64  # characters of a string ping id

CHANNEL_PREFIX = "wsnotify"
BROADCAST_CHANNEL = f"{CHANNEL_PREFIX}:broadcast"
USER_CHANNEL_PATTERN = f"{CHANNEL_PREFIX}:user:*"
_USER_CHANNEL_PREFIX = f"{CHANNEL_PREFIX}:user:"

RESYNC = '{"type":"resync"}'
MAX_ID = 2**63 - 1  # notifications.id is a BIGINT

_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


class ValidationError(ValueError):
    """Client input is unusable; the message is safe to return in a 400 body."""


class BadAfterId(ValidationError):
    """A reconnecting client's ``after_id`` is unusable (the socket closes with 4400)."""


AFTER_ID_RULE = "after_id must be a non-negative integer: the id of the last notification received"


def parse_after_id(value: Any) -> int:
    """The recovery cursor: an integer, or its decimal digits (a query parameter; a JSON string
    for ids past JavaScript's 2**53)."""
    if isinstance(value, str) and value.isascii() and value.isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_ID:
        raise BadAfterId(AFTER_ID_RULE)
    return value


@dataclass(frozen=True)
class Notification:
    """One stored notification; ``user_id`` None means broadcast."""

    id: int
    user_id: str | None
    title: str
    body: str
    data: dict[str, Any]
    created_at: datetime

    def to_api(self) -> dict[str, Any]:
        """The object in REST listings (the WebSocket form minus ``type``)."""
        return {
            "id": self.id,
            "user_id": self.user_id,
            "title": self.title,
            "body": self.body,
            "data": self.data,
            "created_at": self.created_at.isoformat(),
        }

    def to_frame_json(self) -> str:
        """The WebSocket message, serialized once per publish and reused for every client."""
        return _dumps({"type": "notification", **self.to_api()})


# The welcome up to its user id, serialized once: per handshake only the id is encoded.
_WELCOME_HEAD = _dumps({"type": "welcome", "user_id": ""})[: -len('""}')]


def welcome(user_id: str) -> str:
    return _WELCOME_HEAD + encode_basestring(user_id) + "}"


def recovered(count: int, last_id: int, complete: bool) -> str:
    """Ends a replay: ``last_id`` is the client's cursor now; not ``complete``: the rest is
    fetched with ``GET /api/user/notifications?after_id=<last_id>``."""
    return _dumps({"type": "recovered", "count": count, "last_id": last_id, "complete": complete})


def pong(ping_id: str | int | None) -> str:
    """The answer to an application-level ping, its id echoed (``null`` when it had none)."""
    return _dumps({"type": "pong", "id": ping_id})


# What every ``to_frame_json`` starts with, up to the id's digits.
_NOTIFICATION_HEAD = _dumps({"type": "notification", "id": 0})[: -len("0}")].encode()


def frame_notification_id(frame_json: bytes) -> int | None:
    """The id of a ready-made notification message without parsing its JSON (None: another
    message). Used only for messages held while a connection recovers."""
    if not frame_json.startswith(_NOTIFICATION_HEAD):
        return None
    start = len(_NOTIFICATION_HEAD)
    end = frame_json.find(b",", start)
    digits = frame_json[start:end] if end > 0 else b""
    return int(digits) if digits.isdigit() else None


def user_channel(user_id: str) -> str:
    return _USER_CHANNEL_PREFIX + user_id


def user_from_channel(channel: str) -> str | None:
    """The user id of a per-user channel, None for the broadcast channel."""
    if channel.startswith(_USER_CHANNEL_PREFIX):
        return channel[len(_USER_CHANNEL_PREFIX) :]
    return None


def encode_envelope(published_at: float, frame_json: str) -> bytes:
    """Redis payload: publish time (for the latency metric) then the ready-made client message.

    Subscribers split at the first newline and forward the rest untouched: no JSON parsing
    on the fan-out path.
    """
    return f"{published_at:.6f}\n{frame_json}".encode()


def decode_envelope(payload: bytes) -> tuple[float | None, bytes]:
    head, sep, body = payload.partition(b"\n")
    if not sep:
        return None, payload
    try:
        return float(head), body
    except ValueError:
        return None, payload


@dataclass(frozen=True)
class AuthMessage:
    token: str
    after_id: int | None = None  # resume: replay what came after this id


@dataclass(frozen=True)
class AckMessage:
    ids: tuple[int, ...]


@dataclass(frozen=True)
class PingMessage:
    """An application-level ping (a browser cannot send ping frames); answered with a pong."""

    id: str | int | None = None


PING_ID_RULE = (
    f"ping id must be a string of at most {MAX_PING_ID} characters "
    "or an integer of absolute value below 2**53"
)


def _ping_id(message: Mapping[str, Any]) -> str | int | None:
    if "id" not in message:
        return None
    value = message["id"]
    if isinstance(value, str):
        if len(value) > MAX_PING_ID:
            raise ValidationError(PING_ID_RULE)
        try:
            value.encode("utf-8")  # a lone surrogate (JSON "\ud800") cannot go out as UTF-8
        except UnicodeEncodeError:
            raise ValidationError("ping id must be valid Unicode text") from None
        return value
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) < 2**53:
        return value
    raise ValidationError(PING_ID_RULE)


def _ids(value: Any, name: str) -> tuple[int, ...]:
    if not isinstance(value, list) or len(value) > MAX_IDS:
        raise ValidationError(f"{name} must be a list of at most {MAX_IDS} notification ids")
    ids = []
    for item in value:
        if isinstance(item, bool) or not isinstance(item, int) or not 0 < item < 2**63:
            raise ValidationError(f"{name} must contain positive integer ids")
        ids.append(item)
    return tuple(dict.fromkeys(ids))


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e400 parses as inf, which PostgreSQL's jsonb rejects
        raise ValueError("number out of range")
    return value


def _json_object(text: str | bytes) -> dict[str, Any]:
    try:
        value = json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float)
    except (ValueError, RecursionError):  # RecursionError: absurdly deep nesting
        raise ValidationError("body is not valid JSON") from None
    if not isinstance(value, dict):
        raise ValidationError("body must be a JSON object")
    return value


def parse_client_message(text: str) -> AuthMessage | AckMessage | PingMessage:
    """Parse a client's WebSocket text message."""
    message = _json_object(text)
    kind = message.get("type")
    if kind == "auth":
        token = message.get("token")
        if not isinstance(token, str):
            raise ValidationError("auth message needs a string token")
        after_id = message.get("after_id")
        return AuthMessage(token, None if after_id is None else parse_after_id(after_id))
    if kind == "ack":
        return AckMessage(_ids(message.get("ids"), "ids"))
    if kind == "ping":
        return PingMessage(_ping_id(message))
    raise ValidationError("unknown message type")


@dataclass(frozen=True)
class PublishRequest:
    """A validated publisher request; ``user_id`` None means broadcast."""

    user_id: str | None
    title: str
    body: str = ""
    data: dict[str, Any] = field(default_factory=dict)


def _text(message: Mapping[str, Any], name: str, limit: int, required: bool) -> str:
    value = message.get(name)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value.strip()):
        raise ValidationError(
            f"{name} must be a non-empty string" if required else f"{name} must be a string"
        )
    if len(value) > limit:
        raise ValidationError(f"{name} must be at most {limit} characters")
    return storable(value, name)


def _storable_tree(value: Any) -> None:
    if isinstance(value, str):
        storable(value, "data")
    elif isinstance(value, dict):
        for key, item in value.items():
            storable(key, "data")
            _storable_tree(item)
    elif isinstance(value, list):
        for item in value:
            _storable_tree(item)


def storable(text: str, name: str) -> str:
    """Refuse what PostgreSQL cannot store (NUL, lone surrogates) as bad input, not a 5xx."""
    if "\x00" in text:
        raise ValidationError(f"{name} must not contain NUL characters")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValidationError(f"{name} must be valid Unicode text") from None
    return text


def parse_user_id(value: Any) -> str:
    """Accept a string id, or an integer for clients of the old server that sent numbers."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value or len(value) > MAX_USER_ID:
        raise ValidationError(
            f"user_id must be a non-empty string of at most {MAX_USER_ID} characters"
        )
    return storable(value, "user_id")


def parse_publish(raw: bytes) -> PublishRequest:
    """Validate a ``POST /api/notifications`` body (size already checked by the caller)."""
    message = _json_object(raw)
    broadcast = message.get("broadcast", False)
    if not isinstance(broadcast, bool):
        raise ValidationError("broadcast must be true or false")
    has_user = message.get("user_id") is not None
    if broadcast == has_user:
        raise ValidationError('give exactly one of "user_id" or "broadcast": true')
    user_id = None if broadcast else parse_user_id(message["user_id"])
    data = message.get("data", {})
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ValidationError("data must be a JSON object")
    try:
        _storable_tree(data)
    except RecursionError:
        raise ValidationError("data is nested too deeply") from None
    return PublishRequest(
        user_id=user_id,
        title=_text(message, "title", MAX_TITLE, required=True),
        body=_text(message, "body", MAX_BODY, required=False),
        data=data,
    )


@dataclass(frozen=True)
class ReadRequest:
    """Mark these ids read, or (``all``) everything visible to the user."""

    ids: tuple[int, ...] = ()
    all: bool = False


def parse_read(raw: bytes) -> ReadRequest:
    message = _json_object(raw)
    if message.get("all") is True and "ids" not in message:
        return ReadRequest(all=True)
    if "ids" in message and "all" not in message:
        return ReadRequest(ids=_ids(message["ids"], "ids"))
    raise ValidationError('body must be {"ids": [...]} or {"all": true}')


@dataclass(frozen=True)
class ListQuery:
    unread: bool = False
    after_id: int = 0
    limit: int = DEFAULT_LIMIT


def parse_list_query(query: Mapping[str, str]) -> ListQuery:
    """Validate the query of ``GET /api/user/notifications``."""
    unread_raw = query.get("unread", "false").lower()
    if unread_raw not in ("true", "false", "1", "0"):
        raise ValidationError("unread must be true or false")
    after_id = parse_after_id(query.get("after_id", "0"))
    try:
        limit = int(query.get("limit", str(DEFAULT_LIMIT)))
    except ValueError:
        raise ValidationError("limit must be an integer") from None
    if not 1 <= limit <= MAX_LIMIT:
        raise ValidationError(f"limit must be between 1 and {MAX_LIMIT}")
    return ListQuery(unread=unread_raw in ("true", "1"), after_id=after_id, limit=limit)


def seconds_since(published_at: float | None, now: float) -> float | None:
    """Publish-to-send latency, or None when unknown or nonsensical (clock skew)."""
    if published_at is None or not math.isfinite(published_at):
        return None
    delta = now - published_at
    return delta if delta >= 0 else None
