"""/ws against a real server: authentication outcomes, delivery, isolation, broadcast, acks."""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
import warnings

import aiohttp
import pytest
from wsnotify_harness import (
    connect,
    expect_close,
    get_json,
    make_token,
    publish_http,
    receive_json,
    run,
)


def _hs512_token() -> str:
    # Signed with the right secret but the wrong algorithm; PyJWT warns about key length.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return make_token(algorithm="HS512")


def _alg_none_token() -> str:
    def part(obj: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    valid = json.loads(base64.urlsafe_b64decode(make_token().split(".")[1] + "=="))
    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(valid)}."


NEGATIVE_TOKENS = {
    "malformed": "not-a-jwt",
    "garbage_segments": "a.b.c",
    "wrong_signature": make_token(secret="another-secret-0123456789abcdef-0123456789"),
    "alg_none": _alg_none_token(),
    "alg_hs512": _hs512_token(),
    "expired": make_token(ttl=-3600),
    "wrong_audience": make_token(aud="someone-else"),
    "missing_audience": make_token(aud=None),
    "wrong_issuer": make_token(iss="https://evil.test"),
    "no_sub": make_token(sub=None),
    "numeric_sub": make_token(sub=42),
    "empty": "",
}


@pytest.mark.parametrize("how", ["header", "query", "message"])
@pytest.mark.parametrize("name", sorted(NEGATIVE_TOKENS))
def test_every_bad_token_is_closed_with_4401(service, name, how):
    token = NEGATIVE_TOKENS[name]

    async def scenario() -> int | None:
        async with aiohttp.ClientSession() as session:
            if how == "header":
                headers = {"Authorization": f"Bearer {token}"}
                ws = await session.ws_connect(service.ws_url, headers=headers)
            elif how == "query":
                ws = await session.ws_connect(service.ws_url, params={"token": token})
            else:
                ws = await session.ws_connect(service.ws_url)
                await ws.send_str(json.dumps({"type": "auth", "token": token}))
            return await expect_close(ws)

    assert run(scenario()) == 4401


def test_missing_token_times_out_with_4401_and_reason(service):
    async def scenario() -> tuple[int | None, str, float]:
        async with aiohttp.ClientSession() as session:
            ws = await session.ws_connect(service.ws_url)
            loop = asyncio.get_running_loop()
            started = loop.time()
            msg = await ws.receive(timeout=10)
            return msg.data, msg.extra, loop.time() - started

    code, reason, elapsed = run(scenario())
    assert code == 4401
    assert reason == "Unauthorized"
    assert 0.8 < elapsed < 4  # WSNOTIFY_AUTH_TIMEOUT=1 in the test environment


def test_non_auth_first_message_is_refused(service):
    async def scenario() -> int | None:
        async with aiohttp.ClientSession() as session:
            ws = await session.ws_connect(service.ws_url)
            await ws.send_str('{"type":"ack","ids":[1]}')
            return await expect_close(ws)

    assert run(scenario()) == 4401


def test_ping_before_auth_gets_no_pong_and_is_refused(service):
    async def scenario() -> tuple[list[str], int | None, str]:
        async with aiohttp.ClientSession() as session:
            ws = await session.ws_connect(service.ws_url)
            await ws.send_str('{"type":"ping","id":"early"}')
            texts = []
            while True:  # everything up to the server's close
                msg = await ws.receive(timeout=5)
                if msg.type is aiohttp.WSMsgType.TEXT:
                    texts.append(msg.data)
                else:
                    return texts, ws.close_code, msg.extra

    texts, code, reason = run(scenario())
    assert texts == []  # a ping is not an auth message: refused like any other, no pong
    assert code == 4401
    assert reason == "Unauthorized"


def test_ping_gets_pongs_in_order(service):
    user = f"pinger-{uuid.uuid4().hex[:6]}"

    async def scenario() -> list[dict]:
        async with aiohttp.ClientSession() as session:
            ws = await connect(session, service.ws_url, make_token(user))
            assert (await receive_json(ws))["type"] == "welcome"
            await ws.send_str('{"type":"ping","id":"a"}')
            await ws.send_str('{"type":"ping","id":[1]}')  # invalid: ignored, no pong
            await ws.send_str('{"type":"ping","id":7}')
            await ws.send_str('{"type":"ping"}')
            got = [await receive_json(ws) for _ in range(3)]
            await ws.close()
            return got

    assert run(scenario()) == [
        {"type": "pong", "id": "a"},
        {"type": "pong", "id": 7},
        {"type": "pong", "id": None},
    ]


