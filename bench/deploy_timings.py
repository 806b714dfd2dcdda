#!/usr/bin/env python3
"""Deploy timings of the whole stack on the local systemd container, median/min/max of N runs.

Each round: a cold converge on a bare container (WSNOTIFY_LOCAL_RECREATE=1), an idempotent
re-run (which must report changed=0), and the verify playbook on its own. The image is built
once before the first round and not timed (scripts/image.sh reuses it). A deploy's figure is
its playbook's own time as scripts/deploy-local.sh reports it: not the set-up checks before it,
nor a wait for another run on this machine to release the containers lock. Results: JSON under
bench/results/ and a printed table.

    python bench/deploy_timings.py [--rounds 3] [--cold-rounds 1]
    WSNOTIFY_LOCAL_SUITE=bookworm python bench/deploy_timings.py     (Debian 12; 13 by default)

--cold-rounds N re-creates the container only in the first N rounds (the others time the re-run
and verify only): a cold converge costs minutes, the figures the goals are about seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"


def timed(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, str]:
    start = time.perf_counter()
    run = subprocess.run(
        cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800, check=False
    )
    elapsed = time.perf_counter() - start
    out = run.stdout + run.stderr
    if run.returncode != 0:
        sys.exit(f"deploy_timings: {' '.join(cmd)} failed (rc={run.returncode}):\n{out[-4000:]}")
    return elapsed, out


def playbook_seconds(out: str) -> float:
    """The playbook's own time, from deploy-local.sh's last line."""
    found = re.findall(r"deployed to wsnotify-local in ([0-9.]+) s", out)
    if not found:
        sys.exit(f"deploy_timings: deploy-local.sh printed no timing:\n{out[-4000:]}")
    return float(found[-1])


def changed_count(out: str) -> int:
    counts = [int(n) for n in re.findall(r"wsnotify-local\s+: ok=\d+\s+changed=(\d+)", out)]
    if not counts:
        sys.exit("deploy_timings: no PLAY RECAP for wsnotify-local in the output")
    return counts[-1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--cold-rounds", type=int, default=None, help="default: every round")
    args = parser.parse_args()
    cold_rounds = args.rounds if args.cold_rounds is None else min(args.cold_rounds, args.rounds)
    suite = os.environ.get("WSNOTIFY_LOCAL_SUITE", "trixie")

    env = dict(os.environ, ANSIBLE_FORCE_COLOR="0")
    subprocess.run(["bash", "scripts/image.sh"], cwd=ROOT, check=True, capture_output=True)
    deploy = ["bash", "scripts/deploy-local.sh"]
    verify = ["bash", "-c", "source scripts/lib.sh && ansible-playbook playbooks/verify.yml"]
    figures: dict[str, list[float]] = {
        "cold_converge_s": [],
        "idempotent_rerun_s": [],
        "verify_s": [],
    }
    for n in range(1, args.rounds + 1):
        cold = None
        if n <= cold_rounds:
            _, out = timed(deploy, dict(env, WSNOTIFY_LOCAL_RECREATE="1"))
            cold = playbook_seconds(out)
            figures["cold_converge_s"].append(round(cold, 1))
        _, out = timed(deploy, env)
        rerun = playbook_seconds(out)
        if changed_count(out) != 0:
            sys.exit(f"deploy_timings: the re-run was not idempotent:\n{out[-4000:]}")
        check, _ = timed(verify, env)
        first = f"cold {cold:.1f} s, " if cold is not None else ""
        print(f"round {n}: {first}re-run {rerun:.1f} s (changed=0), verify {check:.1f} s")
        figures["idempotent_rerun_s"].append(round(rerun, 1))
        figures["verify_s"].append(round(check, 1))

    summary: dict = {
        name: {"median": statistics.median(v), "min": min(v), "max": max(v), "runs": v}
        for name, v in figures.items()
    }
    summary["suite"] = suite
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    (RESULTS / f"deploy-{stamp}.json").write_text(json.dumps(summary, indent=2) + "\n")
    (RESULTS / "latest-deploy.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"\n{'figure':<22}{'median':>9}{'min':>9}{'max':>9}   goal")
    goals = {"cold_converge_s": "", "idempotent_rerun_s": "<= 12 s", "verify_s": "<= 3 s"}
    print(f"Debian suite: {suite}")
    for name in figures:
        s = summary[name]
        print(f"{name:<22}{s['median']:>8.1f}s{s['min']:>8.1f}s{s['max']:>8.1f}s   {goals[name]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
