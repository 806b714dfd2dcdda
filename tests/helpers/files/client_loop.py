"""Runs inside the container with the release's Python (aiohttp): one client connecting again
and again through nginx (wss, the site's certificate) and a publisher posting every 100 ms, until
the file named by --stop-file exists (the test creates it once its deploy is done) or
--max-seconds pass; with --restart-at S, `systemctl restart wsnotify` runs S seconds in.
Reads the user token and the publish token from stdin (never argv); prints one JSON line of
counts: every refused handshake (HTTP status), error, failed publish, and the longest waits.
"""

import argparse
import asyncio
import json
import os
import ssl
import sys
import time

import aiohttp

WSS, API = "wss://127.0.0.1/ws", "https://127.0.0.1/api/notifications"
PUBLISH_EVERY = 0.1


async def main(args: argparse.Namespace) -> dict:
    token, publish = sys.stdin.readline().strip(), sys.stdin.readline().strip()
    tls = ssl.create_default_context(cafile="/etc/nginx/tls/wsnotify.crt")
    stats = {
        "welcomed": 0,
        "refused": [],  # HTTP statuses instead of a 101
        "errors": [],  # resets, timeouts, anything but a status
        "closed_after_101": [],  # close codes before the welcome (1012: restarting)
        "published": 0,
        "publish_failed": [],
        "longest_wait_s": 0.0,  # connect to welcome
        "longest_publish_s": 0.0,
        "restart_rc": None,
        "seconds": 0.0,
    }
    started_at = time.monotonic()
    end = started_at + args.max_seconds

    def running() -> bool:
        return time.monotonic() < end and not os.path.exists(args.stop_file)

    async def connector(session: aiohttp.ClientSession) -> None:
        while running():
            started = time.monotonic()
            try:
                async with session.ws_connect(
                    WSS,
                    headers={"Authorization": f"Bearer {token}"},
                    ssl=tls,
                    timeout=aiohttp.ClientWSTimeout(ws_close=5),
                ) as ws:
                    msg = await ws.receive(timeout=30)
                    if (
                        msg.type == aiohttp.WSMsgType.TEXT
                        and json.loads(msg.data)["type"] == "welcome"
                    ):
                        stats["welcomed"] += 1
                        wait = time.monotonic() - started
                        stats["longest_wait_s"] = max(stats["longest_wait_s"], round(wait, 3))
                    else:
                        stats["closed_after_101"].append(ws.close_code or str(msg.type))
            except aiohttp.WSServerHandshakeError as exc:
                stats["refused"].append(exc.status)
            except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                stats["errors"].append(repr(exc)[:200])

    async def publisher(session: aiohttp.ClientSession, which: int) -> None:
        n = 0
        while running():
            n += 1
            started = time.monotonic()
            try:
                async with session.post(
                    API,
                    ssl=tls,
                    json={"user_id": "loop", "title": f"p{which}-{n}"},
                    headers={"Authorization": f"Bearer {publish}"},
                    timeout=aiohttp.ClientTimeout(total=30),
                ) as r:
                    if r.status in (200, 201, 202):
                        stats["published"] += 1
                    else:
                        stats["publish_failed"].append(r.status)
            except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                stats["publish_failed"].append(repr(exc)[:200])
            took = time.monotonic() - started
            stats["longest_publish_s"] = max(stats["longest_publish_s"], round(took, 3))
            await asyncio.sleep(max(0.0, PUBLISH_EVERY - took))

    async def restart() -> None:
        if args.restart_at is None:
            return
        await asyncio.sleep(args.restart_at)
        proc = await asyncio.create_subprocess_exec("systemctl", "restart", "wsnotify")
        stats["restart_rc"] = await proc.wait()

    async with aiohttp.ClientSession() as session:
        publishers = [publisher(session, which) for which in range(args.publishers)]
        await asyncio.gather(connector(session), *publishers, restart())
    stats["seconds"] = round(time.monotonic() - started_at, 1)
    return stats


parser = argparse.ArgumentParser()
parser.add_argument("--stop-file", required=True)
parser.add_argument("--max-seconds", type=float, required=True)
parser.add_argument("--restart-at", type=float)
parser.add_argument("--publishers", type=int, default=1, help="each posting every 100 ms")
print(json.dumps(asyncio.run(main(parser.parse_args()))))
