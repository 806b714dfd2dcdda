"""A restart refuses no one: wsnotify.socket holds :3002 while the service restarts.

tests/files/client_loop.py runs in the container with the release's Python: one client
connecting again and again through nginx (wss) and a publisher posting every 100 ms, across
`systemctl restart wsnotify`. (Across site.yml deploys of a changed release: branch
restart-deploy-test, not yet run to the end.) Tokens go to it on stdin, made in the container.
"""

import json
import subprocess

from conftest import HOST, ROOT

testinfra_hosts = [f"podman://{HOST}"]

LOOP = ROOT / "molecule/default/tests/files/client_loop.py"
STOP = "/run/client_loop.stop"  # in the container
REPORT = ROOT / ".cache" / "restart.txt"
# The loop fed its two tokens on stdin: a user's, minted the way the unit runs the service, and
# the publish token from the environment file.
RUN_LOOP = (
    "T=$(systemd-run --quiet --pipe --wait --collect -p EnvironmentFile=/etc/wsnotify/wsnotify.env"
    " -p User=wsnotify /opt/wsnotify/current/venv/bin/wsnotify token --user loop) && "
    "P=$(sed -n 's/^PUBLISH_TOKEN=//p' /etc/wsnotify/wsnotify.env) && "
    'printf \'%s\\n%s\\n\' "$T" "$P" | /opt/wsnotify/current/venv/bin/python /tmp/client_loop.py'
)


def start_loop(*args: str) -> subprocess.Popen:
    """The client loop in the container, in the background; ``finish`` collects its counts."""
    subprocess.run(["podman", "exec", HOST, "rm", "-f", STOP], check=True)
    subprocess.run(
        ["podman", "exec", "-i", HOST, "sh", "-c", "cat > /tmp/client_loop.py"],
        input=LOOP.read_text(),
        text=True,
        check=True,
    )
    loop = f"{RUN_LOOP} --stop-file {STOP} {' '.join(args)}"
    return subprocess.Popen(
        ["podman", "exec", HOST, "sh", "-c", loop], stdout=subprocess.PIPE, text=True
    )


def finish(proc: subprocess.Popen, what: str, stop: bool = True) -> dict:
    """The loop's counts, once it ends: told to now (``stop``), or at its --max-seconds."""
    if stop:
        subprocess.run(["podman", "exec", HOST, "touch", STOP], check=True)
    out, _ = proc.communicate(timeout=90)
    assert proc.returncode == 0, out
    stats = json.loads(out.strip().splitlines()[-1])
    with REPORT.open("a") as f:
        f.write(f"{what}: {json.dumps(stats)}\n")
    print(f"{what}: {stats}")
    return stats


def assert_nobody_refused(stats: dict) -> None:
    assert stats["refused"] == [] and stats["errors"] == [], stats
    assert stats["publish_failed"] == [], stats
    # 1012 after a 101: answered by the stopping process, told to reconnect; never a refusal.
    assert set(stats["closed_after_101"]) <= {1012}, stats
    # Waiting in the socket's backlog through the restart, not refused.
    assert stats["longest_wait_s"] < 15, stats


def test_systemctl_restart_refuses_no_handshake_and_no_publish():
    stats = finish(
        start_loop("--max-seconds", "12", "--restart-at", "3"),
        "across systemctl restart wsnotify",
        stop=False,
    )
    assert stats["restart_rc"] == 0, stats
    assert stats["welcomed"] > 10 and stats["published"] > 50, stats
    assert_nobody_refused(stats)
