"""Stripped-down servers for ``decompose.py``: how much each layer of wsnotify's /ws costs.

Usage: python aiohttp_variants.py MODE PORT
MODE is ``uvproto`` (a bare uvloop Protocol holding TCP connections: the floor of any Python
server on this loop) or ``aiohttp`` plus any of ``+hb`` (aiohttp's per-connection heartbeat
timer), ``+welcome`` (one JSON text frame after the upgrade), ``+jwt`` (PyJWT HS256 verification
of the Authorization header, secret in BENCH_JWT_SECRET) - the steps wsnotify's handler takes -
or ``+jwtlite`` (the same HS256 check done with hmac/base64/json directly: it prices the
alternative to PyJWT; it is a measuring device, not a verifier for the service).
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import json
import os
import sys
import time

import jwt
import uvloop
from aiohttp import web


class _Hold(asyncio.Protocol):
    """Keeps the connection and nothing else."""

    __slots__ = ("transport",)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        pass


async def _uvproto(port: int) -> None:
    server = await asyncio.get_running_loop().create_server(_Hold, "127.0.0.1", port, backlog=4096)
    print(f"ready {port}", flush=True)
    await server.serve_forever()


def _b64(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def _hs256_lite(token: str, key: bytes) -> str:
    """Signature, alg and exp checked with the standard library only; returns ``sub``."""
    header, payload, signature = token.split(".")
    mac = hmac.digest(key, f"{header}.{payload}".encode(), "sha256")
    if not hmac.compare_digest(mac, _b64(signature)):
        raise ValueError("bad signature")
    if json.loads(_b64(header)).get("alg") != "HS256":
        raise ValueError("unexpected alg")
    claims = json.loads(_b64(payload))
    if claims["exp"] < time.time():
        raise ValueError("expired")
    return str(claims["sub"])


def _aiohttp_app(mode: str) -> web.Application:
    secret = os.environ.get("BENCH_JWT_SECRET", "")
    heartbeat = 600.0 if "+hb" in mode else None

    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(compress=False, heartbeat=heartbeat)
        await ws.prepare(request)
        user = "anonymous"
        token = request.headers.get("Authorization", "")[7:]
        if "+jwtlite" in mode:
            user = _hs256_lite(token, secret.encode())
        elif "+jwt" in mode:
            user = jwt.decode(token, secret, algorithms=["HS256"])["sub"]
        if "+welcome" in mode:
            await ws.send_str(json.dumps({"type": "welcome", "user_id": user}))
        async for _msg in ws:
            pass
        return ws

    app = web.Application()
    app.router.add_get("/ws", handler)
    return app


def main() -> None:
    mode, port = sys.argv[1], int(sys.argv[2])
    if mode == "uvproto":
        uvloop.run(_uvproto(port))
        return
    web.run_app(
        _aiohttp_app(mode),
        host="127.0.0.1",
        port=port,
        access_log=None,
        print=lambda *_: print(f"ready {port}", flush=True),
        loop=uvloop.new_event_loop(),
    )


if __name__ == "__main__":
    main()
