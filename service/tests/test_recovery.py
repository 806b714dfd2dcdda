"""Resuming with ``after_id`` against real PostgreSQL and Redis: the replay, the switch-over to
live messages (exactly once, in order), the limit, and bad cursors.

The race at the switch-over is made deterministic with PostgreSQL itself: a test transaction
holds ``notification_reads`` in ACCESS EXCLUSIVE mode, which blocks the replay query (it joins
that table) but not the publisher's insert into ``notifications``.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import urllib.request
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
import asyncpg
import pytest
import redis.asyncio as aioredis
from backends import free_port
from wsnotify_harness import (
    PUBLISH_TOKEN,
    ServiceProcess,
    connect,
    get_json,
    make_token,
    publish_http,
    receive_json,
    run,
)

from wsnotify import protocol

AFTER_ID_RULE = "after_id must be a non-negative integer: the id of the last notification received"


def _user() -> str:
    return f"resume-{uuid.uuid4().hex[:8]}"


def _publish(base: str, **body: object) -> int:
    status, answer = publish_http(base, body)
    assert status == 202, answer
    return answer["id"]


async def _apublish(base: str, **body: object) -> int:
    return await asyncio.to_thread(_publish, base, **body)


async def _resume(
    session: aiohttp.ClientSession, url: str, user: str, after_id: object, how: str
) -> aiohttp.ClientWebSocketResponse:
    """Connect as ``user`` with the cursor in the query or in the auth message."""
    token = make_token(user)
    if how == "query":
        return await connect(session, url, token, params={"after_id": str(after_id)})
    ws = await connect(session, url)
    await ws.send_str(json.dumps({"type": "auth", "token": token, "after_id": after_id}))
    return ws


async def _until_recovered(
    ws: aiohttp.ClientWebSocketResponse, welcome: bool = True
) -> tuple[list[int], dict]:
    """(The welcome,) then the replayed ids, then the ``recovered`` message."""
    if welcome:
        assert (await receive_json(ws))["type"] == "welcome"
    ids = []
    while True:
        message = await receive_json(ws)
        if message["type"] == "recovered":
            return ids, message
        assert message["type"] == "notification", message
        ids.append(message["id"])


async def _quiet(ws: aiohttp.ClientWebSocketResponse, seconds: float) -> list[dict]:
    """Whatever else arrives within ``seconds`` (the test expects nothing, or knows what)."""
    extra = []
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        try:
            extra.append(await receive_json(ws, timeout=left))
        except TimeoutError:
            break
    return extra


def _metric(base: str, name: str, labels: str) -> float:
    with urllib.request.urlopen(base + "/metrics", timeout=5) as response:
        text = response.read().decode()
    match = re.search(rf"^{name}{{{labels}}} (\S+)$", text, re.M)
    return float(match.group(1)) if match else 0.0


@pytest.mark.parametrize("how", ["query", "message"])
def test_missed_user_and_broadcast_notifications_are_replayed_in_order(service, how):
    user, other = _user(), _user()
    seen = _publish(service.base, user_id=user, title="seen before the disconnect")
    missed = [
        _publish(service.base, user_id=user, title="missed 1"),
        _publish(service.base, broadcast=True, title="missed broadcast"),
        _publish(service.base, user_id=user, title="missed 2", data={"n": 2}),
    ]
    _publish(service.base, user_id=other, title="someone else's")  # never shown to user
    missed.append(_publish(service.base, broadcast=True, title="missed broadcast 2"))

    async def scenario() -> tuple[list[int], dict, dict]:
        async with aiohttp.ClientSession() as session:
            ws = await _resume(session, service.ws_url, user, seen, how)
            ids, recovered = await _until_recovered(ws)
            live = await _apublish(service.base, user_id=user, title="live after")
            after = await receive_json(ws)
            assert after["id"] == live
            return ids, recovered, after

    ids, recovered, after = run(scenario())
    assert ids == missed
    assert recovered == {"type": "recovered", "count": 4, "last_id": missed[-1], "complete": True}
    assert after["type"] == "notification" and after["id"] > missed[-1]
    # The same rows the catch-up API returns (the visibility rules are one query).
    status, listing = get_json(
        service.base, f"/api/user/notifications?after_id={seen}", make_token(user)
    )
    assert status == 200 and [n["id"] for n in listing["notifications"]] == [*missed, after["id"]]


def test_replayed_message_has_the_live_format(service):
    user = _user()
    first = _publish(service.base, user_id=user, title="cursor")

    async def scenario() -> tuple[dict, dict]:
        async with aiohttp.ClientSession() as session:
            live_ws = await connect(session, service.ws_url, make_token(user))
            await receive_json(live_ws)
            sent = await _apublish(service.base, user_id=user, title="t", body="b", data={"k": 1})
            live = await receive_json(live_ws)
            ws = await _resume(session, service.ws_url, user, first, "query")
            assert (await receive_json(ws))["type"] == "welcome"
            replayed = await receive_json(ws)
            assert live["id"] == replayed["id"] == sent
            return live, replayed

    live, replayed = run(scenario())
    assert live == replayed


@asynccontextmanager
async def _replay_blocked(dsn: str) -> AsyncIterator[asyncpg.Connection]:
    """Hold the lock that makes the replay query wait, until ``ROLLBACK`` or the block's end."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("BEGIN; LOCK TABLE notification_reads IN ACCESS EXCLUSIVE MODE")
        yield conn
    finally:
        await conn.close()  # ends the transaction (if still open) and so the lock


