"""Real Redis and PostgreSQL servers for tests and benchmarks, on free loopback ports.

Plain functions, no pytest dependency, so benchmarks import them too::

    from backends import start_redis, start_postgres, free_port
    redis = start_redis(tmpdir, free_port())            # .url .stop() .start() .restart()
    pg = start_postgres(tmpdir2, free_port())           # .url .stop() .start() .restart()

Each server runs in its own directory, is stopped by PID (never by name) and is also stopped
at interpreter exit if the caller forgot. PostgreSQL refuses to run as root, so when running as
root its directory is handed to the ``postgres`` user and the binaries run through ``runuser``.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import time
from pathlib import Path

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
PG_BIN = Path("/usr/lib/postgresql/15/bin")
START_TIMEOUT = 20.0

_running: set[_Server] = set()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_port(port: int, timeout: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server on port {port} exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.02)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {timeout}s")


class _Server:
    url: str
    port: int

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def restart(self) -> None:
        self.stop()
        self.start()

    def __enter__(self) -> _Server:
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


class RedisServer(_Server):
    """redis-server in the foreground, no persistence, optional password."""

    def __init__(self, directory: Path, port: int, password: str | None) -> None:
        self.dir = Path(directory)
        self.port = port
        self.password = password
        auth = f":{password}@" if password else ""
        self.url = f"redis://{auth}127.0.0.1:{port}/0"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        if self.proc is not None:
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        args = [
            REDIS_SERVER,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.dir),
            "--save", "",
            "--appendonly", "no",
            "--daemonize", "no",
            "--logfile", str(self.dir / "redis.log"),
        ]  # fmt: skip
        if self.password:
            args += ["--requirepass", self.password]
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL)
        _running.add(self)
        try:
            self._wait_pong()
        except Exception:
            self.stop()
            raise

    def _wait_pong(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        command = b"PING\r\n"
        if self.password:
            command = f"AUTH {self.password}\r\n".encode() + command
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                log = (self.dir / "redis.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"redis-server exited ({self.proc.returncode}): {log}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                    sock.sendall(command)
                    reply = b""
                    while b"PONG" not in reply and len(reply) < 200:
                        chunk = sock.recv(200)
                        if not chunk:
                            break
                        reply += chunk
                    if b"PONG" in reply:
                        return
            except OSError:
                pass
            time.sleep(0.02)
        raise TimeoutError(f"redis on port {self.port} did not answer PING")

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        self.proc = None
        _running.discard(self)


def _as_postgres() -> list[str]:
    return ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []


class PostgresServer(_Server):
    """A throwaway PostgreSQL cluster (fsync off) with password auth over TCP."""

    def __init__(self, directory: Path, port: int, database: str, password: str) -> None:
        self.dir = Path(directory)
        self.data = self.dir / "data"
        self.port = port
        self.database = database
        self.password = password
        self.url = f"postgresql://postgres:{password}@127.0.0.1:{port}/{database}"
        self.started = False

    def _run(self, *args: str, timeout: float = 60) -> None:
        result = subprocess.run(
            [*_as_postgres(), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd="/",
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"{Path(args[0]).name} failed: {result.stderr.strip()[-2000:]}")

    def init(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            postgres = pwd.getpwnam("postgres")
            os.chown(self.dir, postgres.pw_uid, postgres.pw_gid)
            os.chmod(self.dir, 0o700)
        if os.geteuid() == 0:
            reachable = subprocess.run(
                ["runuser", "-u", "postgres", "--", "test", "-w", str(self.dir)], check=False
            )
            if reachable.returncode != 0:
                raise RuntimeError(
                    f"{self.dir} is not reachable by the postgres user (a parent directory is "
                    "private): use a directory from tempfile.mkdtemp() under /tmp"
                )
        pwfile = self.dir / "pwfile"
        pwfile.write_text(self.password + "\n")
        if os.geteuid() == 0:
            os.chown(pwfile, postgres.pw_uid, postgres.pw_gid)
        self._run(
            str(PG_BIN / "initdb"),
            "-D", str(self.data),
            "-U", "postgres",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            f"--pwfile={pwfile}",
            "-E", "UTF8",
            "--locale=C",
            "--no-sync",
        )  # fmt: skip
        pwfile.unlink()
        self.start()
        self._run(
            str(PG_BIN / "createdb"), "-h", str(self.dir), "-p", str(self.port), "-U", "postgres",
            self.database,
        )  # fmt: skip

    def start(self) -> None:
        if self.started:
            return
        options = (
            f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
        self._run(
            str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.dir / "postgres.log"),
            "-o", options, "-w", "-t", str(int(START_TIMEOUT)), "start",
        )  # fmt: skip
        self.started = True
        _running.add(self)
        _wait_port(self.port, START_TIMEOUT)

    def stop(self) -> None:
        if not self.started:
            return
        self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")
        self.started = False
        _running.discard(self)


def start_redis(directory: str | Path, port: int, password: str | None = None) -> RedisServer:
    """Start redis-server on 127.0.0.1:``port``; returns a handle (.url, .stop(), .restart())."""
    server = RedisServer(Path(directory), port, password)
    server.start()
    return server


def start_postgres(
    directory: str | Path, port: int, database: str = "wsnotify", password: str | None = None
) -> PostgresServer:
    """Create and start a PostgreSQL 15 cluster in ``directory`` with ``database`` in it.

    ``directory`` must be reachable by the ``postgres`` user when running as root (a fresh
    ``tempfile.mkdtemp()`` under /tmp is; pytest's tmp_path is not).
    """
    server = PostgresServer(Path(directory), port, database, password or secrets.token_hex(16))
    server.init()
    return server


@atexit.register
def _stop_all() -> None:
    for server in list(_running):
        with contextlib.suppress(Exception):  # interpreter is exiting; best effort
            server.stop()
