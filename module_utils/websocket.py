# Copyright: (c) 2026, wsnotify maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A thin blocking driver for ``ws_protocol.ClientProtocol``: what the modules use on targets.

``connect()`` opens TCP (+TLS), lets the protocol run the upgrade under one deadline and returns
a ``ClientConnection`` that reads messages, sends text and closes cleanly. All the RFC 6455
logic is in ``ws_protocol.py``; this file only moves bytes, keeps deadlines, and turns socket
and TLS failures into ``WebSocketError`` subclasses whose ``kind`` and fields let
``ws_diagnosis.diagnose`` explain the real cause. A TLS certificate failure carries the
certificate the server presents (fetched again without verification), so the hint can show it.

Standard library only, no Ansible imports (plain Python imports it too).
"""

from __future__ import annotations

import contextlib
import os
import socket
import ssl
import time
from typing import NamedTuple

from .ws_certificate import summarize_certificate
from .ws_protocol import (
    CLOSED,
    CONNECTING,
    OP_CLOSE,
    OP_TEXT,
    ClientProtocol,
    ConnectFailed,
    ConnectionClosed,
    HttpResponse,
    ProtocolError,
    Timeout,
    TLSFailed,
    WebSocketError,
    parse_ws_url,
)

# How long to wait for each further piece of a refusal's body (evidence, not the check itself).
BODY_READ_SECONDS = 1.0


def make_ssl_context(validate_certs: bool = True, ca_path: str | None = None) -> ssl.SSLContext:
    """Client TLS context: system trust (or ``ca_path`` file/dir), hostname check, HTTP/1.1 ALPN."""
    if validate_certs:
        if ca_path and os.path.isdir(ca_path):
            ctx = ssl.create_default_context(capath=ca_path)
        else:
            ctx = ssl.create_default_context(cafile=ca_path or None)
    else:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    # Offer only HTTP/1.1: a WebSocket upgrade is an HTTP/1.1 mechanism; h2 would break it.
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


def tcp_error(exc: OSError, host: str, port: int) -> ConnectFailed:
    """Classify a socket error raised while connecting into a ConnectFailed with a stable kind."""
    if isinstance(exc, socket.gaierror):
        return ConnectFailed("dns", host, port, f"cannot resolve {host!r}: {exc.strerror or exc}")
    if isinstance(exc, ConnectionRefusedError):
        return ConnectFailed("refused", host, port, "connection refused")
    if isinstance(exc, TimeoutError):
        return ConnectFailed("timeout", host, port, "no answer before the timeout")
    if isinstance(exc, (ConnectionResetError, BrokenPipeError, ConnectionAbortedError)):
        return ConnectFailed("reset", host, port, "connection reset by the peer")
    return ConnectFailed("unreachable", host, port, exc.strerror or str(exc))


def tls_failure(exc: ssl.SSLError, host: str, port: int, timeout: float) -> TLSFailed:
    """TLSFailed for an ssl error; a failed certificate check keeps OpenSSL's verify code and
    the summary of the certificate the server presents (evidence for the hint)."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        certificate = fetch_certificate(host, port, timeout)
        return TLSFailed(host, port, exc.verify_message or str(exc), exc.verify_code, certificate)
    return TLSFailed(host, port, exc.reason or str(exc))


def open_stream(
    host: str,
    port: int,
    timeout: float,
    ssl_context: ssl.SSLContext | None = None,
) -> socket.socket:
    """TCP connect (+TLS handshake) under ``timeout``; raises ConnectFailed or TLSFailed."""
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except OSError as exc:
        raise tcp_error(exc, host, port) from None
    if ssl_context is None:
        return sock
    try:
        return ssl_context.wrap_socket(sock, server_hostname=host)
    except ssl.SSLError as exc:
        sock.close()
        raise tls_failure(exc, host, port, timeout) from None
    except OSError as exc:
        sock.close()
        raise tcp_error(exc, host, port) from None


