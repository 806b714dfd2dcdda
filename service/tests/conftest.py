"""Fixtures: one real PostgreSQL and Redis per session, and a running ``wsnotify serve``."""

from __future__ import annotations

import hashlib
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from backends import (
    PostgresServer,
    RedisServer,
    free_port,
    start_postgres,
    start_redis,
)
from wsnotify_harness import JWT_SECRET, ServiceProcess, base_env, wsnotify_cmd

NEXTAUTH = Path(__file__).parent / "nextauth"  # next-auth pinned by its package-lock.json


def pytest_configure(config: pytest.Config) -> None:
    # 1,000+ sockets in one test process (and its children): raise the soft fd limit.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = min(hard, 16384)
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


@pytest.fixture(scope="session")
def workdir() -> Iterator[Path]:
    # Under /tmp (not pytest's root-only tmp) so the postgres user can reach its cluster.
    path = Path(tempfile.mkdtemp(prefix="wsnotify-tests-"))
    path.chmod(0o755)
    yield path
    if os.environ.get("WSNOTIFY_TESTS_KEEP"):  # keep server logs for a post-mortem
        print(f"\nwsnotify test files kept in {path}")
    else:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres(workdir: Path) -> Iterator[PostgresServer]:
    server = start_postgres(workdir / "pg", free_port())
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis(workdir: Path) -> Iterator[RedisServer]:
    server = start_redis(workdir / "redis", free_port(), password="redis-test-password-123")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def env(postgres: PostgresServer, redis: RedisServer) -> dict[str, str]:
    environment = base_env(postgres.url, redis.url)
    result = subprocess.run(
        wsnotify_cmd("migrate"), env=environment, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    return environment


@pytest.fixture(scope="session")
def service(env: dict[str, str], workdir: Path) -> Iterator[ServiceProcess]:
    """One long-running server shared by the tests that do not stop or break it."""
    proc = ServiceProcess(env, free_port(), workdir).start()
    yield proc
    proc.stop()


def _nextauth_installed() -> None:
    """``npm ci`` into tests/nextauth/node_modules (git-ignored) when the lockfile changed."""
    want = hashlib.sha256((NEXTAUTH / "package-lock.json").read_bytes()).hexdigest()
    stamp = NEXTAUTH / "node_modules" / ".wsnotify-lock-sha256"
    if stamp.exists() and stamp.read_text() == want:
        return
    if shutil.which("npm") is None or shutil.which("node") is None:
        pytest.fail("node and npm are needed to mint NextAuth tokens: run scripts/setup.sh")
    done = subprocess.run(
        ["npm", "ci", "--no-audit", "--no-fund", "--silent"],
        cwd=NEXTAUTH,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if done.returncode != 0:
        pytest.fail(f"npm ci in {NEXTAUTH} failed (is the npm registry reachable?): {done.stderr}")
    stamp.write_text(want)


@pytest.fixture(scope="session")
def nextauth_encode() -> Callable[..., list[str]]:
    """Mint tokens with next-auth 4's own ``encode()``: ``encode([{"token": claims,
    "maxAge": seconds}, ...], secret=...)`` returns one token per item."""
    _nextauth_installed()

    def encode(items: list[dict[str, Any]], secret: str = JWT_SECRET) -> list[str]:
        done = subprocess.run(
            ["node", str(NEXTAUTH / "encode.js")],
            input=json.dumps(items),
            env={"PATH": os.environ.get("PATH", ""), "NEXTAUTH_SECRET": secret},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    return encode
