"""REST API against a real server: exact 401 body, 400/413 on bad input, limits, health."""

from __future__ import annotations

import http.client
import json
import uuid

import pytest
from wsnotify_harness import (
    PUBLISH_TOKEN,
    get_json,
    make_token,
    post_json,
    publish_http,
)


def _raw(service, method: str, path: str, body: bytes | None = None, headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", service.port, timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.getheader("Content-Type"), response.read()
    finally:
        conn.close()


UNAUTHORIZED_CASES = {
    "no header": {},
    "basic scheme": {"Authorization": "Basic dXNlcjpwYXNz"},
    "bad token": {"Authorization": "Bearer nope"},
    "expired": {"Authorization": f"Bearer {make_token(ttl=-3600)}"},
    "wrong audience": {"Authorization": f"Bearer {make_token(aud='x')}"},
    "publisher token is not a user token": {"Authorization": f"Bearer {PUBLISH_TOKEN}"},
}


@pytest.mark.parametrize("case", sorted(UNAUTHORIZED_CASES))
@pytest.mark.parametrize(
    "method,path",
    [("GET", "/api/user/notifications"), ("POST", "/api/user/notifications/read")],
)
def test_user_endpoints_401_exact_body(service, case, method, path):
    body = b'{"all":true}' if method == "POST" else None
    status, content_type, raw = _raw(service, method, path, body, UNAUTHORIZED_CASES[case])
    assert status == 401
    assert content_type.startswith("application/json")
    assert raw == b'{"error":"Authentication required"}'


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong-token-0123456789abcdef0123456789"},
     {"Authorization": f"Bearer {make_token()}"}, {"Authorization": PUBLISH_TOKEN}],
)  # fmt: skip
def test_publisher_401_exact_body(service, headers):
    status, content_type, raw = _raw(
        service, "POST", "/api/notifications", b'{"broadcast":true,"title":"x"}', headers
    )
    assert status == 401
    assert content_type.startswith("application/json")
    assert raw == b'{"error":"Authentication required"}'


BAD_PUBLISH = [
    b"",
    b"{",
    b"[]",
    b'"text"',
    b"NaN",
    b'{"title":"no target"}',
    b'{"user_id":"1","broadcast":true,"title":"both"}',
    b'{"user_id":"1"}',
    b'{"user_id":"1","title":""}',
    b'{"user_id":"1","title":5}',
    b'{"user_id":"","title":"t"}',
    b'{"user_id":true,"title":"t"}',
    b'{"user_id":"1","title":"t","data":[1]}',
    b'{"user_id":"1","title":"t","body":7}',
    b'{"broadcast":"yes","title":"t"}',
    b'{"user_id":"1","title":"t","data":{"x":NaN}}',
    b'{"user_id":"1","title":"' + b"x" * 501 + b'"}',
    b'{"user_id":"' + b"u" * 129 + b'","title":"t"}',
    b"\xff\xfe",
    b'{"user_id":"1","title":"nul \\u0000 inside"}',
    b'{"user_id":"1","title":"t","data":{"k":"nul \\u0000"}}',
    b'{"user_id":"1","title":"t","data":{"nul\\u0000key":1}}',
    b'{"user_id":"1\\u0000","title":"t"}',
    b'{"user_id":"1","title":"lone \\ud800 surrogate"}',
    b'{"user_id":"1","title":"t","data":{"big":1e400}}',
    b'{"user_id":"1","title":"t","data":' + b"[" * 30_000 + b"]" * 30_000 + b"}",
    b"[" * 30_000 + b"]" * 30_000,
]


@pytest.mark.parametrize("body", BAD_PUBLISH)
def test_publish_bad_input_is_400(service, body):
    status, content_type, raw = _raw(
        service,
        "POST",
        "/api/notifications",
        body,
        {"Authorization": f"Bearer {PUBLISH_TOKEN}", "Content-Type": "application/json"},
    )
    assert status == 400, raw
    assert content_type.startswith("application/json")
    assert set(json.loads(raw)) == {"error"}


@pytest.mark.parametrize("size", [64 * 1024 + 1, 1024 * 1024])
def test_publish_too_large_is_413(service, size):
    filler = b"x" * size
    body = b'{"user_id":"1","title":"t","body":"' + filler + b'"}'
    status, content_type, raw = _raw(
        service, "POST", "/api/notifications", body, {"Authorization": f"Bearer {PUBLISH_TOKEN}"}
    )
    assert status == 413
    assert content_type.startswith("application/json")
    assert "error" in json.loads(raw)


def test_publish_too_large_chunked_is_413(service):
    conn = http.client.HTTPConnection("127.0.0.1", service.port, timeout=10)
    chunks = (b"x" * 16384 for _ in range(8))  # 128 KiB, no Content-Length
    conn.request(
        "POST",
        "/api/notifications",
        body=chunks,
        headers={"Authorization": f"Bearer {PUBLISH_TOKEN}"},
        encode_chunked=True,
    )
    response = conn.getresponse()
    assert response.status == 413
    conn.close()


def test_publish_just_under_limit_is_accepted(service):
    data = {"blob": "y" * (60 * 1024)}
    status, body = publish_http(service.base, {"user_id": "big", "title": "t", "data": data})
    assert status == 202 and isinstance(body["id"], int)