def fetch_certificate(host: str, port: int, timeout: float) -> dict | None:
    """Certificate summary of an endpoint without verifying it (evidence for a TLS failure)."""
    try:
        sock = open_stream(host, port, timeout, make_ssl_context(validate_certs=False))
    except WebSocketError:
        return None
    try:
        der = sock.getpeercert(binary_form=True)
        return summarize_certificate(der) if der else None
    except ValueError:
        return None
    finally:
        sock.close()


def tls_details(sock: socket.socket) -> dict | None:
    """Protocol, cipher and certificate summary of an established TLS socket (None for plain)."""
    if not isinstance(sock, ssl.SSLSocket):
        return None
    info: dict = {"protocol": sock.version(), "cipher": (sock.cipher() or ("",))[0]}
    der = sock.getpeercert(binary_form=True)
    if der:
        try:
            info.update(summarize_certificate(der))
        except ValueError as exc:
            info["certificate_error"] = str(exc)
    return info


def _recv(sock: socket.socket, wait: float) -> bytes | None:
    """One read of at most ``wait`` seconds: bytes (b'' at EOF), or None when nothing came."""
    if wait <= 0:
        return None
    sock.settimeout(wait)
    try:
        return sock.recv(65536)
    except TimeoutError:
        return None
    except ssl.SSLError as exc:
        raise ConnectionClosed(None, f"TLS error: {exc.reason or exc}") from None
    except OSError as exc:
        raise ConnectionClosed(None, exc.strerror or str(exc)) from None


def _send(sock: socket.socket, data: bytes, timeout: float, what: str = "sending") -> None:
    if not data:
        return
    sock.settimeout(max(timeout, 0.001))
    try:
        sock.sendall(data)
    except TimeoutError:
        raise Timeout(f"{what} timed out") from None
    except OSError as exc:
        raise ConnectionClosed(None, f"send failed: {exc.strerror or exc}") from None


class Message(NamedTuple):
    """A complete data message or the server's close: kind is 'text', 'binary' or 'close'."""

    kind: str
    data: bytes = b""
    code: int | None = None
    reason: str = ""

    @property
    def text(self) -> str:
        return self.data.decode("utf-8", "replace")


