"""REST endpoints: user listing and read marks, the publisher endpoint, health and metrics.

Every error body is JSON; bad input is always a 4xx, never a 500.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from aiohttp import web

from . import protocol
from .auth import AuthError, bearer_token, publisher_allowed, verify_token
from .service import SERVICE, StorageUnavailable, publish

log = logging.getLogger("wsnotify.api")

HEALTH_TIMEOUT = 2.0
_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def respond(body: Any, status: int = 200) -> web.Response:
    return web.Response(
        text=_dumps(body), status=status, content_type="application/json", charset="utf-8"
    )


def unauthorized() -> web.Response:
    return respond({"error": "Authentication required"}, 401)


def bad_request(message: str) -> web.Response:
    return respond({"error": message}, 400)


def unavailable(message: str) -> web.Response:
    return respond({"error": message}, 503)


async def _body(request: web.Request) -> bytes | web.Response:
    """The request body, or a 413 response when it exceeds the publish limit."""
    if (request.content_length or 0) > protocol.MAX_PUBLISH_BYTES:
        return respond({"error": f"body larger than {protocol.MAX_PUBLISH_BYTES} bytes"}, 413)
    try:
        return await request.read()  # bounded by the app's client_max_size as well
    except web.HTTPRequestEntityTooLarge:
        return respond({"error": f"body larger than {protocol.MAX_PUBLISH_BYTES} bytes"}, 413)


def _user(request: web.Request) -> str | None:
    svc = request.app[SERVICE]
    token = bearer_token(request.headers.get("Authorization"))
    if token is None:
        return None
    try:
        return verify_token(token, svc.jwt)
    except AuthError:
        return None


async def list_notifications(request: web.Request) -> web.Response:
    user_id = _user(request)
    if user_id is None:
        return unauthorized()
    try:
        query = protocol.parse_list_query(request.query)
    except protocol.ValidationError as exc:
        return bad_request(str(exc))
    try:
        rows = await request.app[SERVICE].store.list_for(user_id, query)
    except Exception as exc:
        log.warning("listing failed for user=%s: %s", user_id, exc)
        return unavailable("storage unavailable, retry later")
    return respond({"notifications": [n.to_api() for n in rows]})


async def mark_read(request: web.Request) -> web.Response:
    user_id = _user(request)
    if user_id is None:
        return unauthorized()
    raw = await _body(request)
    if isinstance(raw, web.Response):
        return raw
    try:
        read = protocol.parse_read(raw)
    except protocol.ValidationError as exc:
        return bad_request(str(exc))
    try:
        updated = await request.app[SERVICE].store.mark_read(
            user_id, None if read.all else read.ids
        )
    except Exception as exc:
        log.warning("mark read failed for user=%s: %s", user_id, exc)
        return unavailable("storage unavailable, retry later")
    return respond({"updated": updated})


async def publish_notification(request: web.Request) -> web.Response:
    svc = request.app[SERVICE]
    if not publisher_allowed(
        request.headers.get("Authorization"), svc.config.publish_token.reveal()
    ):
        return unauthorized()
    raw = await _body(request)
    if isinstance(raw, web.Response):
        return raw
    try:
        publish_request = protocol.parse_publish(raw)
    except protocol.ValidationError as exc:
        return bad_request(str(exc))
    try:
        notification, _ = await publish(svc.store, svc.publisher, svc.metrics, publish_request)
    except StorageUnavailable as exc:
        log.warning("publish refused, postgres unavailable: %s", exc)
        return unavailable("storage unavailable, retry later")
    return respond({"id": notification.id}, 202)


async def _probe(check: Any) -> str:
    try:
        await asyncio.wait_for(check(), HEALTH_TIMEOUT)
    except Exception:
        return "unavailable"
    return "ok"


async def healthz(request: web.Request) -> web.Response:
    """200 when both backends answer and the subscription is live, 503 naming what is not."""
    svc = request.app[SERVICE]
    redis_state, postgres_state = await asyncio.gather(
        _probe(svc.publisher.ping), _probe(svc.store.ping)
    )
    if redis_state == "ok" and svc.subscriber is not None and not svc.subscriber.subscribed:
        redis_state = "resubscribing"
    healthy = redis_state == "ok" and postgres_state == "ok"
    body = {
        "status": "ok" if healthy else "error",
        "redis": redis_state,
        "postgres": postgres_state,
    }
    return respond(body, 200 if healthy else 503)


async def metrics(request: web.Request) -> web.Response:
    body, content_type = request.app[SERVICE].metrics.render()
    response = web.Response(body=body)
    response.headers["Content-Type"] = content_type
    return response
