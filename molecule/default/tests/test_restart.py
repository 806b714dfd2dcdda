"""A restart refuses no one: wsnotify.socket holds :3002 while the service restarts.

tests/files/client_loop.py runs in the container with the release's Python: one client
connecting again and again through nginx (wss) and a publisher posting every 100 ms, while
`systemctl restart wsnotify` runs. Tokens go to it on stdin, read from files in the container.
"""

import json
from pathlib import Path

from conftest import HOST

testinfra_hosts = [f"podman://{HOST}"]

LOOP = Path(__file__).with_name("files") / "client_loop.py"
PYTHON = "/opt/wsnotify/current/venv/bin/python"
AS_UNIT = (
    "systemd-run --quiet --pipe --wait --collect -p EnvironmentFile=/etc/wsnotify/wsnotify.env"
    " -p User=wsnotify /opt/wsnotify/current/venv/bin/wsnotify"
)


def test_restart_refuses_no_handshake_and_no_publish(host):
    host.check_output(f"cat > /tmp/client_loop.py <<'EOF'\n{LOOP.read_text()}\nEOF")
    tokens = (
        f"T=$({AS_UNIT} token --user loop) && "
        "P=$(sed -n 's/^PUBLISH_TOKEN=//p' /etc/wsnotify/wsnotify.env) && "
        'printf \'%s\\n%s\\n\' "$T" "$P"'
    )
    out = host.run(f"{tokens} | {PYTHON} /tmp/client_loop.py")
    assert out.rc == 0, out.stderr
    stats = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"across systemctl restart wsnotify: {stats}")
    assert stats["restart_rc"] == 0
    assert stats["welcomed"] > 10 and stats["published"] > 50, stats
    assert stats["refused"] == [] and stats["errors"] == [], stats
    assert stats["publish_failed"] == [], stats
    # Waiting in the socket's backlog, not refused: the longest handshake spans the restart.
    assert stats["longest_wait_s"] < 10, stats