def test_listing_filters_and_limits(service):
    user = f"lister-{uuid.uuid4().hex[:6]}"
    token = make_token(user)
    ids = []
    for i in range(5):
        status, body = publish_http(service.base, {"user_id": user, "title": f"n{i}"})
        assert status == 202
        ids.append(body["id"])
    publish_http(service.base, {"user_id": "someone-else", "title": "not yours"})

    def mine(query: str) -> list[int]:
        status, body = get_json(service.base, "/api/user/notifications" + query, token)
        assert status == 200
        return [n["id"] for n in body["notifications"] if n["user_id"] == user]

    status, body = get_json(service.base, f"/api/user/notifications?after_id={ids[0] - 1}", token)
    assert status == 200
    own = [n for n in body["notifications"] if n["user_id"] == user]
    assert [n["id"] for n in own] == ids
    assert set(own[0]) == {"id", "user_id", "title", "body", "data", "created_at"}
    assert all(n["user_id"] in (user, None) for n in body["notifications"])
    assert mine(f"?after_id={ids[2]}") == ids[3:]
    assert len(get_json(service.base, f"/api/user/notifications?limit=2&after_id={ids[0] - 1}",
                        token)[1]["notifications"]) == 2  # fmt: skip

    status, body = post_json(service.base, "/api/user/notifications/read", {"ids": ids[:2]}, token)
    assert (status, body) == (200, {"updated": 2})
    status, body = post_json(service.base, "/api/user/notifications/read", {"ids": ids[:2]}, token)
    assert (status, body) == (200, {"updated": 0})  # idempotent
    assert mine(f"?unread=true&after_id={ids[0] - 1}") == ids[2:]
    assert mine(f"?unread=false&after_id={ids[0] - 1}") == ids
    status, body = post_json(service.base, "/api/user/notifications/read", {"all": True}, token)
    assert status == 200 and body["updated"] >= 3
    assert mine(f"?unread=true&after_id={ids[0] - 1}") == []


def test_user_cannot_mark_another_users_notification(service):
    status, body = publish_http(service.base, {"user_id": "victim", "title": "private"})
    assert status == 202
    status, result = post_json(
        service.base, "/api/user/notifications/read", {"ids": [body["id"]]}, make_token("mallory")
    )
    assert (status, result) == (200, {"updated": 0})


@pytest.mark.parametrize(
    "query",
    ["limit=0", "limit=101", "limit=abc", "after_id=-1", "after_id=x", "unread=maybe",
     "after_id=99999999999999999999"],
)  # fmt: skip
def test_listing_bad_query_is_400(service, query):
    status, body = get_json(service.base, f"/api/user/notifications?{query}", make_token("q"))
    assert status == 400 and set(body) == {"error"}


def test_listing_default_limit_is_50(service):
    user = f"many-{uuid.uuid4().hex[:6]}"
    for i in range(55):
        assert publish_http(service.base, {"user_id": user, "title": f"m{i}"})[0] == 202
    status, body = get_json(service.base, "/api/user/notifications", make_token(user))
    assert status == 200 and len(body["notifications"]) == 50
    status, body = get_json(service.base, "/api/user/notifications?limit=100", make_token(user))
    assert status == 200 and len(body["notifications"]) >= 55


@pytest.mark.parametrize(
    "body",
    [b"{}", b'{"ids":"1"}', b'{"ids":[0]}', b'{"ids":[true]}', b'{"all":false}', b"nope",
     b'{"ids":[1],"all":true}', b'{"ids":' + json.dumps(list(range(1, 1002))).encode() + b"}"],
)  # fmt: skip
def test_mark_read_bad_input_is_400(service, body):
    status, result = post_json(service.base, "/api/user/notifications/read", body, make_token())
    assert status == 400 and set(result) == {"error"}


def test_healthz_and_metrics(service):
    status, body = get_json(service.base, "/healthz", None)
    assert (status, body) == (200, {"status": "ok", "redis": "ok", "postgres": "ok"})
    status, content_type, raw = _raw(service, "GET", "/metrics")
    assert status == 200 and content_type.startswith("text/plain")
    text = raw.decode()
    for name in (
        "wsnotify_connections",
        "wsnotify_handshakes_total",
        "wsnotify_deliveries_total",
        "wsnotify_slow_client_drops_total",
        "wsnotify_publish_to_send_seconds_bucket",
        "wsnotify_redis_subscribed 1.0",
    ):
        assert name in text


def test_handshake_outcomes_are_counted(service):
    import re

    import aiohttp
    from wsnotify_harness import connect, expect_close, receive_json, run

    def count(outcome: str) -> float:
        text = _raw(service, "GET", "/metrics")[2].decode()
        match = re.search(rf'^wsnotify_handshakes_total{{outcome="{outcome}"}} (\S+)$', text, re.M)
        assert match, text
        return float(match.group(1))

    before = count("ok"), count("unauthorized")

    async def scenario() -> None:
        async with aiohttp.ClientSession() as session:
            ws = await connect(session, service.ws_url, make_token("counted"))
            await receive_json(ws)
            await ws.close()
            bad = await connect(session, service.ws_url, "not-a-token")
            assert await expect_close(bad) == 4401

    run(scenario())
    assert (count("ok"), count("unauthorized")) == (before[0] + 1, before[1] + 1)


def test_plain_get_on_ws_is_a_json_400(service):
    status, content_type, raw = _raw(service, "GET", "/ws")
    assert status == 400 and content_type.startswith("application/json")
    assert "error" in json.loads(raw)


def test_unknown_path_is_a_json_404(service):
    status, _, raw = _raw(service, "GET", "/nope")
    assert status == 404 and json.loads(raw) == {"error": "Not Found"}
