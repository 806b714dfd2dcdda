"""Runs inside the container with the release's Python (aiohttp, PyJWT): opens --clients
authenticated wss clients through nginx (distinct users, tokens minted here from the
EnvironmentFile's JWT_SECRET), and while they are held:
  --over N        N more clients, which must get nginx's clean refusal (503 with Retry-After);
  a broadcast     published once all are open: the time until the last client has it;
  --reload-at S   `systemctl reload nginx` S seconds into the hold; then how long until no old
                  worker is left, and how many clients the old workers closed (and were reopened);
  --hold S        how long they are held; every close nobody asked for is counted.
Prints one JSON line of counts. Bounded: every wait has a timeout, the whole run --max-seconds."""

import argparse
import asyncio
import glob
import json
import ssl
import time

import aiohttp
import jwt

WSS, API = "wss://127.0.0.1/ws", "https://127.0.0.1/api/notifications"
ENV = "/etc/wsnotify/wsnotify.env"
CERT = "/etc/nginx/tls/wsnotify.crt"


def environment() -> dict[str, str]:
    with open(ENV) as f:
        lines = [line for line in f if "=" in line and not line.startswith("#")]
    return {key: value.strip() for key, value in (line.split("=", 1) for line in lines)}


def old_workers() -> int:
    """nginx workers a reload left (their title says so until their last connection ends)."""
    count = 0
    for cmdline in glob.glob("/proc/[0-9]*/cmdline"):
        try:
            with open(cmdline, "rb") as f:
                count += b"worker process is shutting down" in f.read()
        except OSError:  # gone meanwhile
            pass
    return count


class Client:
    """One held client: its socket and a reader task that records what arrives."""

    def __init__(self, user: str) -> None:
        self.user = user
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.broadcast_at: float | None = None
        self.closed: int | None = None  # close code (or -1) of a close nobody asked for


