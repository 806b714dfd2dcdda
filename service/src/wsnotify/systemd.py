"""sd_notify over the socket module (no libsystemd dependency).

Outside systemd (no NOTIFY_SOCKET) every call is a no-op, so the same code runs everywhere.
"""

from __future__ import annotations

import logging
import socket

log = logging.getLogger("wsnotify.systemd")


class Notifier:
    """Sends state strings (READY=1, WATCHDOG=1, STOPPING=1, STATUS=...) to systemd."""

    def __init__(self, address: str | None) -> None:
        self._address: str | None = None
        self._sock: socket.socket | None = None
        if address:
            # A leading "@" names a socket in the abstract namespace.
            self._address = "\0" + address[1:] if address.startswith("@") else address
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)

    @property
    def enabled(self) -> bool:
        return self._sock is not None

    def notify(self, *states: str) -> bool:
        """Send ``states`` as one datagram; False (and a log line) if it could not be sent."""
        if self._sock is None or self._address is None:
            return False
        try:
            self._sock.sendto("\n".join(states).encode(), self._address)
        except OSError as exc:
            log.warning("sd_notify failed: %s (is NOTIFY_SOCKET correct?)", exc)
            return False
        return True

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
