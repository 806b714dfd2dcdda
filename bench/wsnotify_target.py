"""wsnotify as a benchmark target: backends, two pinned processes, tokens, publishing.

Everything here goes through the service's public interface (CLI, env, HTTP, /ws) as written in
the contract, so the bench measures what an operator deploys.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import importlib.util
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import jwt
import loadgen
import procs
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from httpc import HttpClient
from loadgen import Client, Target
from procs import Server
from stats import percentile
from wsnotify.auth import nextauth_key

ROOT = Path(__file__).resolve().parent.parent
VENV_PYTHON = ROOT / ".venv" / "bin" / "python"
BACKENDS = ROOT / "service" / "tests" / "backends.py"


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _load_backends() -> ModuleType:
    """The service tests' real Redis/PostgreSQL helpers: one way to start them in the project."""
    spec = importlib.util.spec_from_file_location("wsnotify_test_backends", BACKENDS)
    if spec is None or spec.loader is None:
        raise RuntimeError(f"cannot load {BACKENDS}: is service/ checked out?")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@contextlib.contextmanager
def _on_server_core() -> Iterator[None]:
    """Run a block with this process pinned to the server core, so children started in it
    (Redis, PostgreSQL and every backend it forks later) inherit that core."""
    before = os.sched_getaffinity(0)
    if (os.cpu_count() or 1) > procs.SERVER_CORE:
        os.sched_setaffinity(0, {procs.SERVER_CORE})
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


