"""Test helpers: run ``wsnotify`` as a real process, mint tokens, talk WebSocket and HTTP."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Coroutine, Mapping
from pathlib import Path
from typing import Any

import aiohttp
import jwt

JWT_SECRET = "test-jwt-secret-0123456789abcdef-0123456789"
PUBLISH_TOKEN = "test-publish-token-0123456789abcdef-01234567"
AUDIENCE = "wsnotify-tests"
ISSUER = "https://auth.test"


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run a coroutine to completion in a fresh event loop (no pytest plugin needed)."""
    return asyncio.run(coro)


def make_token(
    sub: Any = "42",
    *,
    ttl: int = 300,
    secret: str = JWT_SECRET,
    aud: str | None = AUDIENCE,
    iss: str | None = ISSUER,
    algorithm: str = "HS256",
    **extra: Any,
) -> str:
    now = int(time.time())
    claims: dict[str, Any] = {"sub": sub, "iat": now, "exp": now + ttl, **extra}
    if aud is not None:
        claims["aud"] = aud
    if iss is not None:
        claims["iss"] = iss
    return jwt.encode(claims, secret, algorithm=algorithm)


def wsnotify_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "wsnotify", *args]


class ServiceProcess:
    """``wsnotify serve`` in a subprocess; output goes to a file the test can read."""

    def __init__(
        self,
        env: Mapping[str, str],
        port: int,
        log_dir: Path,
        listen_socket: socket.socket | None = None,
    ) -> None:
        self.listen_socket = listen_socket
        self.port = port
        self.base = f"http://127.0.0.1:{port}"
        self.ws_url = f"ws://127.0.0.1:{port}/ws"
        self.env = {**env, "WSNOTIFY_PORT": str(port)}
        self.log_path = log_dir / f"wsnotify-{port}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, wait: bool = True) -> ServiceProcess:
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        cmd, env, fds = wsnotify_cmd("serve"), self.env, ()
        if self.listen_socket is not None:
            # What systemd does for wsnotify.socket: the listening socket as fd 3, LISTEN_FDS=1,
            # LISTEN_PID = the pid of the process meant to take it.
            fd = self.listen_socket.fileno()
            activate = (
                "import os, sys; os.dup2(int(sys.argv[1]), 3); "
                "os.environ['LISTEN_PID'] = str(os.getpid()); os.execv(sys.argv[2], sys.argv[2:])"
            )
            cmd = [sys.executable, "-c", activate, str(fd), *cmd]
            env, fds = {**env, "LISTEN_FDS": "1"}, (fd,)
        self.proc = subprocess.Popen(
            cmd,
            env=env,
            pass_fds=fds,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"wsnotify exited {self.proc.returncode}:\n{self.output()}")
            try:
                with urllib.request.urlopen(self.base + "/healthz", timeout=1) as response:
                    if response.status == 200:
                        return
            except (OSError, urllib.error.URLError):
                pass
            time.sleep(0.05)
        raise TimeoutError(f"wsnotify not healthy after {timeout}s:\n{self.output()}")

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, signum: int = signal.SIGTERM, timeout: float = 10.0) -> tuple[int, float]:
        """Signal the process and wait; returns (exit code, seconds until it exited)."""
        if self.proc is None:
            return 0, 0.0
        started = time.monotonic()
        if self.proc.poll() is None:
            self.proc.send_signal(signum)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait(5)
        elapsed = time.monotonic() - started
        self.proc = None
        self._log.close()
        return code, elapsed


def publish_http(base: str, body: Any, token: str = PUBLISH_TOKEN) -> tuple[int, dict[str, Any]]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(
        base + "/api/notifications",
        data=data,
        method="POST",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    return _send(request)


def get_json(base: str, path: str, token: str | None) -> tuple[int, dict[str, Any]]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return _send(urllib.request.Request(base + path, headers=headers))


def post_json(base: str, path: str, body: Any, token: str | None) -> tuple[int, dict[str, Any]]:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return _send(urllib.request.Request(base + path, data=data, method="POST", headers=headers))


def _send(request: urllib.request.Request) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


async def connect(
    session: aiohttp.ClientSession, url: str, token: str | None = None, **kwargs: Any
) -> aiohttp.ClientWebSocketResponse:
    headers = kwargs.pop("headers", {})
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return await session.ws_connect(url, headers=headers, autoping=True, **kwargs)


async def receive_json(ws: aiohttp.ClientWebSocketResponse, timeout: float = 5.0) -> Any:
    msg = await ws.receive(timeout=timeout)
    if msg.type is not aiohttp.WSMsgType.TEXT:
        raise AssertionError(f"expected a text message, got {msg.type} {msg.data!r} {msg.extra!r}")
    return json.loads(msg.data)


async def expect_close(ws: aiohttp.ClientWebSocketResponse, timeout: float = 10.0) -> int | None:
    """Read until the server closes; return its close code."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        msg = await ws.receive(timeout=max(0.01, deadline - time.monotonic()))
        if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
            return ws.close_code
        if msg.type is aiohttp.WSMsgType.ERROR:
            return ws.close_code
    raise AssertionError("server did not close the connection")


def base_env(database_url: str, redis_url: str) -> dict[str, str]:
    """A complete configuration (plus PATH etc. from the test's own environment)."""
    keep = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "PYTHONPATH")}
    return {
        **keep,
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "JWT_SECRET": JWT_SECRET,
        "PUBLISH_TOKEN": PUBLISH_TOKEN,
        "JWT_AUDIENCE": AUDIENCE,
        "JWT_ISSUER": ISSUER,
        "WSNOTIFY_HOST": "127.0.0.1",
        "WSNOTIFY_AUTH_TIMEOUT": "1",
        "WSNOTIFY_LOG_LEVEL": "info",
    }


def raw_handshake(
    port: int,
    token: str,
    rcvbuf: int | None = None,
    before_request: Callable[[], object] | None = None,
) -> socket.socket:
    """A WebSocket client that completes the upgrade by hand and then never reads.

    ``rcvbuf`` shrinks its receive window (set before connecting, so it is what the
    handshake advertises), making it a slow reader for real. ``before_request`` runs between
    the TCP connect and the request (e.g. to stop the server meanwhile).
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.connect(("127.0.0.1", port))
    if before_request is not None:
        before_request()
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (
            f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            f"Authorization: Bearer {token}\r\n\r\n"
        ).encode()
    )
    response = b""
    while not response.endswith(b"\r\n\r\n"):  # byte by byte: leave frames in the socket
        byte = sock.recv(1)
        assert byte, "server closed during the handshake"
        response += byte
    assert response.startswith(b"HTTP/1.1 101")
    accept = base64.b64encode(
        hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()
    ).decode()
    assert accept.encode() in response
    return sock
