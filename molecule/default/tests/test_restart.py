"""A restart refuses no one: wsnotify.socket holds :3002 while the service restarts.

The client loop (tests/helpers/client_loop.py) runs in the container with the release's Python:
one client connecting again and again through nginx (wss) and a publisher posting every 100 ms,
across `systemctl restart wsnotify`. (Across site.yml deploys of a changed release: branch
deploy-load, out of the suite while a publish can meet a 502; see roles/wsnotify/README.md.)
"""

from conftest import HOST, ROOT
from helpers.client_loop import assert_nobody_refused, finish, start_loop

testinfra_hosts = [f"podman://{HOST}"]

REPORT = ROOT / ".cache" / "restart.txt"


def test_systemctl_restart_refuses_no_handshake_and_no_publish():
    stats = finish(
        HOST,
        start_loop(HOST, "--max-seconds", "12", "--restart-at", "3"),
        "across systemctl restart wsnotify",
        REPORT,
        stop=False,
    )
    assert stats["restart_rc"] == 0, stats
    assert stats["welcomed"] > 10 and stats["published"] > 50, stats
    assert_nobody_refused(stats)
