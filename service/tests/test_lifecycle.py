"""Processes and failures: two nodes on one Redis, Redis restart, SIGTERM, systemd READY."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import time
import uuid
from pathlib import Path

import aiohttp
from backends import RedisServer, free_port, start_postgres, start_redis
from wsnotify_harness import (
    ServiceProcess,
    base_env,
    connect,
    expect_close,
    get_json,
    make_token,
    publish_http,
    raw_handshake,
    receive_json,
    run,
    wsnotify_cmd,
)


def test_two_nodes_share_redis(env, workdir, service):
    other = ServiceProcess(env, free_port(), workdir).start()
    user = f"cluster-{uuid.uuid4().hex[:6]}"
    try:

        async def scenario() -> None:
            async with aiohttp.ClientSession() as session:
                on_b = await connect(session, other.ws_url, make_token(user))
                on_a = await connect(session, service.ws_url, make_token("cluster-peer"))
                for ws in (on_a, on_b):
                    assert (await receive_json(ws))["type"] == "welcome"
                # Publish through node A's HTTP API, receive on node B.
                status, body = await asyncio.to_thread(
                    publish_http, service.base, {"user_id": user, "title": "via A"}
                )
                assert status == 202
                message = await receive_json(on_b)
                assert (message["id"], message["title"]) == (body["id"], "via A")
                # And a broadcast through B reaches clients of both nodes.
                status, body = await asyncio.to_thread(
                    publish_http, other.base, {"broadcast": True, "title": "everyone"}
                )
                assert status == 202
                for ws in (on_a, on_b):
                    assert (await receive_json(ws))["id"] == body["id"]
                for ws in (on_a, on_b):
                    await ws.close()

        run(scenario())
    finally:
        other.stop()


def test_redis_restart_resyncs_and_loses_nothing(postgres, workdir, env):
    redis = start_redis(workdir / "redis-restart", free_port())
    proc = ServiceProcess(base_env(postgres.url, redis.url), free_port(), workdir).start()
    user = f"outage-{uuid.uuid4().hex[:6]}"
    token = make_token(user)
    try:

        async def scenario() -> None:
            async with aiohttp.ClientSession() as session:
                clients = [await connect(session, proc.ws_url, token) for _ in range(3)]
                for ws in clients:
                    assert (await receive_json(ws))["type"] == "welcome"

                await asyncio.to_thread(redis.stop)
                status, health = await asyncio.to_thread(get_json, proc.base, "/healthz", None)
                assert status == 503 and health["redis"] != "ok" and health["postgres"] == "ok"
                status, during = await asyncio.to_thread(
                    publish_http, proc.base, {"user_id": user, "title": "during outage"}
                )
                assert status == 202  # persisted even though Redis is down

                await asyncio.sleep(0.5)
                await asyncio.to_thread(redis.start)
                for ws in clients:
                    assert await receive_json(ws, timeout=15) == {"type": "resync"}

                # The catch-up path returns what was published during the outage...
                status, listing = await asyncio.to_thread(
                    get_json, proc.base, "/api/user/notifications?unread=true", token
                )
                assert status == 200
                assert during["id"] in [n["id"] for n in listing["notifications"]]
                # ...and live delivery works again.
                status, after = await asyncio.to_thread(
                    publish_http, proc.base, {"user_id": user, "title": "after"}
                )
                assert status == 202
                for ws in clients:
                    assert (await receive_json(ws))["id"] == after["id"]
                for ws in clients:
                    await ws.close()

        run(scenario())
        assert "redis subscription restored" in proc.output()
    finally:
        proc.stop()
        redis.stop()


def test_sigterm_closes_everyone_with_1001_within_5s(env, workdir):
    proc = ServiceProcess(env, free_port(), workdir).start()
    deaf = None
    try:

        async def scenario() -> list[int | None]:
            async with aiohttp.ClientSession() as session:
                clients = [
                    await connect(session, proc.ws_url, make_token(f"term-{i}")) for i in range(50)
                ]
                for ws in clients:
                    assert (await receive_json(ws))["type"] == "welcome"
                # One client still in the auth phase (no token yet).
                pending = await session.ws_connect(proc.ws_url)
                nonlocal deaf
                deaf = await asyncio.to_thread(raw_handshake, proc.port, make_token("deaf"))
                await asyncio.sleep(0.2)
                stopper = asyncio.create_task(asyncio.to_thread(proc.stop))
                codes = await asyncio.gather(
                    *(expect_close(ws, timeout=6) for ws in [*clients, pending])
                )
                code, elapsed = await stopper
                assert code == 0, proc.output()
                assert elapsed <= 5.0, elapsed
                return codes

        codes = run(scenario())
        assert codes == [1001] * 51
        log = proc.output()
        assert "shutting down: closing 52 connections with 1001" in log
    finally:
        proc.stop()
        if deaf is not None:
            deaf.close()


def _datagrams(sock: socket.socket) -> list[str]:
    messages = []
    while True:
        try:
            messages.append(sock.recv(4096).decode())
        except BlockingIOError:
            return messages


def test_ready_only_after_both_backends_answer(workdir):
    pg = start_postgres(Path(workdir) / "pg-ready", free_port())
    redis = RedisServer(workdir / "redis-ready", free_port(), None)  # not started yet
    env = base_env(pg.url, redis.url)
    subprocess.run(wsnotify_cmd("migrate"), env=env, check=True, capture_output=True)
    pg.stop()

    path = str(workdir / "notify.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(path)
    listener.setblocking(False)
    env = {**env, "NOTIFY_SOCKET": path, "WATCHDOG_USEC": "400000"}
    proc = ServiceProcess(env, free_port(), workdir).start(wait=False)
    try:
        received: list[str] = []
        time.sleep(1.5)
        received += _datagrams(listener)
        assert not any("READY=1" in m for m in received)
        assert any(m.startswith("STATUS=waiting for") for m in received)

        redis.start()  # Redis up, PostgreSQL still down: still not ready
        time.sleep(1.5)
        received += _datagrams(listener)
        assert not any("READY=1" in m for m in received)

        pg.start()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not any("READY=1" in m for m in received):
            time.sleep(0.05)
            received += _datagrams(listener)
        assert any("READY=1" in m for m in received), received
        # READY means serving: the port answers at once.
        status, body = get_json(proc.base, "/healthz", None)
        assert status == 200 and body["status"] == "ok"

        time.sleep(0.5)
        received += _datagrams(listener)
        ready_at = next(i for i, m in enumerate(received) if "READY=1" in m)
        assert any(m == "WATCHDOG=1" for m in received[ready_at:])
        assert not any(m == "WATCHDOG=1" for m in received[:ready_at])

        code, elapsed = proc.stop()
        assert code == 0 and elapsed < 5
        received += _datagrams(listener)
        assert "STOPPING=1" in received
    finally:
        proc.stop()
        listener.close()
        redis.stop()
        pg.stop()


def test_serve_refuses_unmigrated_database(workdir):
    pg = start_postgres(Path(workdir) / "pg-empty", free_port())
    redis = start_redis(workdir / "redis-empty", free_port())
    try:
        result = subprocess.run(
            wsnotify_cmd("serve"),
            env={**base_env(pg.url, redis.url), "WSNOTIFY_PORT": str(free_port())},
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert result.returncode == 1
        assert "run `wsnotify migrate`" in result.stdout
        assert pg.password not in result.stdout + result.stderr
    finally:
        redis.stop()
        pg.stop()


def test_serve_reports_a_port_in_use(env):
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    port = holder.getsockname()[1]
    try:
        result = subprocess.run(
            wsnotify_cmd("serve"),
            env={**env, "WSNOTIFY_PORT": str(port)},
            capture_output=True,
            text=True,
            timeout=30,
        )
    finally:
        holder.close()
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.stdout
    assert "set WSNOTIFY_PORT" in result.stdout


def test_no_secret_or_token_in_logs_even_at_debug(env, workdir, postgres, redis):
    proc = ServiceProcess({**env, "WSNOTIFY_LOG_LEVEL": "debug"}, free_port(), workdir).start()
    good, bad = make_token("logged-user"), make_token("x", secret="wrong-secret-" + "0" * 30)
    try:

        async def scenario() -> None:
            async with aiohttp.ClientSession() as session:
                ws = await session.ws_connect(proc.ws_url, params={"token": good})
                assert (await receive_json(ws))["type"] == "welcome"
                await ws.send_str('{"type":"ack","ids":[1]}')
                await ws.send_str("not json")
                refused = await session.ws_connect(proc.ws_url, params={"token": bad})
                assert await expect_close(refused) == 4401
                await asyncio.to_thread(
                    publish_http, proc.base, {"user_id": "logged-user", "title": "t"}
                )
                await receive_json(ws)
                await ws.close()

        run(scenario())
    finally:
        proc.stop()
    output = proc.output()
    assert "websocket open: user=logged-user" in output  # debug logging was really on
    for secret in (
        env["JWT_SECRET"],
        env["PUBLISH_TOKEN"],
        postgres.password,
        redis.password,
        good,
        bad,
        good.split(".")[2],  # not even a token's signature
    ):
        assert secret not in output


def test_postgres_outage_is_a_503_then_recovers(workdir, redis):
    pg = start_postgres(Path(workdir) / "pg-outage", free_port())
    env = base_env(pg.url, redis.url)
    subprocess.run(wsnotify_cmd("migrate"), env=env, check=True, capture_output=True)
    proc = ServiceProcess(env, free_port(), workdir).start()
    token = make_token("pg-outage-user")
    try:
        pg.stop()
        status, body = get_json(proc.base, "/healthz", None)
        assert (status, body["postgres"], body["redis"]) == (503, "unavailable", "ok")
        status, body = publish_http(proc.base, {"user_id": "pg-outage-user", "title": "t"})
        assert (status, body) == (503, {"error": "storage unavailable, retry later"})
        status, body = get_json(proc.base, "/api/user/notifications", token)
        assert status == 503
        pg.start()
        deadline = time.monotonic() + 15
        while get_json(proc.base, "/healthz", None)[0] != 200:
            assert time.monotonic() < deadline, "service did not recover after postgres restart"
            time.sleep(0.2)
        status, body = publish_http(proc.base, {"user_id": "pg-outage-user", "title": "t"})
        assert status == 202
        status, listing = get_json(proc.base, "/api/user/notifications", token)
        assert status == 200 and [n["id"] for n in listing["notifications"]] == [body["id"]]
    finally:
        proc.stop()
        pg.stop()