class Wsnotify:
    """Owns Redis, PostgreSQL and a pair of wsnotify processes (A publishes, B delivers)."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.python = str(VENV_PYTHON if VENV_PYTHON.exists() else Path(sys.executable))
        self.jwt_secret = secrets.token_urlsafe(48)
        self.publish_token = secrets.token_urlsafe(48)
        self.redis: object | None = None
        self.postgres: object | None = None
        self.pg_dir: str | None = None
        self.pair: list[Server] = []
        self.http: dict[int, HttpClient] = {}
        self.body = "x"
        self.last_payload: bytes | None = None
        self._starts = 0
        self._tokens: dict[str, str] = {}

    # processes -------------------------------------------------------------------------------
    def env(self, port: int) -> dict[str, str]:
        # systemd's variables would make the service notify or arm a watchdog it has no use for.
        drop = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "NEXTAUTH_SECRET")
        env = {k: v for k, v in os.environ.items() if k not in drop}
        env.update(
            {
                "DATABASE_URL": self.postgres.url,  # type: ignore[union-attr]
                "REDIS_URL": self.redis.url,  # type: ignore[union-attr]
                "JWT_SECRET": self.jwt_secret,
                "PUBLISH_TOKEN": self.publish_token,
                "WSNOTIFY_HOST": "127.0.0.1",
                "WSNOTIFY_PORT": str(port),
                # Pings every 25 s would land inside measurements; the bench's windows are shorter.
                "WSNOTIFY_PING_INTERVAL": "600",
                # Node logs nothing per connection; a line per connect would be measured against it.
                "WSNOTIFY_LOG_LEVEL": "warning",
            }
        )
        return env

    def start_backends(self) -> None:
        probe = subprocess.run(
            [self.python, "-c", "import wsnotify"],
            capture_output=True,
            text=True,
            check=False,
        )
        if probe.returncode != 0:
            raise RuntimeError(
                f"wsnotify is not importable by {self.python}: install it first "
                f"(`{ROOT}/.venv/bin/pip install -e {ROOT}/service`): {probe.stderr.strip()[-300:]}"
            )
        backends = _load_backends()
        # PostgreSQL runs as the postgres user: its directory must be reachable by it, which a
        # fresh mkdtemp() is (the helper hands it over) and the bench's own work dir is not.
        self.pg_dir = tempfile.mkdtemp(prefix="wsnotify-bench-pg-")
        with _on_server_core():
            self.redis = backends.start_redis(self.work / "redis", backends.free_port())
            self.postgres = backends.start_postgres(self.pg_dir, backends.free_port())
        done = subprocess.run(
            [self.python, "-m", "wsnotify", "migrate"],
            env=self.env(3002),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"wsnotify migrate failed ({done.returncode}): {done.stderr[-800:]}")

    def start_pair(self, trace_b: Path | None = None) -> tuple[Server, Server]:
        """Start A and B; with ``trace_b``, B runs under tracemalloc (tracemalloc_serve.py)
        and writes its allocation growth there on SIGUSR1."""
        self._starts += 1
        for name in ("A", "B"):
            port = procs.free_port()
            log = self.work / f"wsnotify-{name}-{self._starts}.log"
            argv = [self.python, "-m", "wsnotify", "serve"]
            env = self.env(port)
            if name == "B" and trace_b is not None:
                argv = [self.python, str(Path(__file__).with_name("tracemalloc_serve.py"))]
                env["BENCH_TRACEMALLOC_OUT"] = str(trace_b)
            server = procs.start_pinned(f"wsnotify-{name}", argv, port, log, env=env)
            self.pair.append(server)
        for server in self.pair:
            procs.wait_listening(server, timeout=30)
            self.http[server.port] = HttpClient(server.port)
        return self.pair[0], self.pair[1]

    async def wait_healthy(self, timeout: float = 20.0) -> None:
        for server in self.pair:
            deadline = time.monotonic() + timeout
            while True:
                status, body = await self.http[server.port].request("GET", "/healthz")
                if status == 200:
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{server.name} /healthz answered {status}: {body[:200]!r}")
                await asyncio.sleep(0.1)

    async def stop_pair(self) -> None:
        for server in self.pair:
            await self.http.pop(server.port).close()
            procs.stop(server)
        self.pair.clear()

    def stop_backends(self) -> None:
        for server in self.pair:
            procs.stop(server)
        for backend in (self.postgres, self.redis):
            if backend is not None:
                backend.stop()  # type: ignore[attr-defined]
        self.postgres = self.redis = None
        if self.pg_dir is not None:
            shutil.rmtree(self.pg_dir, ignore_errors=True)
            self.pg_dir = None

    # clients ---------------------------------------------------------------------------------
    def token(self, user: str) -> str:
        """A valid HS256 token for ``user``, minted once: the load generator's core is
        better spent on connections than on re-signing the same claims."""
        token = self._tokens.get(user)
        if token is None:
            now = int(time.time())
            claims = {"sub": user, "iat": now, "exp": now + 3600}
            token = self._tokens[user] = jwt.encode(claims, self.jwt_secret, algorithm="HS256")
        return token

    def nextauth_token(self, user: str) -> str:
        """A NextAuth v4 session token for ``user``, in the shape next-auth 4's ``encode()``
        makes (JWE dir + A256GCM; the service tests check the verifier against encode() itself)."""
        token = self._tokens.get("jwe:" + user)
        if token is None:
            now = int(time.time())
            claims = {"name": user, "sub": user, "iat": now, "exp": now + 3600, "jti": user}
            header = _b64url(b'{"alg":"dir","enc":"A256GCM"}')
            iv = os.urandom(12)
            sealed = AESGCM(nextauth_key(self.jwt_secret)).encrypt(
                iv, json.dumps(claims).encode(), header.encode()
            )
            ciphertext, tag = sealed[:-16], sealed[-16:]
            token = f"{header}..{_b64url(iv)}.{_b64url(ciphertext)}.{_b64url(tag)}"
            self._tokens["jwe:" + user] = token
        return token

    def target(
        self, server: Server, purpose: str, users: int = 0, nextauth: bool = False
    ) -> Target:
        """Clients authenticated by header; ``users`` > 0 cycles through that many users
        (minted up front), 0 gives every connection its own user. ``nextauth``: JWE tokens."""
        mint = self.nextauth_token if nextauth else self.token
        for i in range(users):
            mint(f"{purpose}-{i}")

        def headers(i: int) -> dict[str, str]:
            user = f"{purpose}-{i % users if users else i}"
            return {"Authorization": f"Bearer {mint(user)}"}

        return Target(port=server.port, path="/ws", headers_for=headers, want_welcome=True)

    # publishing ------------------------------------------------------------------------------
    async def publish(self, server: Server, fields: dict[str, object]) -> None:
        body = {"title": "bench", "body": self.body, "data": {}, **fields}
        auth = {"Authorization": f"Bearer {self.publish_token}"}
        status, text = await self.http[server.port].request(
            "POST", "/api/notifications", body, auth
        )
        if status != 202:
            raise RuntimeError(f"{server.name} POST /api/notifications: {status} {text[:200]!r}")

    async def publish_broadcast(self, server: Server) -> None:
        await self.publish(server, {"broadcast": True})

    async def calibrate(self, server: Server, clients: list[Client], size: int) -> None:
        """Pad the body so a broadcast frame's payload is ``size`` bytes (warms the path too)."""
        self.body = "x"
        arrivals, _ = await loadgen.wait_arrivals(
            clients, lambda: self.publish_broadcast(server), 30
        )
        overhead = len(arrivals.payload) - 1
        self.body = "x" * max(1, size - overhead)
        arrivals, _ = await loadgen.wait_arrivals(
            clients, lambda: self.publish_broadcast(server), 30
        )
        message = json.loads(arrivals.payload)
        if message.get("type") != "notification" or message.get("user_id") is not None:
            raise RuntimeError(f"unexpected broadcast message: {arrivals.payload[:200]!r}")
        self.last_payload = arrivals.payload

    async def cross_node(self, a: Server, b: Server, probes: int, gap: float) -> dict[str, object]:
        """Publish to a user through A's HTTP API; time until B delivers it over /ws.

        Also timed: until A answered 202 (persisted in PostgreSQL and published to Redis), which
        tells the publish path apart from the Redis -> B -> client path when p99 is high.
        """
        user = "probe-0"
        probe = await loadgen.connect(self.target(b, "probe", users=1), 0)
        latencies: list[float] = []
        acks: list[float] = []
        answered: list[int] = []

        async def publish() -> None:
            await self.publish(a, {"user_id": user})
            answered.append(time.perf_counter_ns())

        try:
            for i in range(probes + 5):
                arrivals, t0 = await loadgen.wait_arrivals([probe], publish, 10)
                message = json.loads(arrivals.payload)
                if message.get("user_id") != user:
                    raise RuntimeError(f"probe got someone else's message: {message}")
                if i >= 5:  # the first few warm caches and pools
                    latencies.append((arrivals.last_ns - t0) / 1e6)
                    acks.append((answered[-1] - t0) / 1e6)
                await asyncio.sleep(gap)
        finally:
            await loadgen.close_many([probe])
        return {
            "samples": len(latencies),
            "p50_ms": percentile(latencies, 50),
            "p99_ms": percentile(latencies, 99),
            "max_ms": max(latencies),
            "publish_202_p50_ms": percentile(acks, 50),
            "publish_202_p99_ms": percentile(acks, 99),
        }