@pytest.mark.parametrize("how", ["header", "query", "message"])
def test_valid_token_gets_welcome(service, how):
    user = f"u-{uuid.uuid4().hex[:8]}"
    token = make_token(user)

    async def scenario() -> dict:
        async with aiohttp.ClientSession() as session:
            if how == "header":
                ws = await connect(session, service.ws_url, token)
            elif how == "query":
                ws = await session.ws_connect(service.ws_url, params={"token": token})
            else:
                ws = await session.ws_connect(service.ws_url)
                await ws.send_str(json.dumps({"type": "auth", "token": token}))
            welcome = await receive_json(ws)
            await ws.close()
            return welcome

    assert run(scenario()) == {"type": "welcome", "user_id": user}


def test_user_isolation_and_broadcast(service):
    alice, bob = f"alice-{uuid.uuid4().hex[:6]}", f"bob-{uuid.uuid4().hex[:6]}"

    async def scenario() -> None:
        async with aiohttp.ClientSession() as session:
            ws_a = await connect(session, service.ws_url, make_token(alice))
            ws_a2 = await connect(session, service.ws_url, make_token(alice))
            ws_b = await connect(session, service.ws_url, make_token(bob))
            for ws in (ws_a, ws_a2, ws_b):
                assert (await receive_json(ws))["type"] == "welcome"

            status, body = await asyncio.to_thread(
                publish_http,
                service.base,
                {"user_id": alice, "title": "for alice", "body": "b", "data": {"k": [1, 2]}},
            )
            assert status == 202
            for ws in (ws_a, ws_a2):
                message = await receive_json(ws)
                assert message["type"] == "notification"
                assert message["id"] == body["id"]
                assert message["user_id"] == alice
                assert message["title"] == "for alice"
                assert message["body"] == "b"
                assert message["data"] == {"k": [1, 2]}
                assert message["created_at"].endswith("+00:00")
            # Bob must get nothing: the next thing he receives is the broadcast below.
            status, broadcast = await asyncio.to_thread(
                publish_http, service.base, {"broadcast": True, "title": "all"}
            )
            assert status == 202
            first_for_bob = await receive_json(ws_b)
            assert first_for_bob["id"] == broadcast["id"]
            assert first_for_bob["user_id"] is None
            for ws in (ws_a, ws_a2):
                assert (await receive_json(ws))["id"] == broadcast["id"]
            for ws in (ws_a, ws_a2, ws_b):
                await ws.close()

    run(scenario())


def test_ack_marks_read(service):
    user = f"acker-{uuid.uuid4().hex[:6]}"
    token = make_token(user)

    async def scenario() -> None:
        async with aiohttp.ClientSession() as session:
            ws = await connect(session, service.ws_url, token)
            await receive_json(ws)
            _, one = await asyncio.to_thread(
                publish_http, service.base, {"user_id": user, "title": "t1"}
            )
            _, two = await asyncio.to_thread(
                publish_http, service.base, {"user_id": user, "title": "t2"}
            )
            got = [await receive_json(ws), await receive_json(ws)]
            assert [m["id"] for m in got] == [one["id"], two["id"]]
            await ws.send_str(json.dumps({"type": "ack", "ids": [one["id"]]}))
            for _ in range(50):
                # From its first id: broadcasts of other tests are unread for this user too.
                path = f"/api/user/notifications?unread=true&after_id={one['id'] - 1}"
                _, listing = await asyncio.to_thread(get_json, service.base, path, token)
                ids = [n["id"] for n in listing["notifications"] if n["user_id"] == user]
                if one["id"] not in ids:
                    break
                await asyncio.sleep(0.05)
            assert ids == [two["id"]]
            await ws.close()

    run(scenario())


def test_origin_allow_list(env, workdir):
    from backends import free_port
    from wsnotify_harness import ServiceProcess

    proc = ServiceProcess(
        {**env, "WSNOTIFY_ALLOWED_ORIGINS": "https://app.example.com"}, free_port(), workdir
    ).start()
    try:

        async def scenario() -> None:
            token = make_token("origin-user")
            async with aiohttp.ClientSession() as session:
                with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                    await connect(
                        session, proc.ws_url, token, headers={"Origin": "https://evil.example"}
                    )
                assert refused.value.status == 403
                for origin in ("https://app.example.com", "https://App.Example.com"):
                    ws = await connect(session, proc.ws_url, token, headers={"Origin": origin})
                    assert (await receive_json(ws))["type"] == "welcome"
                    await ws.close()
                ws = await connect(session, proc.ws_url, token)  # no Origin: not a browser
                assert (await receive_json(ws))["type"] == "welcome"
                await ws.close()

        run(scenario())
    finally:
        proc.stop()


