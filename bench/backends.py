"""Real Redis and PostgreSQL for the bench, on free 127.0.0.1 ports in a temp dir.

Why a bench-local helper: the service's tests had no backend helper when the bench was written.
Both are pinned to the server core so the load generator's core stays for the load generator.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import time
from pathlib import Path

from procs import Server, free_port, start_pinned, stop, wait_listening

PG_BIN = Path("/usr/lib/postgresql/15/bin")


def start_redis(workdir: Path) -> Server:
    """redis-server without persistence (pub/sub only matters here)."""
    port = free_port()
    argv = [
        shutil.which("redis-server") or "/usr/bin/redis-server",
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        str(workdir),
    ]
    server = start_pinned("redis", argv, port, workdir / "redis.log")
    wait_listening(server)
    return server


def start_postgres(workdir: Path) -> Server:
    """A throwaway cluster; PostgreSQL refuses root, so it runs as the postgres user.

    Durability settings stay at their defaults (fsync on) so publish latency is honest.
    ``extra['dsn']`` holds the DATABASE_URL (trust auth on 127.0.0.1; the password is ignored).
    """
    pw = pwd.getpwnam("postgres")
    pgdir = workdir / "pg"
    pgdir.mkdir()
    os.chown(pgdir, pw.pw_uid, pw.pw_gid)
    os.chown(workdir, pw.pw_uid, pw.pw_gid)
    subprocess.run(
        [
            str(PG_BIN / "initdb"),
            "-D",
            str(pgdir / "data"),
            "-A",
            "trust",
            "-U",
            "postgres",
            "--no-sync",
            "-E",
            "UTF8",
        ],
        check=True,
        user="postgres",
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    port = free_port()
    argv = [
        str(PG_BIN / "postgres"),
        "-D",
        str(pgdir / "data"),
        "-p",
        str(port),
        "-k",
        str(pgdir),
        "-c",
        "listen_addresses=127.0.0.1",
        "-c",
        "max_connections=100",
    ]
    log = pgdir / "postgres.log"
    server = start_pinned("postgres", argv, port, log, user="postgres", cwd=str(pgdir))
    wait_listening(server, timeout=30)
    # Accepting TCP is not yet accepting queries; give recovery a moment to finish.
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        done = subprocess.run(
            [str(PG_BIN / "pg_isready"), "-h", "127.0.0.1", "-p", str(port)],
            stdout=subprocess.DEVNULL,
            check=False,
        )
        if done.returncode == 0:
            break
        time.sleep(0.1)
    server.extra["dsn"] = f"postgresql://postgres:bench@127.0.0.1:{port}/postgres"
    return server


def stop_all(servers: list[Server]) -> None:
    """Stop in reverse start order, each by its PID."""
    for server in reversed(servers):
        stop(server)
