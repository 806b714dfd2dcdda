"""Socket activation: the listening socket outlives the process, so a restart refuses no one.

The socket is made here and passed as systemd does for wsnotify.socket (fd 3, LISTEN_FDS=1,
LISTEN_PID): connected clients are closed with 1012 and a client that connects while no process
serves waits in the socket's backlog until the next one takes it.
"""

from __future__ import annotations

import asyncio
import signal
import socket
import threading
import time

import aiohttp
from wsnotify_harness import (
    ServiceProcess,
    connect,
    expect_close,
    make_token,
    raw_handshake,
    receive_json,
    run,
)


def systemd_like_socket() -> tuple[socket.socket, int]:
    """A listening socket as wsnotify.socket holds it, on a free port: (socket, port)."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(128)
    return listener, listener.getsockname()[1]


def test_a_restart_on_the_inherited_socket_closes_1012_and_refuses_no_one(env, workdir):
    listener, port = systemd_like_socket()
    first = ServiceProcess(env, port, workdir, listen_socket=listener).start()
    second = None
    try:
        assert "the socket systemd passed" in first.output()

        async def connected_client_is_told_to_reconnect() -> None:
            async with aiohttp.ClientSession() as session:
                ws = await connect(session, first.ws_url, make_token("held"))
                assert (await receive_json(ws))["type"] == "welcome"
                stopping = asyncio.get_running_loop().run_in_executor(None, first.stop)
                assert await expect_close(ws) == 1012
                assert ws.close_code == 1012
                code, _ = await stopping
                assert code == 0

        run(connected_client_is_told_to_reconnect())

        # No process serves now; the port still accepts and the upgrade waits in the backlog.
        outcome: dict[str, object] = {}

        def late_client() -> None:
            try:
                outcome["sock"] = raw_handshake(port, make_token("late"))
            except BaseException as exc:  # reported by the assertion below
                outcome["error"] = exc

        waiting = threading.Thread(target=late_client)
        waiting.start()
        waiting.join(0.5)
        assert waiting.is_alive(), outcome  # connected, not refused: waiting for an answer
        second = ServiceProcess(env, port, workdir, listen_socket=listener).start()
        waiting.join(15)
        assert "sock" in outcome, outcome
        outcome["sock"].close()  # type: ignore[attr-defined]
    finally:
        if second is not None:
            second.stop()
        first.stop()
        listener.close()


def test_without_an_inherited_socket_it_binds_itself_and_says_1001(env, workdir):
    from backends import free_port

    proc = ServiceProcess(env, free_port(), workdir).start()
    try:

        async def scenario() -> None:
            async with aiohttp.ClientSession() as session:
                ws = await connect(session, proc.ws_url, make_token("u"))
                assert (await receive_json(ws))["type"] == "welcome"
                stopping = asyncio.get_running_loop().run_in_executor(None, proc.stop)
                assert await expect_close(ws) == 1001
                await stopping

        run(scenario())
    finally:
        proc.stop()


def test_a_handshake_accepted_just_before_the_stop_is_answered_then_closed_1012(env, workdir):
    """Accepted by the old process, its request arriving once that process is stopping: answered
    101 and closed with 1012 (reconnect), not cut unanswered (nginx would say 502)."""
    listener, port = systemd_like_socket()
    proc = ServiceProcess(env, port, workdir, listen_socket=listener).start()
    try:

        def stop_meanwhile() -> None:
            time.sleep(0.2)  # accepted by the service by now
            proc.proc.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
            time.sleep(0.3)  # the service is in its shutdown's grace by now

        sock = raw_handshake(port, make_token("late"), before_request=stop_meanwhile)
        sock.settimeout(5)
        frame = b""
        while len(frame) < 4:
            chunk = sock.recv(4 - len(frame))
            assert chunk, f"closed without a close frame after {frame!r}"
            frame += chunk
        assert frame[0] == 0x88, frame  # FIN + close
        assert int.from_bytes(frame[2:4], "big") == 1012, frame
        sock.close()
        code, _ = proc.stop()
        assert code == 0
    finally:
        proc.stop()
        listener.close()
