"""Load on the deployed host, through nginx over TLS: 5,000 authenticated wss clients held (the
scenario's nginx_site_max_clients), the next one refused cleanly (503 with Retry-After, never a
reset), a broadcast reaching every held client, and a reload with 1,000 live clients that leaves
no old worker once the scenario's shortened worker_shutdown_timeout has passed. The clients
(tests/helpers/files/hold_clients.py) run in the container with the release's Python; the
figures go to .cache/load.txt. (This scenario's container is reused to save a converge.)"""

import json
import subprocess

import pytest
from conftest import HOST, INVENTORY, ROOT

testinfra_hosts = [f"podman://{HOST}"]

HOLD = ROOT / "tests/helpers/files/hold_clients.py"
IN_CONTAINER = "/run/hold_clients.py"
REPORT = ROOT / ".cache" / "load.txt"
CAPACITY = INVENTORY["nginx_site_max_clients"]
SHUTDOWN_TIMEOUT = INVENTORY["nginx_site_worker_shutdown_timeout"]
RETRY_AFTER = "10"  # nginx_site_capacity_retry_after's default


@pytest.fixture(scope="module", autouse=True)
def no_self_check(host):
    """The self-check's own probes through nginx would take slots of the full site: its timer
    is stopped for these tests (a run under way ends first) and started again after."""
    host.check_output("systemctl stop wsnotify-selfcheck.timer wsnotify-selfcheck.service")
    yield
    host.check_output("systemctl start wsnotify-selfcheck.timer")


def hold(what: str, *args: str) -> dict:
    subprocess.run(
        ["podman", "exec", "-i", HOST, "sh", "-c", f"cat > {IN_CONTAINER}"],
        input=HOLD.read_text(),
        text=True,
        check=True,
    )
    run = subprocess.run(
        ["podman", "exec", HOST, "/opt/wsnotify/current/venv/bin/python", IN_CONTAINER,
         *args],
        capture_output=True, text=True, timeout=660, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
    stats = json.loads(run.stdout.strip().splitlines()[-1])
    with REPORT.open("a") as f:
        f.write(f"{what}: {json.dumps(stats)}\n")
    print(f"{what}: {stats}")
    return stats


def test_clients_up_to_capacity_are_held_and_the_next_is_refused_cleanly():
    stats = hold(
        f"{CAPACITY} clients held 30 s, 1 over capacity, a broadcast",
        "--clients", str(CAPACITY), "--hold", "30", "--over", "1",
    )  # fmt: skip
    assert stats["refused"] == [] and stats["errors"] == [], stats
    assert stats["welcomed"] == CAPACITY and stats["held"] == CAPACITY, stats
    assert stats["unexpected_closes"] == [], stats
    # The one over capacity: nginx's 503 with Retry-After, not a reset, not a 500.
    assert stats["over"] == [[503, RETRY_AFTER]], stats
    assert stats["broadcast_missing"] == 0, stats


def test_a_reload_with_live_clients_leaves_no_old_worker_after_the_shutdown_timeout():
    stats = hold(
        "1000 clients across systemctl reload nginx",
        "--clients", "1000", "--hold", "20", "--reload-at", "3",
        "--old-worker-limit", str(SHUTDOWN_TIMEOUT + 10),
    )  # fmt: skip
    assert stats["refused"] == [] and stats["errors"] == [], stats
    assert stats["welcomed"] == 1000 and stats["reload_rc"] == 0, stats
    # The old workers kept their clients after the reload, then closed them at the timeout.
    assert stats["old_workers_after_reload"] >= 1, stats
    assert stats["old_workers_gone_s"] is not None, stats
    assert stats["old_workers_gone_s"] <= SHUTDOWN_TIMEOUT + 5, stats
    # Every client an old worker closed came back at once; nothing else was closed.
    assert stats["closed_by_reload"] >= 1 and stats["reopened"] == stats["closed_by_reload"], stats
    assert stats["unexpected_closes"] == [] and stats["held"] == 1000, stats
