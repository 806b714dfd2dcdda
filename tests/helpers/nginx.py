"""Run a real nginx from a config text, in its own prefix directory, stopped by PID.

Usage (reusable by any test)::

    with running_nginx(http_config, tmp_path / "nginx", ports=[8443]) as nginx:
        ...  # nginx.pid, nginx.error_log() for diagnostics

``http_config`` is the body of the ``http {}`` block (server blocks etc.); the main context
(``daemon off``, pid file, logs and temp paths inside the prefix) is generated around it. Pass
``full_config=True`` to give a complete nginx.conf instead.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from .ports import wait_listening

NGINX = os.environ.get("NGINX_BINARY", "/usr/sbin/nginx")


def main_config(http_config: str, prefix: Path) -> str:
    """A self-contained nginx.conf: everything nginx writes stays under ``prefix``."""
    user = "user root root;\n" if os.geteuid() == 0 else ""
    temp = "\n".join(
        f"    {kind}_temp_path {prefix}/tmp/{kind};"  # noqa: S108 - inside the test prefix
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return f"""{user}daemon off;
master_process on;
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/logs/error.log info;
events {{ worker_connections 256; }}
http {{
    access_log {prefix}/logs/access.log;
{temp}
{http_config}
}}
"""


class NginxProcess:
    """One nginx master (foreground) in its prefix; ``stop()`` signals the PID of its pid file."""

    def __init__(
        self,
        config: str,
        prefix: Path,
        ports: list[int] | None = None,
        full_config: bool = False,
    ) -> None:
        self.prefix = Path(prefix)
        self.ports = ports or []
        for sub in ("conf", "logs", "tmp"):
            (self.prefix / sub).mkdir(parents=True, exist_ok=True)
        self.conf = self.prefix / "conf" / "nginx.conf"
        self.conf.write_text(config if full_config else main_config(config, self.prefix))
        self.proc: subprocess.Popen | None = None
        self.pid: int | None = None

    def _cmd(self, *extra: str) -> list[str]:
        return [NGINX, "-p", str(self.prefix), "-e", str(self.prefix / "logs/error.log"),
                "-c", str(self.conf), *extra]  # fmt: skip

    def test_config(self) -> None:
        """``nginx -t``: raise with nginx's own message when the config is invalid."""
        out = subprocess.run(self._cmd("-t"), capture_output=True, text=True, timeout=30)
        if out.returncode != 0:
            raise RuntimeError(f"nginx -t failed:\n{out.stderr}")

    def start(self, timeout: float = 10.0) -> NginxProcess:
        self.test_config()
        self.proc = subprocess.Popen(self._cmd(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        pid_file = self.prefix / "nginx.pid"
        deadline = time.monotonic() + timeout
        while not pid_file.exists() or not pid_file.read_text().strip():
            if self.proc.poll() is not None:
                raise RuntimeError(f"nginx exited: {self.proc.stderr.read().decode()}")
            if time.monotonic() > deadline:
                self.proc.kill()
                raise RuntimeError("nginx wrote no pid file in time")
            time.sleep(0.02)
        self.pid = int(pid_file.read_text())
        if self.pid != self.proc.pid:  # daemon off: the master is the process we started
            self.proc.kill()
            raise RuntimeError(f"pid file names {self.pid}, expected {self.proc.pid}")
        for port in self.ports:
            wait_listening(port, timeout=max(deadline - time.monotonic(), 0.5))
        return self

    def error_log(self) -> str:
        path = self.prefix / "logs/error.log"
        return path.read_text() if path.exists() else ""

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM (fast shutdown) to the pid from the pid file, then SIGKILL if it lingers."""
        if self.pid is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGTERM)
        if self.proc is not None:
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.pid, signal.SIGKILL)
                self.proc.wait(5)
            if self.proc.stderr:
                self.proc.stderr.close()
        self.pid = None

    def __enter__(self) -> NginxProcess:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


@contextlib.contextmanager
def running_nginx(
    config: str, prefix: Path, ports: list[int] | None = None, full_config: bool = False
) -> Iterator[NginxProcess]:
    """nginx from ``config`` (``nginx -t`` first), up on ``ports``; stopped by PID on exit."""
    nginx = NginxProcess(config, prefix, ports=ports, full_config=full_config)
    nginx.start()
    try:
        yield nginx
    finally:
        nginx.stop()
