"""The client loop (files/client_loop.py) run inside a Molecule container: one client connecting
again and again through nginx (wss) and publishers posting every 100 ms, across whatever the test
does meanwhile (e.g. a restart). Tokens go to it on stdin, made in the
container: a user's minted the way the unit runs the service, and the publish token from the
environment file."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

LOOP = Path(__file__).resolve().parent / "files" / "client_loop.py"
STOP = "/run/client_loop.stop"  # in the container
RUN_LOOP = (
    "T=$(systemd-run --quiet --pipe --wait --collect -p EnvironmentFile=/etc/wsnotify/wsnotify.env"
    " -p User=wsnotify /opt/wsnotify/current/venv/bin/wsnotify token --user loop) && "
    "P=$(sed -n 's/^PUBLISH_TOKEN=//p' /etc/wsnotify/wsnotify.env) && "
    'printf \'%s\\n%s\\n\' "$T" "$P" | /opt/wsnotify/current/venv/bin/python /tmp/client_loop.py'
)


def start_loop(container: str, *args: str) -> subprocess.Popen:
    """The client loop in ``container``, in the background; ``finish`` collects its counts."""
    subprocess.run(["podman", "exec", container, "rm", "-f", STOP], check=True)
    subprocess.run(
        ["podman", "exec", "-i", container, "sh", "-c", "cat > /tmp/client_loop.py"],
        input=LOOP.read_text(),
        text=True,
        check=True,
    )
    loop = f"{RUN_LOOP} --stop-file {STOP} {' '.join(args)}"
    return subprocess.Popen(
        ["podman", "exec", container, "sh", "-c", loop], stdout=subprocess.PIPE, text=True
    )


def finish(
    container: str, proc: subprocess.Popen, what: str, report: Path, stop: bool = True
) -> dict:
    """The loop's counts, once it ends: told to now (``stop``), or at its --max-seconds; each
    run is appended to ``report`` as one line."""
    if stop:
        subprocess.run(["podman", "exec", container, "touch", STOP], check=True)
    out, _ = proc.communicate(timeout=90)
    assert proc.returncode == 0, out
    stats = json.loads(out.strip().splitlines()[-1])
    with report.open("a") as f:
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
