"""Process plumbing for the benchmarks: start pinned, wait until listening, measure, stop by PID.

Why /proc and not psutil: the figures are the kernel's own counters (VmRSS, utime+stime) and
the bench should need nothing beyond the service's own dependencies.
"""

from __future__ import annotations

import os
import resource
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

SERVER_CORE = 0
LOADGEN_CORE = 1
CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass
class Server:
    """A process started by the bench; ``pid`` is the server itself (taskset execs it)."""

    name: str
    popen: subprocess.Popen[bytes]
    port: int
    log: Path
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def raise_nofile() -> int:
    """Raise the soft open-files limit to the hard limit (no CAP_SYS_RESOURCE to go beyond)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def pin_self(core: int = LOADGEN_CORE) -> None:
    """Pin the calling process (the load generator) to one core, if the machine has it."""
    if core < (os.cpu_count() or 1):
        os.sched_setaffinity(0, {core})


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (the tiny race with another binder is acceptable here)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_pinned(
    name: str,
    argv: list[str],
    port: int,
    log: Path,
    env: dict[str, str] | None = None,
    core: int = SERVER_CORE,
    user: str | None = None,
    cwd: str | None = None,
) -> Server:
    """Start ``argv`` pinned to ``core`` with taskset; output goes to ``log``."""
    cmd = ["taskset", "-c", str(core), *argv] if core < (os.cpu_count() or 1) else argv
    fh = log.open("wb")
    popen = subprocess.Popen(
        cmd,
        stdout=fh,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env=env,
        user=user,
        cwd=cwd,
        start_new_session=True,
    )
    fh.close()
    return Server(name=name, popen=popen, port=port, log=log)


def wait_listening(server: Server, timeout: float = 15.0) -> None:
    """Block until ``server.port`` accepts a TCP connection; fail early if the process died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.popen.poll() is not None:
            raise RuntimeError(
                f"{server.name} exited with {server.popen.returncode} before listening on "
                f"{server.port}; its log ({server.log}) ends with:\n{server.log_tail()}"
            )
        try:
            with socket.create_connection(("127.0.0.1", server.port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(
        f"{server.name} did not listen on 127.0.0.1:{server.port} within {timeout:.0f} s; "
        f"see {server.log}:\n{server.log_tail()}"
    )


def stop(server: Server, timeout: float = 6.0) -> None:
    """SIGTERM the server by PID, then SIGKILL if it outlives ``timeout``."""
    if server.popen.poll() is not None:
        return
    os.kill(server.pid, signal.SIGTERM)
    try:
        server.popen.wait(timeout)
    except subprocess.TimeoutExpired:
        os.kill(server.pid, signal.SIGKILL)
        server.popen.wait(5)


def rss_kb(pid: int) -> int:
    """Resident set size of ``pid`` in KiB (VmRSS from /proc/PID/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def cpu_seconds(pid: int) -> float:
    """User+system CPU time of all threads of ``pid`` (fields 14 and 15 of /proc/PID/stat)."""
    raw = Path(f"/proc/{pid}/stat").read_text()
    fields = raw[raw.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def thread_cpu_ns(pid: int) -> int:
    """CPU time of the main thread of ``pid`` in ns (/proc/PID/schedstat, first field).

    Finer than /proc/PID/stat's clock ticks; enough for the event-loop servers, whose work on
    a broadcast happens in the main thread.
    """
    return int(Path(f"/proc/{pid}/schedstat").read_text().split()[0])