async def main(args: argparse.Namespace) -> dict:
    env = environment()
    secret, publish = env["JWT_SECRET"], env["PUBLISH_TOKEN"]
    tls = ssl.create_default_context(cafile=CERT)
    stats: dict = {
        "clients": args.clients,
        "welcomed": 0,
        "refused": [],  # HTTP statuses instead of a 101
        "errors": [],
        "open_seconds": 0.0,
        "over": [],  # [status, Retry-After] of each client over capacity
        "broadcast_last_s": None,
        "broadcast_missing": None,
        "reload_rc": None,
        "old_workers_after_reload": None,
        "old_workers_gone_s": None,
        "closed_by_reload": 0,
        "reopened": 0,
        "unexpected_closes": [],
    }
    stopping = False
    reloading = False
    pending: set[Client] = set()  # closed by an old worker, reconnecting
    sem = asyncio.Semaphore(args.concurrency)
    connector = aiohttp.TCPConnector(limit=0, ssl=tls)
    session = aiohttp.ClientSession(connector=connector)

    def token(user: str) -> str:
        now = int(time.time())
        return jwt.encode({"sub": user, "iat": now, "exp": now + 3600}, secret, algorithm="HS256")

    async def open_one(client: Client) -> bool:
        async with sem:
            try:
                ws = await session.ws_connect(
                    WSS,
                    headers={"Authorization": f"Bearer {token(client.user)}"},
                    timeout=aiohttp.ClientWSTimeout(ws_close=5),
                    heartbeat=None,
                    autoping=True,
                )
                msg = await ws.receive(timeout=30)
            except aiohttp.WSServerHandshakeError as exc:
                stats["refused"].append(exc.status)
                return False
            except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                stats["errors"].append(repr(exc)[:200])
                return False
            if msg.type != aiohttp.WSMsgType.TEXT or json.loads(msg.data)["type"] != "welcome":
                stats["errors"].append(f"no welcome: {msg.type} {ws.close_code}")
                await ws.close()
                return False
        client.ws = ws
        asyncio.get_running_loop().create_task(read(client, ws))
        return True

    async def read(client: Client, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for msg in ws:
            if msg.type == aiohttp.WSMsgType.TEXT and '"broadcast load check"' in msg.data:
                client.broadcast_at = time.monotonic()
        if stopping or client.ws is not ws:
            return
        if reloading:
            # An old worker closed it at worker_shutdown_timeout: the client contract is to
            # reconnect, which this does at once.
            stats["closed_by_reload"] += 1
            pending.add(client)
            if await open_one(client):
                stats["reopened"] += 1
            pending.discard(client)
            return
        stats["unexpected_closes"].append(ws.close_code or -1)

    clients = [Client(f"load-{i}") for i in range(args.clients)]
    started = time.monotonic()
    results = await asyncio.gather(*(open_one(c) for c in clients))
    stats["welcomed"] = sum(results)
    stats["open_seconds"] = round(time.monotonic() - started, 1)

    for i in range(args.over):
        try:
            ws = await session.ws_connect(
                WSS, headers={"Authorization": f"Bearer {token(f'load-over-{i}')}"}
            )
            stats["over"].append([101, None])
            await ws.close()
        except aiohttp.WSServerHandshakeError as exc:
            stats["over"].append([exc.status, (exc.headers or {}).get("Retry-After")])

    sent = time.monotonic()
    async with session.post(
        API,
        json={"broadcast": True, "title": "broadcast load check"},
        headers={"Authorization": f"Bearer {publish}"},
    ) as answer:
        assert answer.status == 202, answer.status
    deadline = sent + 30
    while time.monotonic() < deadline:
        if all(c.broadcast_at for c in clients if c.ws is not None):
            break
        await asyncio.sleep(0.05)
    arrived = [c.broadcast_at for c in clients if c.broadcast_at]
    stats["broadcast_missing"] = sum(1 for c in clients if c.ws is not None and not c.broadcast_at)
    stats["broadcast_last_s"] = round(max(arrived) - sent, 3) if arrived else None

    hold_started = time.monotonic()
    if args.reload_at is not None:
        await asyncio.sleep(args.reload_at)
        reloading = True
        reload = await asyncio.create_subprocess_exec("systemctl", "reload", "nginx")
        stats["reload_rc"] = await reload.wait()
        reloaded = time.monotonic()
        await asyncio.sleep(1)
        stats["old_workers_after_reload"] = old_workers()
        while old_workers() and time.monotonic() - reloaded < args.old_worker_limit:
            await asyncio.sleep(0.2)
        if not old_workers():
            stats["old_workers_gone_s"] = round(time.monotonic() - reloaded, 1)
        # The clients the old workers closed, reconnecting (bounded).
        await asyncio.sleep(1)
        back = time.monotonic()
        while pending and time.monotonic() - back < 60:
            await asyncio.sleep(0.1)
        stats["reconnected_in_s"] = round(time.monotonic() - back + 1, 1)
        reloading = False
    await asyncio.sleep(max(0.0, args.hold - (time.monotonic() - hold_started)))
    stats["held"] = sum(1 for c in clients if c.ws is not None and not c.ws.closed)

    stopping = True
    closing = [c.ws.close() for c in clients if c.ws is not None]
    await asyncio.gather(*closing, return_exceptions=True)
    await session.close()
    stats["errors"] = stats["errors"][:20]
    return stats


parser = argparse.ArgumentParser()
parser.add_argument("--clients", type=int, required=True)
parser.add_argument("--hold", type=float, default=30)
parser.add_argument("--over", type=int, default=0)
parser.add_argument("--reload-at", type=float)
parser.add_argument("--old-worker-limit", type=float, default=60)
parser.add_argument("--concurrency", type=int, default=200)
parser.add_argument("--max-seconds", type=float, default=600)
args = parser.parse_args()
print(json.dumps(asyncio.run(asyncio.wait_for(main(args), args.max_seconds))))
