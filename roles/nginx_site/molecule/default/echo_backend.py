"""Test backend for the nginx_site scenario: answers every request with what it received.

The tests read the echo to prove that nginx proxied a location (and which backend got it) and
which headers crossed the proxy: Upgrade/Connection reach a backend only when the WebSocket
location sets them, since they are hop-by-hop headers nginx otherwise drops. ``?hold=S`` keeps
the request open S seconds (at most 120) before answering, like a long-lived WebSocket: what
nginx's connection limit and a reload's worker_shutdown_timeout act on.
"""

import json
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


class Echo(BaseHTTPRequestHandler):
    """Replies 200 with a JSON body: this backend's port, the path and the request headers."""

    def do_GET(self) -> None:
        hold = parse_qs(urlsplit(self.path).query).get("hold")
        if hold:
            time.sleep(min(float(hold[0]), 120.0))
        body = json.dumps(
            {
                "port": self.server.server_address[1],
                "path": self.path,
                "headers": {k.lower(): v for k, v in self.headers.items()},
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_GET

    def log_message(self, format: str, *args: object) -> None:
        """Stay quiet: the journal would only fill with test traffic."""


if __name__ == "__main__":
    ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Echo).serve_forever()