class ClientConnection:
    """An open client WebSocket over a blocking socket. Not thread-safe; one caller reads and
    writes. Close code, reason and who closed first come from the protocol."""

    def __init__(self, sock: socket.socket, protocol: ClientProtocol, tls: dict | None) -> None:
        self.sock = sock
        self.protocol = protocol
        self.response: HttpResponse = protocol.response
        self.tls = tls
        self.closed = False
        self._pending = list(protocol.events_received())  # frames that came with the 101

    @property
    def subprotocol(self) -> str | None:
        return self.response.get("sec-websocket-protocol")

    @property
    def close_code(self) -> int | None:
        return self.protocol.close_code

    @property
    def close_reason(self) -> str:
        return self.protocol.close_reason

    @property
    def closed_by(self) -> str | None:
        return self.protocol.closed_by

    def _flush(self, timeout: float) -> None:
        try:
            _send(self.sock, self.protocol.data_to_send(), timeout)
        except ConnectionClosed:
            self._shutdown()
            raise

    def _read(self, deadline: float) -> bool:
        """Feed one read to the protocol and send what it answers; False when the deadline
        passed first. Raises ConnectionClosed at EOF without a close frame, ProtocolError."""
        try:
            chunk = _recv(self.sock, deadline - time.monotonic())
        except ConnectionClosed:
            self._shutdown()
            raise
        if chunk is None:
            return False
        if not chunk:
            self.protocol.receive_eof()
            self._shutdown()
            raise ConnectionClosed(None, "")
        try:
            self.protocol.receive_data(chunk)
        except ProtocolError:
            with contextlib.suppress(WebSocketError):  # our close frame naming the error
                self._flush(1.0)
            self._shutdown()
            raise
        self._pending.extend(self.protocol.events_received())
        try:
            self._flush(max(deadline - time.monotonic(), 1.0))  # pongs, the echo of a close
        except ConnectionClosed:
            if self.protocol.state != CLOSED:
                raise  # the server may be gone once it sent its close: nothing is lost
        return True

    def send_text(self, text: str, timeout: float = 5.0) -> None:
        self.protocol.send_text(text)
        self._flush(timeout)

    def recv(self, timeout: float) -> Message | None:
        """Next text/binary message or the server's close; None if nothing before ``timeout``.

        Pings are answered and fragments reassembled by the protocol. A close from the server
        is echoed (closing handshake) and returned as a 'close' Message once; after that, and
        after an abrupt end, recv raises ConnectionClosed.
        """
        deadline = time.monotonic() + timeout
        while True:
            if self._pending:
                event = self._pending.pop(0)
                if event[0] == OP_CLOSE:
                    self._shutdown()
                    return Message("close", code=event[1], reason=event[2])
                return Message("text" if event[0] == OP_TEXT else "binary", event[1])
            if self.closed:
                raise ConnectionClosed(self.close_code, self.close_reason)
            if not self._read(deadline):
                return None

    def close(self, code: int = 1000, reason: str = "", timeout: float = 2.0) -> None:
        """Closing handshake: send our close, wait (bounded) for the server's, drop the socket."""
        if not self.closed:
            deadline = time.monotonic() + timeout
            try:
                self.protocol.send_close(code, reason)
                self._flush(timeout)
                while self.protocol.state != CLOSED and self._read(deadline):
                    pass
            except WebSocketError:
                pass
        self._shutdown()

    def _shutdown(self) -> None:
        self.closed = True
        with contextlib.suppress(OSError):
            self.sock.close()


def connect(
    url: str,
    timeout: float = 10.0,
    headers: dict[str, str] | None = None,
    origin: str | None = None,
    subprotocols: list[str] | None = None,
    ssl_context: ssl.SSLContext | None = None,
    resource: str | None = None,
) -> ClientConnection:
    """Open a WebSocket: TCP, TLS for wss, upgrade request, strict validation of the 101.

    ``resource`` overrides the request target (e.g. to add a token query parameter that must not
    appear in the URL callers log). Raises ValueError for headers that would break the
    handshake (before connecting), ConnectFailed, TLSFailed, Timeout, HandshakeRejected
    (non-101, with up to 2 KiB of body), HandshakeInvalid (bad 101), ProtocolError or
    ConnectionClosed; errors after TCP carry the connection's TLS details in ``tls``.
    """
    target = parse_ws_url(url)
    deadline = time.monotonic() + timeout
    protocol = ClientProtocol(subprotocols)
    protocol.send_request(target, origin, headers, resource)
    ctx = (ssl_context or make_ssl_context()) if target.secure else None
    sock = open_stream(target.host, target.port, timeout, ctx)
    tls = tls_details(sock)
    try:
        _send(sock, protocol.data_to_send(), deadline - time.monotonic(), "the upgrade request")
        while protocol.state == CONNECTING:
            refusing = protocol.response is not None  # its body is evidence, not the check
            wait = deadline - time.monotonic()
            try:
                chunk = _recv(sock, min(wait, BODY_READ_SECONDS) if refusing else wait)
            except ConnectionClosed:
                protocol.finish_refusal()
                raise
            if chunk is None:
                protocol.finish_refusal()
                raise Timeout("no complete HTTP response to the upgrade before the timeout")
            if chunk:
                protocol.receive_data(chunk)
            else:
                protocol.receive_eof()
        _send(sock, protocol.data_to_send(), 1.0)  # answers to frames that came with the 101
        return ClientConnection(sock, protocol, tls)
    except WebSocketError as exc:
        exc.tls = tls  # the certificate is evidence even when the upgrade is refused
        sock.close()
        raise
    except BaseException:
        sock.close()
        raise
