#!/usr/bin/env python3
"""Benchmarks of wsnotify against Node ``ws`` and the raw send floor, in one run.

Why one run: absolute figures on a shared 2-core VM drift by up to +-40% between runs, so every
figure is reported as a ratio to a baseline measured in the same run, on the same machine, with
the server pinned to core 0 and this load generator to core 1.

    python bench/run.py            # full: 10,000 connections, 5 rounds, about 4 minutes
    python bench/run.py --smoke    # about 30-60 s, small counts, asserts the machinery works

The passes (one per server) are in passes.py, the ratios and the table in report.py.

Figures (see bench/README.md for what each one means):
  1. handshakes per server CPU-second, wsnotify verifying a JWT vs Node ws without auth
     (context: the same with NextAuth JWE tokens; picows doing the same JWT check)
  2. RSS per idle authenticated connection at N connections, vs Node ws (and picows)
  3. time until the last of N connections receives one 200-byte broadcast, vs the raw floor
  4. publish on one wsnotify process -> delivery on another through Redis, p50/p99
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import signal
import sys
import tempfile
import time
from pathlib import Path

import passes
import procs
import profiling
import report
import uvloop
import wsframes
from passes import BENCH, Params
from wsnotify_target import Wsnotify

SERVERS = ("node", "raw", "picows", "wsnotify")


# Each round runs the servers in another order, so warm caches or a noisy neighbour favour
# none of them systematically; figures are medians over rounds.
def order(round_index: int) -> tuple[str, ...]:
    """The servers rotated by round, reversed every other round."""
    k = round_index % len(SERVERS)
    rotated = SERVERS[k:] + SERVERS[:k]
    return rotated[::-1] if round_index % 2 else rotated


async def run_all(p: Params, only: set[str], work: Path) -> dict:
    payload = passes.payload_of(report.PAYLOAD_BYTES)
    secret = secrets.token_urlsafe(48)  # picows' HS256 key (wsnotify has its own)
    rounds: list[dict] = []
    ws = Wsnotify(work) if "wsnotify" in only else None
    try:
        if ws is not None:
            ws.start_backends()
        for r in range(p.rounds):
            result: dict = {}
            for name in order(r):
                if name not in only:
                    continue
                t0 = time.monotonic()
                if name == "node":
                    result[name] = await passes.pass_node(work, p, payload)
                elif name == "raw":
                    frame = wsframes.encode_frame(wsframes.OP_TEXT, payload, mask=False)
                    result[name] = await passes.pass_raw(work, p, frame)
                elif name == "picows":
                    result[name] = await passes.pass_picows(work, p, secret)
                elif ws is not None:
                    result[name] = await passes.pass_wsnotify(ws, p)
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
    return {"rounds": rounds, "summary": report.summarise(rounds)}


def loadavg() -> float:
    """One-minute load average: other work on the machine shows up in every figure."""
    return float(Path("/proc/loadavg").read_text().split()[0])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--smoke", action="store_true", help="small counts, asserts sanity (~1 min)")
    ap.add_argument("--conns", type=int, help="connections for figures 2-4 (default 10000)")
    ap.add_argument("--rounds", type=int, help="rounds, each server once per round (default 5)")
    ap.add_argument("--only", default=",".join(SERVERS), help="comma-separated subset")
    ap.add_argument("--out", type=Path, default=BENCH / "results", help="where JSON goes")
    ap.add_argument(
        "--profile",
        action="store_true",
        help="one round with py-spy attached to wsnotify; prints where its time goes\n"
        "(figures of such a run are perturbed by the sampling)",
    )
    args = ap.parse_args(argv)
    only = {x.strip() for x in args.only.split(",") if x.strip()}
    unknown = only - set(SERVERS)
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
    print(report.table(results["summary"], p.conns))
    for r in results["rounds"]:
        for phase, summary in r.get("wsnotify", {}).get("profiles", {}).items():
            if phase == "memory":
                print(profiling.render_memory(summary))
            else:
                print(profiling.render(f"wsnotify profile, {phase}", summary))
    print(f"results: {path} ({results['duration_s']} s)")
    if args.smoke:
        problems = report.check_smoke(results, only)
        if problems:
            print("SMOKE FAILED:\n  " + "\n  ".join(problems), file=sys.stderr)
            return 1
        print("smoke ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
