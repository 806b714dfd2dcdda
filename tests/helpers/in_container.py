"""HTTPS requests made from inside a test container (whose image has no curl): the status nginx
answers a GET with, from the container's own address or loopback. Credentials go on stdin."""

from __future__ import annotations

import subprocess

# Verifies the site's certificate but not its name (the container's bridge address is no SAN).
_GET = r"""
import base64, http.client, ssl, sys
tls = ssl.create_default_context(cafile="/etc/nginx/tls/wsnotify.crt")
tls.check_hostname = False
headers = {"Host": "localhost"}
credentials = sys.stdin.read().strip()
if credentials:
    headers["Authorization"] = "Basic " + base64.b64encode(credentials.encode()).decode()
connection = http.client.HTTPSConnection(sys.argv[1], 443, context=tls, timeout=10)
connection.request("GET", sys.argv[2], headers=headers)
print(connection.getresponse().status)
"""


def https_status(container: str, address: str, path: str, credentials: str = "") -> int:
    """The status of ``GET https://<address><path>`` sent from inside ``container``, with basic
    auth when ``credentials`` ("user:password") is given."""
    run = subprocess.run(
        ["podman", "exec", "-i", container, "python3", "-c", _GET, address, path],
        input=credentials,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return int(run.stdout.strip())
