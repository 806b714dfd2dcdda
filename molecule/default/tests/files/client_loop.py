"""Runs inside the container with the release's Python (aiohttp): one client connecting again
and again through nginx (wss, the site's certificate) and a publisher posting every 100 ms,
while `systemctl restart wsnotify` runs after 2 s. Reads the user token and the publish token
from stdin (never argv); prints one JSON line of counts. Bounded: 12 s of load.
"""

import asyncio
import json
import ssl
import sys
import time

import aiohttp

WSS, API = "wss://127.0.0.1/ws", "https://127.0.0.1/api/notifications"
SECONDS, RESTART_AT = 12.0, 2.0


async def main() -> dict:
    token, publish = sys.stdin.readline().strip(), sys.stdin.readline().strip()
    tls = ssl.create_default_context(cafile="/etc/nginx/tls/wsnotify.crt")
    stats = {
        "welcomed": 0,
        "refused": [],
        "errors": [],
        "closed_after_101": 0,
        "published": 0,
        "publish_failed": [],
        "longest_wait_s": 0.0,
        "restart_rc": None,
    }
    end = time.monotonic() + SECONDS

    async def connector(session):
        while time.monotonic() < end:
            started = time.monotonic()
            try:
                async with session.ws_connect(
                    WSS,
                    headers={"Authorization": f"Bearer {token}"},
                    ssl=tls,
                    timeout=aiohttp.ClientWSTimeout(ws_close=5),
                ) as ws:
                    msg = await ws.receive(timeout=10)
                    if (
                        msg.type == aiohttp.WSMsgType.TEXT
                        and json.loads(msg.data)["type"] == "welcome"
                    ):
                        stats["welcomed"] += 1
                        stats["longest_wait_s"] = max(
                            stats["longest_wait_s"], time.monotonic() - started
                        )
                    else:
                        stats["closed_after_101"] += 1
            except aiohttp.WSServerHandshakeError as exc:
                stats["refused"].append(exc.status)
            except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                stats["errors"].append(repr(exc)[:200])

    async def publisher(session):
        n = 0
        while time.monotonic() < end:
            n += 1
            try:
                async with session.post(
                    API,
                    ssl=tls,
                    json={"user_id": "loop", "title": f"p{n}"},
                    headers={"Authorization": f"Bearer {publish}"},
                ) as r:
                    if r.status in (200, 201, 202):
                        stats["published"] += 1
                    else:
                        stats["publish_failed"].append(r.status)
            except (aiohttp.ClientError, OSError) as exc:
                stats["publish_failed"].append(repr(exc)[:200])
            await asyncio.sleep(0.1)

    async def restart():
        await asyncio.sleep(RESTART_AT)
        proc = await asyncio.create_subprocess_exec("systemctl", "restart", "wsnotify")
        stats["restart_rc"] = await proc.wait()

    async with aiohttp.ClientSession() as session:
        await asyncio.gather(connector(session), publisher(session), restart())
    return stats


print(json.dumps(asyncio.run(main())))
