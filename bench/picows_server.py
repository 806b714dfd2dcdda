"""picows as the alternative WebSocket core, measured beside wsnotify for the choice recorded
in service/README.md.

Usage: python picows_server.py PORT, with the HS256 secret in $BENCH_JWT_SECRET.
It does what wsnotify's /ws does per handshake, no less: the service's own HS256 verifier
(``wsnotify.auth.verify_token``) on the Authorization header, then the same welcome frame; close
4401 for a bad token; echoes the client's close. picows runs with its defaults (its aiofastnet
transport) except ``read_buffer_init_size=2048``, which halves its memory per connection
(PERF-NOTES). No hub, no metrics, no REST: a floor for picows, not a second service.
"""

from __future__ import annotations

import os
import sys

import uvloop
from picows import WSCloseCode, WSFrame, WSListener, WSMsgType, WSTransport, ws_create_server
from wsnotify import protocol
from wsnotify.auth import AuthError, JwtSettings, bearer_token, verify_token


class Client(WSListener):
    __slots__ = ("user_id",)

    def __init__(self, user_id: str | None) -> None:
        self.user_id = user_id

    def on_ws_connected(self, transport: WSTransport) -> None:
        if self.user_id is None:
            transport.send_close(WSCloseCode(4401), b"Unauthorized")
            return
        transport.send(WSMsgType.TEXT, protocol.welcome(self.user_id).encode())

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type == WSMsgType.CLOSE:
            transport.send_close(frame.get_close_code())
            transport.disconnect()


async def main(port: int) -> None:
    settings = JwtSettings(
        secret=os.environ["BENCH_JWT_SECRET"], audience=None, issuer=None, leeway=30
    )

    def factory(request: object) -> Client:
        token = bearer_token(request.headers.get("Authorization"))  # type: ignore[attr-defined]
        try:
            return Client(verify_token(token or "", settings))
        except AuthError:
            return Client(None)

    server = await ws_create_server(
        factory, "127.0.0.1", port, read_buffer_init_size=2048, backlog=4096
    )
    print(f"ready {port}", flush=True)
    await server.serve_forever()


if __name__ == "__main__":
    uvloop.run(main(int(sys.argv[1])))