async def _wait_for_blocked_query(conn: asyncpg.Connection) -> int:
    """The PID of the service's replay query once it waits for our lock."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        pid = await conn.fetchval(
            "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
            "AND query LIKE '%notification_reads%' AND pid <> pg_backend_pid() LIMIT 1"
        )
        if pid is not None:
            return pid
        await asyncio.sleep(0.02)
    activity = await conn.fetch(
        "SELECT pid, state, wait_event_type, left(query, 80) AS query FROM pg_stat_activity "
        "WHERE datname = current_database() AND pid <> pg_backend_pid()"
    )
    raise AssertionError(f"the replay query never waited for the lock: {activity}")


def test_notification_published_during_the_replay_arrives_once_after_the_replayed(
    service, postgres
):
    user = _user()
    cursor = _publish(service.base, user_id=user, title="cursor")
    missed = [_publish(service.base, user_id=user, title=f"missed {n}") for n in range(3)]
    held_before = _metric(service.base, "wsnotify_recovered_total", 'source="held"')
    duplicate_before = _metric(service.base, "wsnotify_recovered_total", 'source="duplicate"')

    async def scenario() -> tuple[list[int], dict, list[dict], list[dict], list[int]]:
        async with aiohttp.ClientSession() as session, _replay_blocked(postgres.url) as lock:
            ws = await _resume(session, service.ws_url, user, cursor, "query")
            assert (await receive_json(ws))["type"] == "welcome"
            await _wait_for_blocked_query(lock)
            during = [
                await _apublish(service.base, user_id=user, title="during the replay"),
                await _apublish(service.base, broadcast=True, title="broadcast during"),
            ]
            early = await _quiet(ws, 0.3)  # held, not written: the replay comes first
            await lock.execute("ROLLBACK")  # releases the lock; the replay query runs
            ids, recovered = await _until_recovered(ws, welcome=False)
            rest = await _quiet(ws, 0.5)
            return ids, recovered, early, rest, during

    ids, recovered, early, rest, during = run(scenario())
    assert early == []
    received = ids + [m["id"] for m in rest if m["type"] == "notification"]
    # Every missed one, then each published-during one exactly once, in id order.
    assert received == missed + during, (ids, recovered, rest)
    assert recovered["complete"] is True and recovered["last_id"] == ids[-1]
    # The held copies went somewhere: each either replayed (its held copy dropped) or sent live.
    held = _metric(service.base, "wsnotify_recovered_total", 'source="held"') - held_before
    duplicate = (
        _metric(service.base, "wsnotify_recovered_total", 'source="duplicate"') - duplicate_before
    )
    assert (held, duplicate) in ((0, 2), (2, 0), (1, 1)), (held, duplicate)


def test_replay_failure_closes_with_1013_so_the_client_retries(service, postgres):
    user = _user()
    cursor = _publish(service.base, user_id=user, title="cursor")
    _publish(service.base, user_id=user, title="missed")

    async def scenario() -> tuple[int | None, list[int]]:
        async with aiohttp.ClientSession() as session:
            async with _replay_blocked(postgres.url) as lock:
                ws = await _resume(session, service.ws_url, user, cursor, "message")
                assert (await receive_json(ws))["type"] == "welcome"
                pid = await _wait_for_blocked_query(lock)
                assert await lock.fetchval("SELECT pg_terminate_backend($1)", pid)
                msg = await ws.receive(timeout=5)
                assert msg.type is aiohttp.WSMsgType.CLOSE, msg
                assert msg.extra == "Recovery unavailable, try again later"
                code = msg.data
            again = await _resume(session, service.ws_url, user, cursor, "message")
            ids, _ = await _until_recovered(again)
            return code, ids

    code, ids = run(scenario())
    assert code == 1013
    assert len(ids) == 1 and ids[0] > cursor  # nothing lost: the retry replays it


def test_after_id_beyond_the_newest_replays_nothing_and_goes_live(service):
    user = _user()
    newest = _publish(service.base, user_id=user, title="newest")
    beyond = newest + 1_000_000

    async def scenario() -> tuple[list[int], dict, dict]:
        async with aiohttp.ClientSession() as session:
            ws = await _resume(session, service.ws_url, user, beyond, "message")
            ids, recovered = await _until_recovered(ws)
            await _apublish(service.base, user_id=user, title="live")
            return ids, recovered, await receive_json(ws)

    ids, recovered, live = run(scenario())
    assert ids == []
    # Taken as the newest id: the client's cursor now, so what comes next is above it.
    assert recovered == {"type": "recovered", "count": 0, "last_id": newest, "complete": True}
    assert live["type"] == "notification" and live["title"] == "live" and live["id"] > newest


@pytest.mark.parametrize(
    ("how", "value"),
    [
        ("query", "abc"),
        ("query", "-1"),
        ("query", "1.5"),
        ("query", ""),
        ("query", "9223372036854775808"),
        ("message", -1),
        ("message", 1.5),
        ("message", True),
        ("message", "12a"),
        ("message", [1]),
        ("message", 2**63),
    ],
)
def test_invalid_after_id_is_closed_with_4400_naming_it(service, how, value):
    async def scenario() -> tuple[int | None, str]:
        async with aiohttp.ClientSession() as session:
            token = make_token(_user())
            if how == "query":
                ws = await connect(session, service.ws_url, token, params={"after_id": value})
            else:
                ws = await connect(session, service.ws_url)
                await ws.send_str(json.dumps({"type": "auth", "token": token, "after_id": value}))
            msg = await ws.receive(timeout=5)
            assert msg.type is aiohttp.WSMsgType.CLOSE, msg
            return msg.data, msg.extra

    code, reason = run(scenario())
    assert (code, reason) == (4400, AFTER_ID_RULE)


def test_after_id_as_digits_in_the_auth_message_is_accepted(service):
    user = _user()
    cursor = _publish(service.base, user_id=user, title="cursor")
    missed = _publish(service.base, user_id=user, title="missed")

    async def scenario() -> list[int]:
        async with aiohttp.ClientSession() as session:
            ws = await _resume(session, service.ws_url, user, str(cursor), "message")
            return (await _until_recovered(ws))[0]

    assert run(scenario()) == [missed]


@pytest.fixture(scope="module")
def limited(env, workdir):
    """A second server on the same backends that replays at most 3 notifications and buffers
    at most 4 KiB per client."""
    settings = {"WSNOTIFY_RECOVERY_LIMIT": "3", "WSNOTIFY_SEND_BUFFER_LIMIT": "4096"}
    proc = ServiceProcess({**env, **settings}, free_port(), workdir).start()
    yield proc
    proc.stop()


def test_replay_limit_tells_the_client_to_page_the_api(limited):
    user = _user()
    cursor = _publish(limited.base, user_id=user, title="cursor")
    missed = [_publish(limited.base, user_id=user, title=f"missed {n}") for n in range(5)]

    async def scenario() -> tuple[list[int], dict, dict]:
        async with aiohttp.ClientSession() as session:
            ws = await _resume(session, limited.ws_url, user, cursor, "query")
            ids, recovered = await _until_recovered(ws)
            live = await _apublish(limited.base, user_id=user, title="live")
            return ids, recovered, {"live": live, "got": await receive_json(ws)}

    ids, recovered, live = run(scenario())
    assert ids == missed[:3]
    assert recovered == {"type": "recovered", "count": 3, "last_id": missed[2], "complete": False}
    assert live["got"]["id"] == live["live"]  # live delivery goes on meanwhile
    # The catch-up the message points to: the API from last_id has the rest.
    status, listing = get_json(
        limited.base, f"/api/user/notifications?after_id={recovered['last_id']}", make_token(user)
    )
    assert status == 200
    assert [n["id"] for n in listing["notifications"]] == [*missed[3:], live["live"]]


def test_exactly_the_limit_is_complete(limited):
    user = _user()
    cursor = _publish(limited.base, user_id=user, title="cursor")
    missed = [_publish(limited.base, user_id=user, title=f"missed {n}") for n in range(3)]

    async def scenario() -> tuple[list[int], dict]:
        async with aiohttp.ClientSession() as session:
            ws = await _resume(session, limited.ws_url, user, cursor, "message")
            return await _until_recovered(ws)

    ids, recovered = run(scenario())
    assert ids == missed
    assert recovered == {"type": "recovered", "count": 3, "last_id": missed[2], "complete": True}


def test_a_held_message_the_replay_did_not_see_is_sent_once_after_it(service, postgres, redis):
    """A notification committed after the replay's snapshot but already on the bus (the window
    between the query and the write, widened here): it is held and sent after ``recovered``,
    even with an id below ``last_id``, and the replay does not contain it."""
    user = _user()
    cursor = _publish(service.base, user_id=user, title="cursor")
    missed = _publish(service.base, user_id=user, title="missed")

    async def scenario() -> tuple[list[int], dict, list[dict], int, int]:
        bus = aioredis.from_url(redis.url)
        late = await asyncpg.connect(postgres.url)
        try:
            async with aiohttp.ClientSession() as session, _replay_blocked(postgres.url) as lock:
                await late.execute("BEGIN")
                row = await late.fetchrow(
                    "INSERT INTO notifications (user_id, title) VALUES ($1, 'late commit') "
                    "RETURNING id, user_id, title, body, data, created_at",
                    user,
                )
                ws = await _resume(session, service.ws_url, user, cursor, "query")
                assert (await receive_json(ws))["type"] == "welcome"
                await _wait_for_blocked_query(lock)
                committed = await _apublish(service.base, user_id=user, title="committed")
                note = protocol.Notification(
                    row["id"], user, row["title"], row["body"], json.loads(row["data"]),
                    row["created_at"],
                )  # fmt: skip
                envelope = protocol.encode_envelope(time.time(), note.to_frame_json())
                assert await bus.publish(protocol.user_channel(user), envelope) >= 1
                await asyncio.sleep(0.2)  # the service has it held by now
                await lock.execute("ROLLBACK")
                ids, recovered = await _until_recovered(ws, welcome=False)
                rest = await _quiet(ws, 0.5)
                await late.execute("COMMIT")
                return ids, recovered, rest, row["id"], committed
        finally:
            await late.close()
            await bus.aclose()

    ids, recovered, rest, late_id, committed = run(scenario())
    assert late_id < committed
    assert ids == [missed, committed]  # the snapshot did not see the uncommitted row
    assert recovered["last_id"] == committed
    assert [m["id"] for m in rest] == [late_id]  # after the replay, once


def test_held_messages_past_the_send_buffer_close_with_1013(limited, postgres):
    user = _user()
    cursor = _publish(limited.base, user_id=user, title="cursor")

    async def scenario() -> tuple[int, str]:
        async with aiohttp.ClientSession() as session, _replay_blocked(postgres.url) as lock:
            ws = await _resume(session, limited.ws_url, user, cursor, "query")
            assert (await receive_json(ws))["type"] == "welcome"
            await _wait_for_blocked_query(lock)
            for n in range(3):  # about 2 KiB each: the third passes the 4 KiB limit
                await _apublish(limited.base, user_id=user, title=f"big {n}", body="x" * 2000)
            msg = await ws.receive(timeout=7)  # before command_timeout (10 s) ends the query
            assert msg.type is aiohttp.WSMsgType.CLOSE, msg
            return msg.data, msg.extra

    assert run(scenario()) == (1013, "Send buffer full")


RESUMERS = 300
LIVE = 50


def test_many_clients_resuming_during_live_traffic_get_each_id_exactly_once(service):
    """A reconnect storm (what a drained node's clients do) while a publisher sends a broadcast
    every 20 ms: every client ends with exactly every id after its cursor, in order (the last
    one, "end", is published once every client has recovered)."""
    cursor = _publish(service.base, broadcast=True, title="cursor")
    before = [_publish(service.base, broadcast=True, title=f"missed {n}") for n in range(20)]
    headers = {"Authorization": f"Bearer {PUBLISH_TOKEN}"}

    async def publisher(session: aiohttp.ClientSession, all_recovered: asyncio.Event) -> list:
        ids = []
        for n in range(LIVE + 1):
            if n == LIVE:
                await all_recovered.wait()
            body = {"broadcast": True, "title": "end" if n == LIVE else f"live {n}"}
            async with session.post(
                service.base + "/api/notifications", json=body, headers=headers
            ) as response:
                assert response.status == 202
                ids.append((await response.json())["id"])
            await asyncio.sleep(0.02)
        return ids

    async def client(
        session: aiohttp.ClientSession, n: int, recovered: list[int], all_recovered: asyncio.Event
    ) -> tuple[list[int], float]:
        await asyncio.sleep(n * LIVE * 0.02 / RESUMERS)  # spread over the publishing second
        started = time.monotonic()
        ws = await _resume(session, service.ws_url, f"storm-{n}", cursor, "query")
        ids, _ = await _until_recovered(ws)
        took = time.monotonic() - started
        recovered.append(n)
        if len(recovered) == RESUMERS:
            all_recovered.set()
        while True:
            message = await receive_json(ws, timeout=30)
            ids.append(message["id"])
            if message["title"] == "end":
                break
        await ws.close()
        return ids, took

    async def scenario() -> tuple[list[int], list[tuple[list[int], float]]]:
        recovered: list[int] = []
        all_recovered = asyncio.Event()
        async with (
            aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as clients,
            aiohttp.ClientSession() as publishing,
        ):
            live, *results = await asyncio.gather(
                publisher(publishing, all_recovered),
                *(client(clients, n, recovered, all_recovered) for n in range(RESUMERS)),
            )
            return live, results

    live, results = run(scenario())
    expected = before + live
    wrong = [n for n, (ids, _) in enumerate(results) if ids != expected]
    assert not wrong, f"{len(wrong)} clients differ, e.g. {results[wrong[0]][0]} != {expected}"
    took = sorted(t for _, t in results)
    print(
        f"\n{RESUMERS} resumed during {LIVE} live broadcasts: connect to recovered "
        f"median {took[len(took) // 2] * 1000:.1f} ms, max {took[-1] * 1000:.1f} ms"
    )
