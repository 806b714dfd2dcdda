#!/usr/bin/env python3
"""Where wsnotify's per-handshake CPU and per-connection memory go, layer by layer.

Why: figures 1 and 2 miss their goals; this measures, in one run and on the same pinned cores,
the same handshake (or idle connection) against servers that add one of wsnotify's steps at a
time (see aiohttp_variants.py), with Node ws and wsnotify itself as the ends of the scale.

    python bench/decompose.py              # about 1-2 minutes
    python bench/decompose.py --conns 2000 # faster, rougher memory figures
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import sys
import tempfile
import time
from pathlib import Path

import jwt
import passes
import procs
import run
import uvloop
from loadgen import Target
from procs import Server
from wsnotify_target import Wsnotify

BENCH = Path(__file__).resolve().parent
HANDSHAKE_LADDER = [
    "aiohttp",
    "aiohttp+hb",
    "aiohttp+hb+welcome",
    "aiohttp+hb+welcome+jwt",
    "aiohttp+hb+welcome+jwtlite",
]
MEMORY_LADDER = ["uvproto", "aiohttp", "aiohttp+hb+welcome+jwt"]


def _variant(mode: str, work: Path, secret: str) -> Server:
    port = procs.free_port()
    argv = [sys.executable, str(BENCH / "aiohttp_variants.py"), mode, str(port)]
    env = {"BENCH_JWT_SECRET": secret, "PATH": "/usr/bin:/bin"}
    server = procs.start_pinned(mode, argv, port, work / f"{mode}.log", env=env)
    procs.wait_listening(server)
    return server


def _node(work: Path) -> Server:
    port = procs.free_port()
    argv = ["node", str(BENCH / "node_ws_server.js"), str(port)]
    server = procs.start_pinned("node-ws", argv, port, work / "node.log", cwd=str(BENCH))
    procs.wait_listening(server)
    return server


async def _measure(server: Server, target: Target, p: passes.Params, what: str) -> dict:
    try:
        if what == "memory":
            idle, clients = await passes.open_idle(server, target, p)
            await passes.loadgen.close_many(clients)
            return idle
        return await passes.measure_handshakes(server, target, p)
    finally:
        procs.stop(server)


async def decompose(p: passes.Params, work: Path) -> dict:
    secret = secrets.token_urlsafe(48)
    now = int(time.time())
    token = jwt.encode({"sub": "u1", "iat": now, "exp": now + 3600}, secret, algorithm="HS256")

    def target(server: Server, mode: str) -> Target:
        if mode == "uvproto":
            return Target(port=server.port, path=None)
        headers = {"Authorization": f"Bearer {token}"} if "+jwt" in mode else {}  # +jwtlite too
        return Target(server.port, "/ws", lambda _i: headers, want_welcome="+welcome" in mode)

    out: dict = {"handshakes": {}, "memory": {}}
    for what, ladder in (("handshakes", HANDSHAKE_LADDER), ("memory", MEMORY_LADDER)):
        node = _node(work)
        out[what]["node ws"] = await _measure(node, Target(port=node.port), p, what)
        for mode in ladder:
            server = _variant(mode, work, secret)
            out[what][mode] = await _measure(server, target(server, mode), p, what)
            print(f"  {what}: {mode} done", flush=True)
    ws = Wsnotify(work)
    try:
        ws.start_backends()
        for what in ("handshakes", "memory"):
            a, _b = ws.start_pair()
            try:
                await ws.wait_healthy()
                users = 2000 if what == "handshakes" else 0
                out[what]["wsnotify"] = await _measure(a, ws.target(a, what, users), p, what)
            finally:
                await ws.stop_pair()
    finally:
        ws.stop_backends()
    return out


def render(result: dict) -> str:
    lines = ["| server | handshakes / CPU-s | server CPU us / handshake |", "|---|---|---|"]
    for name, hs in result["handshakes"].items():
        lines.append(f"| {name} | {hs['per_cpu_s']:.0f} | {1e6 / hs['per_cpu_s']:.0f} |")
    lines += ["", "| server | RSS KB / idle connection |", "|---|---|"]
    for name, idle in result["memory"].items():
        lines.append(f"| {name} | {idle['kb_per_conn']:.1f} |")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--conns", type=int, default=10_000, help="idle connections per memory step")
    ap.add_argument("--out", type=Path, default=BENCH / "results", help="where JSON goes")
    args = ap.parse_args()
    p = passes.Params.for_mode(False, argparse.Namespace(conns=args.conns, rounds=1))
    p.handshake_seconds = 4.0
    procs.raise_nofile()
    procs.pin_self(procs.LOADGEN_CORE)
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="wsnotify-decompose-") as tmp:
        result = uvloop.run(asyncio.wait_for(decompose(p, Path(tmp)), 600))
    result["started_utc"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started))
    result["loadavg_after"] = run.loadavg()
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"decompose-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime(started))}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(render(result))
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
