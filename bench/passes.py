"""The bench's measurements and one pass per server (Node ws, raw floor, picows, wsnotify).

Each pass starts its server pinned to the server core, measures it with the load generator
(this process, pinned to the other core) and stops it by PID; ``run.py`` orders the passes
and ``report.py`` turns their figures into ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
import time
import timeit
from dataclasses import dataclass
from pathlib import Path

import jwt
import loadgen
import procs
import profiling
from httpc import HttpClient
from loadgen import Target
from procs import Server
from report import PAYLOAD_BYTES
from stats import median
from wsnotify_target import Wsnotify

BENCH = Path(__file__).resolve().parent  # run as a script, so its directory is on sys.path


@dataclass
class Params:
    """Counts and durations of one run; smoke mode shrinks all of them."""

    conns: int
    rounds: int
    handshake_seconds: float
    handshake_warmup: float
    handshake_concurrency: int
    open_concurrency: int
    fanout_repeats: int
    probes: int
    probe_gap: float
    settle: float
    budget: float
    profile_dir: Path | None = None

    @classmethod
    def for_mode(cls, smoke: bool, args: argparse.Namespace) -> Params:
        if smoke:
            p = cls(
                conns=500,
                rounds=1,
                handshake_seconds=1.5,
                handshake_warmup=0.3,
                handshake_concurrency=16,
                open_concurrency=32,
                fanout_repeats=2,
                probes=20,
                probe_gap=0.01,
                settle=0.5,
                budget=150,
            )
        else:
            p = cls(
                conns=10_000,
                rounds=5,
                handshake_seconds=5.0,
                handshake_warmup=1.0,
                handshake_concurrency=32,
                open_concurrency=64,
                fanout_repeats=5,
                probes=300,
                probe_gap=0.02,
                settle=2.0,
                budget=600,
            )
        if args.conns:
            p.conns = args.conns
        if args.rounds:
            p.rounds = args.rounds
        return p


# --- measurements shared by all servers -------------------------------------------------------


async def measure_handshakes(server: Server, target: Target, p: Params) -> dict[str, float]:
    """Handshakes completed per CPU-second the server process spent (user+system, all threads)."""
    await loadgen.handshake_loop(target, p.handshake_warmup, p.handshake_concurrency)
    cpu0, wall0 = procs.cpu_seconds(server.pid), time.monotonic()
    ok, failed, error = await loadgen.handshake_loop(
        target, p.handshake_seconds, p.handshake_concurrency
    )
    cpu, wall = procs.cpu_seconds(server.pid) - cpu0, time.monotonic() - wall0
    if ok == 0 or cpu <= 0:
        raise RuntimeError(f"{server.name}: no handshake completed ({failed} failed: {error})")
    return {
        "handshakes": ok,
        "failed": failed,
        "server_cpu_s": round(cpu, 3),
        "wall_s": round(wall, 3),
        "per_cpu_s": ok / cpu,
        "per_wall_s": ok / wall,
        "server_busy": round(cpu / wall, 3),  # below ~0.9 the load generator was the limit
    }


async def _signal_and_wait(pid: int, sig: int, path: Path, timeout: float = 120) -> None:
    """Signal the tracemalloc wrapper and wait until it wrote ``path`` (snapshots of a heap
    with thousands of connections take seconds, with the server's loop blocked meanwhile)."""
    os.kill(pid, sig)
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise RuntimeError(f"no {path} {timeout:.0f} s after signal {sig} to {pid}")
        await asyncio.sleep(0.2)


async def open_idle(
    server: Server, target: Target, p: Params, trace: Path | None = None
) -> tuple[dict[str, float], list]:
    """Open ``p.conns`` idle clients; RSS growth per connection from /proc/PID/status."""
    warm = await loadgen.open_many(target, 4, 4)  # load lazily imported code first
    await loadgen.close_many(warm)
    await asyncio.sleep(p.settle / 2)
    rss0 = procs.rss_kb(server.pid)
    if trace is not None:  # tracemalloc baseline before the connections, growth after
        await _signal_and_wait(server.pid, signal.SIGUSR2, trace.with_suffix(".mark"))
    t0 = time.monotonic()
    clients = await loadgen.open_many(target, p.conns, p.open_concurrency)
    opened_s = time.monotonic() - t0
    await asyncio.sleep(p.settle)
    rss1 = procs.rss_kb(server.pid)
    if trace is not None:
        await _signal_and_wait(server.pid, signal.SIGUSR1, trace)
    return {
        "connections": len(clients),
        "rss_before_kb": rss0,
        "rss_after_kb": rss1,
        "kb_per_conn": (rss1 - rss0) / len(clients),
        "open_s": round(opened_s, 3),
    }, clients


async def fanout(
    server: Server, clients: list, trigger, repeats: int, timeout: float = 30.0
) -> dict[str, float]:
    """Median over ``repeats`` of trigger->last arrival and first->last arrival, in ms.

    Also the server's main-thread CPU time per broadcast: unlike wall time it barely moves when
    other work shares the cores, so its ratio is the steadier one on a busy machine.
    """
    to_last, spread, sizes, cpu = [], [], [], []
    for _ in range(repeats):
        cpu0 = procs.thread_cpu_ns(server.pid)
        arrivals, t0 = await loadgen.wait_arrivals(clients, trigger, timeout)
        cpu.append((procs.thread_cpu_ns(server.pid) - cpu0) / 1e6)
        to_last.append((arrivals.last_ns - t0) / 1e6)
        spread.append((arrivals.last_ns - arrivals.first_ns) / 1e6)
        sizes.append(len(arrivals.payload))
        await asyncio.sleep(0.2)
    return {
        "receivers": len(clients),
        "trigger_to_last_ms": median(to_last),
        "first_to_last_ms": median(spread),
        "server_cpu_ms": median(cpu),
        "payload_bytes": int(median(sizes)),
        "samples_ms": [round(x, 2) for x in to_last],
    }


def payload_of(size: int) -> bytes:
    """A JSON text of exactly ``size`` bytes shaped like a notification (Node/raw baselines)."""
    base = {
        "type": "notification",
        "id": 1,
        "user_id": None,
        "title": "bench",
        "body": "",
        "data": {},
        "created_at": "2026-11-26T00:00:00.000000+00:00",
    }
    base["body"] = "x" * (size - len(json.dumps(base, separators=(",", ":"))))
    text = json.dumps(base, separators=(",", ":")).encode()
    assert len(text) == size
    return text


# --- the three servers --------------------------------------------------------------------


async def pass_node(work: Path, p: Params, payload: bytes) -> dict:
    """Node ws: idle RSS, (for context) its own broadcast, then handshakes."""
    script = BENCH / "node_ws_server.js"
    if not (BENCH / "node_modules" / "ws" / "package.json").exists():
        raise RuntimeError("bench/node_modules is missing: run `npm ci --prefix bench` first")
    port = procs.free_port()
    server = procs.start_pinned(
        "node-ws",
        ["node", str(script), str(port)],
        port,
        work / "node.log",
        cwd=str(BENCH),
    )
    try:
        procs.wait_listening(server)
        target = Target(port=port)
        # Idle RSS first, on a fresh process: a heap that just churned through thousands of
        # handshakes may shrink under the new connections (Node's GC), hiding their cost.
        out: dict = {}
        out["idle"], clients = await open_idle(server, target, p)
        http = HttpClient(port)

        async def trigger() -> None:
            status, body = await http.request("POST", "/broadcast", payload)
            if status != 200:
                raise RuntimeError(f"node /broadcast answered {status}: {body[:200]!r}")

        try:
            out["fanout"] = await fanout(server, clients, trigger, p.fanout_repeats)
        finally:
            await http.close()
            await loadgen.close_many(clients)
        out["handshakes"] = await measure_handshakes(server, target, p)
        return out
    finally:
        procs.stop(server)


async def pass_raw(work: Path, p: Params, frame: bytes) -> dict:
    """The floor: plain TCP clients, one bare send() of the frame to each."""
    port, ctl_port = procs.free_port(), procs.free_port()
    argv = [
        sys.executable,
        str(BENCH / "raw_floor_server.py"),
        str(port),
        str(ctl_port),
    ]
    server = procs.start_pinned("raw-floor", argv, port, work / "raw.log")
    try:
        procs.wait_listening(server)
        clients = await loadgen.open_many(Target(port=port, path=None), p.conns, p.open_concurrency)
        reader, writer = await asyncio.open_connection("127.0.0.1", ctl_port)
        try:
            deadline = time.monotonic() + 10
            while True:  # accept() on the server side trails connect() here
                writer.write(b"COUNT\n")
                if int(await reader.readline()) >= len(clients):
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError("raw floor server did not accept every client in 10 s")
                await asyncio.sleep(0.05)
            loops: list[float] = []

            async def trigger() -> None:
                writer.write(b"SEND " + frame.hex().encode() + b"\n")
                _ok, sent, ns = (await reader.readline()).split()
                loops.append(int(ns) / 1e6)
                if int(sent) != len(clients):
                    raise RuntimeError(f"raw floor sent to {int(sent)} of {len(clients)}")

            out = {"fanout": await fanout(server, clients, trigger, p.fanout_repeats)}
            out["fanout"]["server_send_loop_ms"] = median(loops)
            writer.write(b"QUIT\n")
            await reader.readline()
        finally:
            writer.close()
            await loadgen.close_many(clients, timeout=5)
        return out
    finally:
        procs.stop(server)


async def pass_picows(work: Path, p: Params, secret: str) -> dict:
    """picows with the same HS256 check and welcome: the alternative core (figures 1 and 2)."""
    port = procs.free_port()
    argv = [sys.executable, str(BENCH / "picows_server.py"), str(port)]
    env = {**os.environ, "BENCH_JWT_SECRET": secret}
    server = procs.start_pinned("picows", argv, port, work / "picows.log", env=env)
    now = int(time.time())
    tokens = [
        jwt.encode({"sub": f"p-{i}", "iat": now, "exp": now + 3600}, secret, algorithm="HS256")
        for i in range(2000)
    ]
    target = Target(
        port,
        "/ws",
        lambda i: {"Authorization": f"Bearer {tokens[i % len(tokens)]}"},
        want_welcome=True,
    )
    try:
        procs.wait_listening(server)
        out: dict = {}
        out["idle"], clients = await open_idle(server, target, p)
        await loadgen.close_many(clients)
        out["handshakes"] = await measure_handshakes(server, target, p)
        return out
    finally:
        procs.stop(server)


def verify_cost_us(ws: Wsnotify, rounds: int = 2000) -> dict[str, float]:
    """Server-side cost of one token check, in this process: HS256 vs NextAuth JWE (µs)."""
    from wsnotify.auth import JwtSettings, verify_token

    settings = JwtSettings(secret=ws.jwt_secret, audience=None, issuer=None, leeway=30)
    out = {}
    for name, token in (("hs256", ws.token("verify")), ("jwe", ws.nextauth_token("verify"))):
        assert verify_token(token, settings) == "verify"
        best = min(
            timeit.repeat(lambda t=token: verify_token(t, settings), number=rounds, repeat=5)
        )
        out[name] = best / rounds * 1e6
    return out


async def pass_wsnotify(ws: Wsnotify, p: Params) -> dict:
    """wsnotify: handshakes with JWT on node A; idle RSS, broadcast and cross-node on node B."""
    trace = p.profile_dir / "memory-open.json" if p.profile_dir is not None else None
    a, b = ws.start_pair(trace_b=trace)
    profiles: dict[str, dict] = {}

    def profiled(server: Server, phase: str) -> contextlib.AbstractContextManager[None]:
        if p.profile_dir is None:
            return contextlib.nullcontext()
        raw = p.profile_dir / f"{phase}.txt"
        profiles[phase] = {"raw": str(raw)}
        return profiling.record(server.pid, raw)

    try:
        await ws.wait_healthy()
        with profiled(a, "handshake"):
            hs = await measure_handshakes(a, ws.target(a, "hs", users=2000), p)
        out: dict = {"handshakes": hs}
        out["handshakes_jwe"] = await measure_handshakes(
            a, ws.target(a, "jwe", users=2000, nextauth=True), p
        )
        out["verify_us"] = verify_cost_us(ws)
        with profiled(b, "open"):
            out["idle"], clients = await open_idle(b, ws.target(b, "idle"), p, trace)
        if trace is not None:
            profiles["memory"] = profiling.memory_summary(trace, len(clients))
        try:
            await ws.calibrate(b, clients, PAYLOAD_BYTES)
            with profiled(b, "fanout"):
                out["fanout"] = await fanout(
                    b, clients, lambda: ws.publish_broadcast(b), p.fanout_repeats
                )
            with profiled(b, "cross_node_b"):
                out["cross_node"] = await ws.cross_node(a, b, p.probes, p.probe_gap)
        finally:
            await loadgen.close_many(clients)
        for info in profiles.values():
            if "raw" in info:
                info.update(profiling.summarise(Path(info["raw"])))
        if profiles:
            out["profiles"] = profiles
        return out
    finally:
        await ws.stop_pair()
