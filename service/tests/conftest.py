"""Fixtures: one real PostgreSQL and Redis per session, and a running ``wsnotify serve``."""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from backends import (
    PostgresServer,
    RedisServer,
    free_port,
    start_postgres,
    start_redis,
)
from wsnotify_harness import ServiceProcess, base_env, wsnotify_cmd


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
