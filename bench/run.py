#!/usr/bin/env python3
"""Benchmarks of wsnotify against Node ``ws`` and the raw send floor, in one run.

Why one run: absolute figures on a shared 2-core VM drift by up to +-40% between runs, so every
figure is reported as a ratio to a baseline measured in the same run, on the same machine, with
the server pinned to core 0 and this load generator to core 1.

    python bench/run.py            # full: 10,000 connections, 5 rounds, about 4 minutes
    python bench/run.py --smoke    # about 30-60 s, small counts, asserts the machinery works

Figures (see bench/README.md for what each one means):
  1. handshakes per server CPU-second, wsnotify verifying a JWT vs Node ws without auth
  2. RSS per idle authenticated connection at N connections, vs Node ws
  3. time until the last of N connections receives one 200-byte broadcast, vs the raw floor
  4. publish on one wsnotify process -> delivery on another through Redis, p50/p99
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import loadgen
import procs
import profiling
import uvloop
import wsframes
from httpc import HttpClient
from loadgen import Target
from procs import Server
from stats import median
from wsnotify_target import Wsnotify

BENCH = Path(__file__).resolve().parent  # run as a script, so its directory is on sys.path

PAYLOAD_BYTES = 200


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


# --- run, summarise, check --------------------------------------------------------------------

# Each round runs the servers in another order, so warm caches or a noisy neighbour favour
# none of them systematically; figures are medians over rounds.
ORDERS = [
    ("node", "raw", "wsnotify"),
    ("wsnotify", "node", "raw"),
    ("raw", "wsnotify", "node"),
    ("node", "wsnotify", "raw"),
    ("wsnotify", "raw", "node"),
    ("raw", "node", "wsnotify"),
]


async def run_all(p: Params, only: set[str], work: Path) -> dict:
    payload = payload_of(PAYLOAD_BYTES)
    rounds: list[dict] = []
    ws = Wsnotify(work) if "wsnotify" in only else None
    try:
        if ws is not None:
            ws.start_backends()
        for r in range(p.rounds):
            result: dict = {}
            for name in ORDERS[r % len(ORDERS)]:
                if name not in only:
                    continue
                t0 = time.monotonic()
                if name == "node":
                    result[name] = await pass_node(work, p, payload)
                elif name == "raw":
                    frame = wsframes.encode_frame(wsframes.OP_TEXT, payload, mask=False)
                    result[name] = await pass_raw(work, p, frame)
                else:
                    assert ws is not None
                    result[name] = await pass_wsnotify(ws, p)
                    payload = ws.last_payload or payload  # baselines then send the same bytes
                result[name]["pass_s"] = round(time.monotonic() - t0, 1)
                print(
                    f"  round {r + 1}/{p.rounds}: {name} done in {result[name]['pass_s']} s",
                    flush=True,
                )
            rounds.append(result)
    finally:
        if ws is not None:
            ws.stop_backends()
    return {"rounds": rounds, "summary": summarise(rounds)}


def _med(rounds: list[dict], *path: str) -> float | None:
    values = []
    for r in rounds:
        node = r
        for key in path:
            if not isinstance(node, dict) or key not in node:
                break
            node = node[key]
        else:
            values.append(float(node))
    return median(values) if values else None


def summarise(rounds: list[dict]) -> dict:
    """Medians over rounds, ratios and goals."""
    s: dict = {
        "node_hs_per_cpu_s": _med(rounds, "node", "handshakes", "per_cpu_s"),
        "ws_hs_per_cpu_s": _med(rounds, "wsnotify", "handshakes", "per_cpu_s"),
        "node_kb_per_conn": _med(rounds, "node", "idle", "kb_per_conn"),
        "ws_kb_per_conn": _med(rounds, "wsnotify", "idle", "kb_per_conn"),
        "raw_fanout_ms": _med(rounds, "raw", "fanout", "trigger_to_last_ms"),
        "raw_send_loop_ms": _med(rounds, "raw", "fanout", "server_send_loop_ms"),
        "node_fanout_ms": _med(rounds, "node", "fanout", "trigger_to_last_ms"),
        "ws_fanout_ms": _med(rounds, "wsnotify", "fanout", "trigger_to_last_ms"),
        "ws_fanout_spread_ms": _med(rounds, "wsnotify", "fanout", "first_to_last_ms"),
        "raw_fanout_cpu_ms": _med(rounds, "raw", "fanout", "server_cpu_ms"),
        "ws_fanout_cpu_ms": _med(rounds, "wsnotify", "fanout", "server_cpu_ms"),
        "ws_cross_p50_ms": _med(rounds, "wsnotify", "cross_node", "p50_ms"),
        "ws_cross_p99_ms": _med(rounds, "wsnotify", "cross_node", "p99_ms"),
        "ws_publish_p50_ms": _med(rounds, "wsnotify", "cross_node", "publish_202_p50_ms"),
        "ws_publish_p99_ms": _med(rounds, "wsnotify", "cross_node", "publish_202_p99_ms"),
    }

    def ratio(a: str, b: str) -> float | None:
        return s[a] / s[b] if s[a] is not None and s[b] else None

    s["ratio_handshakes"] = ratio("ws_hs_per_cpu_s", "node_hs_per_cpu_s")
    s["ratio_rss"] = ratio("ws_kb_per_conn", "node_kb_per_conn")
    s["ratio_fanout"] = ratio("ws_fanout_ms", "raw_fanout_ms")
    s["ratio_node_fanout"] = ratio("node_fanout_ms", "raw_fanout_ms")
    s["ratio_fanout_cpu"] = ratio("ws_fanout_cpu_ms", "raw_fanout_cpu_ms")
    goals = {
        "handshakes": (s["ratio_handshakes"], lambda v: v >= 1.5),
        "rss": (s["ratio_rss"], lambda v: v <= 1.0),
        "fanout": (s["ratio_fanout"], lambda v: v <= 1.5),
        "cross_node_p99": (s["ws_cross_p99_ms"], lambda v: v <= 10.0),
    }
    s["goals_met"] = {k: (None if v is None else bool(ok(v))) for k, (v, ok) in goals.items()}
    return s


def _f(v: float | None, fmt: str = "{:.1f}") -> str:
    return "n/a" if v is None else fmt.format(v)


def table(s: dict, conns: int) -> str:
    """The printed table: each wsnotify figure beside its same-run baseline."""

    def met(key: str) -> str:
        v = s["goals_met"][key]
        return "n/a" if v is None else ("yes" if v else "NO")

    k = f"{conns / 1000:g}k" if conns >= 1000 else str(conns)
    rows = [
        ("figure", "wsnotify", "baseline", "ratio", "goal", "met"),
        (
            "1 handshakes / server CPU-s",
            _f(s["ws_hs_per_cpu_s"], "{:.0f} (JWT)"),
            _f(s["node_hs_per_cpu_s"], "{:.0f} node"),
            _f(s["ratio_handshakes"], "{:.2f}x"),
            ">= 1.5x",
            met("handshakes"),
        ),
        (
            f"2 RSS KB / idle conn @ {k}",
            _f(s["ws_kb_per_conn"]),
            _f(s["node_kb_per_conn"], "{:.1f} node"),
            _f(s["ratio_rss"], "{:.2f}x"),
            "<= 1.0x",
            met("rss"),
        ),
        (
            f"3 last of {k} gets broadcast, ms",
            _f(s["ws_fanout_ms"]),
            _f(s["raw_fanout_ms"], "{:.1f} raw"),
            _f(s["ratio_fanout"], "{:.2f}x"),
            "<= 1.5x",
            met("fanout"),
        ),
        (
            f"4 cross-node p50 / p99 ms @ {k}",
            f"{_f(s['ws_cross_p50_ms'], '{:.2f}')} / {_f(s['ws_cross_p99_ms'], '{:.2f}')}",
            "-",
            "-",
            "p99 <= 10 ms",
            met("cross_node_p99"),
        ),
        (
            "  context: node ws broadcast, ms",
            _f(s["node_fanout_ms"]),
            _f(s["raw_fanout_ms"], "{:.1f} raw"),
            _f(s["ratio_node_fanout"], "{:.2f}x"),
            "",
            "",
        ),
        (
            "  context: raw server send loop, ms",
            "",
            _f(s["raw_send_loop_ms"]),
            "",
            "",
            "",
        ),
        (
            "  context: server CPU per broadcast, ms",
            _f(s["ws_fanout_cpu_ms"]),
            _f(s["raw_fanout_cpu_ms"], "{:.1f} raw"),
            _f(s["ratio_fanout_cpu"], "{:.2f}x"),
            "",
            "",
        ),
        (
            "  context: wsnotify first->last, ms",
            _f(s["ws_fanout_spread_ms"]),
            "",
            "",
            "",
            "",
        ),
        (
            "  context: publish until 202 p50/p99 ms",
            f"{_f(s['ws_publish_p50_ms'], '{:.2f}')} / {_f(s['ws_publish_p99_ms'], '{:.2f}')}",
            "",
            "",
            "",
            "",
        ),
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(6)]
    lines = [
        "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in rows
    ]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def check_smoke(results: dict, only: set[str]) -> list[str]:
    """Sanity bounds for smoke mode: the machinery worked and the figures are plausible."""
    problems = []
    s = results["summary"]

    def want(cond: bool, what: str) -> None:
        if not cond:
            problems.append(what)

    for r in results["rounds"]:
        for name in ("node", "wsnotify"):
            if name in only:
                hs = r[name]["handshakes"]
                want(
                    100 < hs["per_cpu_s"] < 200_000,
                    f"{name} handshakes/CPU-s {hs['per_cpu_s']}",
                )
                want(hs["failed"] == 0, f"{name}: {hs['failed']} handshakes failed")
                idle = r[name]["idle"]
                want(
                    -10 < idle["kb_per_conn"] < 1000,
                    f"{name} KB/conn {idle['kb_per_conn']}",
                )
        for name in only:
            fo = r[name]["fanout"]
            want(
                0 < fo["trigger_to_last_ms"] < 10_000,
                f"{name} fan-out {fo['trigger_to_last_ms']}",
            )
            want(fo["server_cpu_ms"] > 0, f"{name}: no server CPU measured for a broadcast")
            want(
                abs(fo["payload_bytes"] - PAYLOAD_BYTES) <= 8,
                f"{name} payload {fo['payload_bytes']} bytes, expected ~{PAYLOAD_BYTES}",
            )
        if "wsnotify" in only:
            cn = r["wsnotify"]["cross_node"]
            want(cn["samples"] > 0 and 0 < cn["p99_ms"] < 5_000, f"cross-node {cn}")
    if {"node", "wsnotify"} <= only:
        want(s["ratio_handshakes"] is not None, "no handshake ratio")
    return problems


def loadavg() -> float:
    """One-minute load average: other work on the machine shows up in every figure."""
    return float(Path("/proc/loadavg").read_text().split()[0])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--smoke", action="store_true", help="small counts, asserts sanity (~1 min)")
    ap.add_argument("--conns", type=int, help="connections for figures 2-4 (default 10000)")
    ap.add_argument("--rounds", type=int, help="rounds, each server once per round (default 5)")
    ap.add_argument("--only", default="node,raw,wsnotify", help="comma-separated subset")
    ap.add_argument("--out", type=Path, default=BENCH / "results", help="where JSON goes")
    ap.add_argument(
        "--profile",
        action="store_true",
        help="one round with py-spy attached to wsnotify; prints where its time goes\n"
        "(figures of such a run are perturbed by the sampling)",
    )
    args = ap.parse_args(argv)
    only = {x.strip() for x in args.only.split(",") if x.strip()}
    unknown = only - {"node", "raw", "wsnotify"}
    if unknown:
        ap.error(f"unknown --only entries: {', '.join(sorted(unknown))}")
    p = Params.for_mode(args.smoke, args)
    started = time.time()
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(started))
    mode = "smoke" if args.smoke else "full"
    if args.profile:
        profiling.py_spy()  # fail now, not after the baselines ran
        mode += "-profile"
        p.rounds = 1
        p.fanout_repeats = max(p.fanout_repeats, 30)  # enough samples of a ~0.1 s event
        p.profile_dir = args.out / f"profile-{stamp}"
        p.profile_dir.mkdir(parents=True, exist_ok=True)
    nofile = procs.raise_nofile()
    if nofile < p.conns + 1000:
        ap.error(f"open-files hard limit {nofile} is too low for {p.conns} connections")
    procs.pin_self(procs.LOADGEN_CORE)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the finally blocks
    print(
        f"wsnotify bench ({mode}): {p.conns} connections, {p.rounds} round(s), "
        f"server core {procs.SERVER_CORE}, load generator core {procs.LOADGEN_CORE}, "
        f"open files {nofile}",
        flush=True,
    )
    load_before = loadavg()
    if load_before > 1.0:
        print(
            f"warning: load average {load_before:.1f} before the run: other work shares these "
            "2 cores, so figures will be noisier than usual (ratios are still same-run)",
            flush=True,
        )
    with tempfile.TemporaryDirectory(prefix="wsnotify-bench-") as tmp:
        results = uvloop.run(asyncio.wait_for(run_all(p, only, Path(tmp)), p.budget))
    results.update(
        {
            "mode": mode,
            "params": {k: str(v) if isinstance(v, Path) else v for k, v in p.__dict__.items()},
            "only": sorted(only),
            "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
            "duration_s": round(time.time() - started, 1),
            "cpus": os.cpu_count(),
            "loadavg_before": load_before,
            "loadavg_after": loadavg(),
        }
    )
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"bench-{mode}-{stamp}.json"
    path.write_text(json.dumps(results, indent=2) + "\n")
    (args.out / f"latest-{mode}.json").write_text(json.dumps(results, indent=2) + "\n")
    print(table(results["summary"], p.conns))
    for r in results["rounds"]:
        for phase, summary in r.get("wsnotify", {}).get("profiles", {}).items():
            if phase == "memory":
                print(profiling.render_memory(summary))
            else:
                print(profiling.render(f"wsnotify profile, {phase}", summary))
    print(f"results: {path} ({results['duration_s']} s)")
    if args.smoke:
        problems = check_smoke(results, only)
        if problems:
            print("SMOKE FAILED:\n  " + "\n  ".join(problems), file=sys.stderr)
            return 1
        print("smoke ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