def test_per_user_connection_limit(env, workdir):
    from backends import free_port
    from wsnotify_harness import ServiceProcess

    proc = ServiceProcess(
        {**env, "WSNOTIFY_MAX_CONNECTIONS_PER_USER": "2"}, free_port(), workdir
    ).start()
    try:

        async def scenario() -> None:
            token = make_token("limited-user")
            async with aiohttp.ClientSession() as session:
                first = await connect(session, proc.ws_url, token)
                second = await connect(session, proc.ws_url, token)
                for ws in (first, second):
                    assert (await receive_json(ws))["type"] == "welcome"
                third = await connect(session, proc.ws_url, token)
                assert await expect_close(third) == 4429
                await first.close()
                await asyncio.sleep(0.1)
                again = await connect(session, proc.ws_url, token)
                assert (await receive_json(again))["type"] == "welcome"
                for ws in (second, again):
                    await ws.close()

        run(scenario())
    finally:
        proc.stop()


def test_clients_past_the_node_capacity_are_told_to_try_again_later(env, workdir):
    from backends import free_port
    from wsnotify_harness import ServiceProcess

    proc = ServiceProcess({**env, "WSNOTIFY_MAX_CONNECTIONS": "2"}, free_port(), workdir).start()
    try:

        async def scenario() -> None:
            async with aiohttp.ClientSession() as session:
                held = [await connect(session, proc.ws_url, make_token(f"u{n}")) for n in (1, 2)]
                for ws in held:
                    assert (await receive_json(ws))["type"] == "welcome"
                over = await connect(session, proc.ws_url, make_token("u3"))
                assert await expect_close(over) == 1013
                assert over.close_code == 1013
                await held[0].close()
                await asyncio.sleep(0.1)
                again = await connect(session, proc.ws_url, make_token("u3"))
                assert (await receive_json(again))["type"] == "welcome"
                for ws in (held[1], again):
                    await ws.close()
                async with session.get(proc.base + "/metrics") as response:
                    text = await response.text()
                assert 'wsnotify_handshakes_total{outcome="over_capacity"} 1' in text, text

        run(scenario())
    finally:
        proc.stop()


def test_ping_sweep_keeps_answering_clients_and_closes_silent_ones(env, workdir):
    from backends import free_port
    from rawws import RawClient, upgrade_request
    from wsnotify_harness import ServiceProcess

    proc = ServiceProcess({**env, "WSNOTIFY_PING_INTERVAL": "1"}, free_port(), workdir).start()
    try:
        silent = RawClient(proc.port)
        request, _ = upgrade_request(proc.port, f"Authorization: Bearer {make_token('mute')}\r\n")
        silent.send(request)
        assert silent.response_head()[0] == 101

        async def scenario() -> tuple[bool, int]:
            async with aiohttp.ClientSession() as session:
                ws = await connect(session, proc.ws_url, make_token("talker"))  # autoping
                assert (await receive_json(ws))["type"] == "welcome"
                # aiohttp answers pings while something reads: wait for the next message.
                reading = asyncio.create_task(receive_json(ws, timeout=15))
                await asyncio.sleep(3.0)  # three ping rounds
                still_open = not ws.closed
                status, body = await asyncio.to_thread(
                    publish_http, proc.base, {"user_id": "talker", "title": "alive"}
                )
                assert status == 202
                got = await reading
                await ws.close()
                return still_open, got["id"] == body["id"]

        still_open, delivered = run(scenario())
        assert still_open and delivered
        # The silent client got a ping, never answered, and was closed with 1011.
        frames = []
        while (got := silent.next_frame()) is not None:
            frames.append(got)
        opcodes = [opcode for opcode, _ in frames]
        assert opcodes[0] == 0x1 and 0x9 in opcodes and opcodes[-1] == 0x8, opcodes
        assert frames[-1][1][:2] == (1011).to_bytes(2, "big")
        silent.close()
        assert "websocket closed: user=mute did not answer a ping" in proc.output()
    finally:
        proc.stop()


def test_a_connection_that_never_finishes_its_request_is_closed(service):
    # Slowloris: the auth timeout (1 s here) also bounds the upgrade request itself.
    import time

    from rawws import RawClient

    idle, partial = RawClient(service.port), RawClient(service.port)
    partial.send(b"GET /ws HTTP/1.1\r\nHost: x\r\n")
    started = time.monotonic()
    assert idle.closed_by_server(timeout=5) and partial.closed_by_server(timeout=5)
    assert time.monotonic() - started < 3
    idle.close()
    partial.close()
