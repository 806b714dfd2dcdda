"""Sampling profiles of a running server with py-spy, summarised as text.

Why: where a goal is not met, the report must say where the server's time goes. py-spy attaches
to the PID from outside (no change to the service); ``--nonblocking`` keeps it from pausing the
target, at some cost in sample accuracy. Figures taken while profiling are perturbed: profile
runs are for the "where", measuring runs for the "how much".
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import procs

PY_SPY = Path(__file__).resolve().parent.parent / ".venv" / "bin" / "py-spy"


def py_spy() -> str:
    """Path of py-spy, or an error that says how to get it."""
    found = str(PY_SPY) if PY_SPY.exists() else shutil.which("py-spy")
    if not found:
        raise RuntimeError(
            "py-spy is not installed: `.venv/bin/pip install -r bench/requirements.txt`"
        )
    return found


@contextlib.contextmanager
def record(pid: int, raw_out: Path, rate: int = 400) -> Iterator[None]:
    """Sample ``pid`` while the block runs; collapsed stacks land in ``raw_out``."""
    argv = [py_spy(), "record", "--pid", str(pid), "--rate", str(rate), "--format", "raw",
            "--output", str(raw_out), "--nonblocking"]  # fmt: skip
    if (os.cpu_count() or 1) > procs.LOADGEN_CORE:
        argv = ["taskset", "-c", str(procs.LOADGEN_CORE), *argv]
    log = raw_out.with_suffix(".log").open("wb")
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    log.close()
    time.sleep(0.5)  # let it attach before the measured work starts
    try:
        yield
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGINT)  # py-spy writes its output on SIGINT
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(5)


def _frame_name(frame: str) -> str:
    """``func (path/to/file.py:12)`` -> ``func (file.py)``; line numbers split one function."""
    name, _, where = frame.partition(" (")
    file = where.rstrip(")").rsplit(":", 1)[0]
    return f"{name} ({'/'.join(Path(file).parts[-2:])})" if file else name


def summarise(raw: Path, top: int = 15) -> dict[str, object]:
    """Self and inclusive sample shares per function, from py-spy's collapsed-stack output."""
    self_counts: Counter[str] = Counter()
    incl_counts: Counter[str] = Counter()
    total = 0
    if not raw.exists():
        return {"samples": 0, "error": f"no profile written; see {raw.with_suffix('.log')}"}
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_frame_name(f) for f in stack.split(";") if f]
        if not frames:
            continue
        total += count
        self_counts[frames[-1]] += count
        for name in set(frames):
            incl_counts[name] += count

    def share(counter: Counter[str]) -> list[tuple[str, float]]:
        return [(name, round(100 * n / total, 1)) for name, n in counter.most_common(top)]

    return {"samples": total, "self_pct": share(self_counts), "inclusive_pct": share(incl_counts)}


def render(title: str, summary: dict[str, object]) -> str:
    """A short text block for the terminal and the README."""
    lines = [f"{title}: {summary.get('samples', 0)} samples"]
    if "error" in summary:
        return "\n".join([*lines, f"  {summary['error']}"])
    for label, key in (("self", "self_pct"), ("inclusive", "inclusive_pct")):
        lines.append(f"  top {label} time:")
        for name, pct in summary[key]:  # type: ignore[attr-defined]
            lines.append(f"    {pct:5.1f}%  {name}")
    return "\n".join(lines)


def memory_summary(path: Path, connections: int, top: int = 15) -> dict[str, object]:
    """Allocation growth per source line while ``connections`` idle clients opened (bytes per
    connection), from tracemalloc_serve.py's dump."""
    if not path.exists():
        return {"error": f"no tracemalloc dump at {path}; see the wsnotify-B log"}
    data = json.loads(path.read_text())
    per = max(connections, 1)

    def rows(key: str) -> list[tuple[str, float]]:
        return [(_site(r["site"]), round(r["bytes"] / per)) for r in data[key][:top]]

    return {
        "connections": connections,
        "traced_bytes_per_conn": round(data["total_bytes_lineno"] / per),
        "by_line": rows("by_lineno"),
        "by_file": rows("by_filename"),
    }


def _site(site: str) -> str:
    """Shorten ``/long/path/pkg/file.py:12`` to ``pkg/file.py:12``."""
    path, _, line = site.rpartition(":")
    short = "/".join(Path(path).parts[-2:]) if path else site
    return f"{short}:{line}" if line and line != "0" else short


def render_memory(summary: dict[str, object]) -> str:
    if "error" in summary:
        return f"wsnotify memory: {summary['error']}"
    lines = [
        f"wsnotify memory growth per idle connection (tracemalloc, "
        f"{summary['connections']} connections): {summary['traced_bytes_per_conn']} B traced"
    ]
    for title, key in (("by file", "by_file"), ("by line", "by_line")):
        lines.append(f"  {title}:")
        for site, nbytes in summary[key]:  # type: ignore[attr-defined]
            lines.append(f"    {nbytes:6d} B  {site}")
    return "\n".join(lines)
