"""The raw floor: plain TCP sockets and a bare ``send()`` of a ready-made frame to each.

Why: the fan-out goal is stated against the cost of the work itself (one syscall per socket, the
kernel's loopback path), with no WebSocket library, no event loop and no JSON. The frame is built
by the load generator, byte-identical to what the service sent, so only the sending differs.

Usage: python raw_floor_server.py DATA_PORT CONTROL_PORT
Control protocol (one line each way): ``COUNT`` -> ``<n>``; ``SEND <hex frame>`` -> ``OK <n> <ns>``
where ``<ns>`` is the server-side duration of the send loop; ``QUIT`` stops the server.
"""

from __future__ import annotations

import selectors
import signal
import socket
import sys
import time


def _listener(port: int) -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(4096)
    sock.setblocking(False)
    return sock


def send_all(clients: dict[socket.socket, None], frame: bytes) -> tuple[int, int]:
    """Send ``frame`` to every client; drop the ones that are gone. Returns (sent, ns)."""
    start = time.perf_counter_ns()
    sent = 0
    dead = []
    for sock in clients:
        try:
            sock.send(frame)
            sent += 1
        except OSError:
            dead.append(sock)
    elapsed = time.perf_counter_ns() - start
    for sock in dead:
        clients.pop(sock, None)
        sock.close()
    return sent, elapsed


def serve(data_port: int, control_port: int) -> None:
    """Accept data clients and obey control lines until QUIT or SIGTERM."""
    sel = selectors.DefaultSelector()
    data = _listener(data_port)
    control = _listener(control_port)
    sel.register(data, selectors.EVENT_READ, "data")
    sel.register(control, selectors.EVENT_READ, "control")
    # Data clients never send; they are watched only to forget the ones that hang up (such as
    # the readiness probe), so the send loop touches exactly the benchmark's clients.
    clients: dict[socket.socket, None] = {}
    buffers: dict[socket.socket, bytes] = {}
    running = [True]
    signal.signal(signal.SIGTERM, lambda *_: running.__setitem__(0, False))
    print(f"ready {data_port} {control_port}", flush=True)
    while running[0]:
        for key, _ in sel.select(timeout=0.5):
            sock = key.fileobj
            assert isinstance(sock, socket.socket)
            if key.data == "data":
                while True:
                    try:
                        conn, _addr = sock.accept()
                    except BlockingIOError:
                        break
                    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    clients[conn] = None
                    sel.register(conn, selectors.EVENT_READ, "client")
            elif key.data == "control":
                conn, _addr = sock.accept()
                conn.setblocking(True)
                sel.register(conn, selectors.EVENT_READ, "ctl")
                buffers[conn] = b""
            elif key.data == "client":
                try:
                    gone = not sock.recv(4096)
                except OSError:
                    gone = True
                if gone:
                    sel.unregister(sock)
                    clients.pop(sock, None)
                    sock.close()
            else:
                chunk = sock.recv(1 << 20)
                if not chunk:
                    sel.unregister(sock)
                    buffers.pop(sock, None)
                    sock.close()
                    continue
                buffers[sock] += chunk
                while b"\n" in buffers[sock]:
                    line, buffers[sock] = buffers[sock].split(b"\n", 1)
                    cmd, _, arg = line.decode().partition(" ")
                    if cmd == "COUNT":
                        sock.sendall(f"{len(clients)}\n".encode())
                    elif cmd == "SEND":
                        sent, ns = send_all(clients, bytes.fromhex(arg))
                        sock.sendall(f"OK {sent} {ns}\n".encode())
                    elif cmd == "QUIT":
                        sock.sendall(b"BYE\n")
                        running[0] = False
                    else:
                        sock.sendall(b"ERR unknown command\n")
    for sock in clients:
        sock.close()


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: raw_floor_server.py DATA_PORT CONTROL_PORT")
    serve(int(sys.argv[1]), int(sys.argv[2]))
