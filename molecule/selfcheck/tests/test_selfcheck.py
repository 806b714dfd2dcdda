"""The self-check timer (role selfcheck) on the deployed host: healthy first, then each of the
old outage's faults, made by hand the way it happened, is reported by the timer within 60 s in
the journal with the message verify gives. Each fault is undone, and the self-check seen
healthy again, before the next test (the detection times go to .cache/selfcheck-detection.txt)."""

import json
import re
import time

import pytest
from conftest import HOST, INVENTORY, ROOT

testinfra_hosts = [f"podman://{HOST}"]

UNIT = "wsnotify-selfcheck"
STATE = "/var/lib/wsnotify-selfcheck/last.json"
TEXTFILE = "/var/lib/wsnotify-selfcheck/wsnotify_selfcheck.prom"
ENV = "/etc/wsnotify/wsnotify.env"
LIMIT = 60  # seconds: two runs of the default 30 s interval
CHECKS = {
    f"{target}_{check}"
    for target in ("direct", "nginx")
    for check in ("refused", "welcome", "roundtrip")
} | {"config", "nginx_site_linked"}


def now(host) -> float:
    return float(host.check_output("date +%s.%N"))


def state(host) -> dict:
    """The last run's state; empty before the timer's first run has written it."""
    read = host.run(f"cat {STATE}")
    return json.loads(read.stdout) if read.rc == 0 else {"time": 0, "ok": False}


def wait_healthy(host, since: float) -> dict:
    """The first run that started after ``since`` and passed every check."""
    deadline = time.monotonic() + LIMIT + 15
    while time.monotonic() < deadline:
        current = state(host)
        if current["time"] > since and current["ok"]:
            return current
        time.sleep(1)
    pytest.fail(f"the self-check is not healthy again {LIMIT + 15} s after the repair: {current}")


def detected(host, since: float, needle: str) -> tuple[float, str]:
    """Seconds from ``since`` to the first err-priority journal line of the timer's unit holding
    ``needle``, and that line; fails after LIMIT seconds."""
    deadline = time.monotonic() + LIMIT + 5
    while time.monotonic() < deadline:
        out = host.check_output(
            f"journalctl -u {UNIT} -p err -o json --since @{since:.0f} --no-pager"
        )
        for line in out.splitlines():
            entry = json.loads(line)
            message = entry.get("MESSAGE", "")
            stamp = int(entry["__REALTIME_TIMESTAMP"]) / 1e6
            if isinstance(message, str) and needle in message and stamp >= since:
                return stamp - since, message
        time.sleep(1)
    pytest.fail(f"the self-check did not report {needle!r} within {LIMIT} s")


def record(fault: str, seconds: float, message: str) -> None:
    with open(ROOT / ".cache" / "selfcheck-detection.txt", "a") as f:
        f.write(f"{fault}: detected in {seconds:.1f} s: {message}\n")


def test_timer_runs_every_check_and_they_pass(host):
    assert host.service(f"{UNIT}.timer").is_enabled
    assert host.service(f"{UNIT}.timer").is_running
    healthy = wait_healthy(host, now(host))
    assert set(healthy["checks"]) == CHECKS, healthy
    metrics = host.file(TEXTFILE).content_string
    for name in CHECKS:
        assert f'wsnotify_selfcheck_up{{check="{name}"}} 1' in metrics, metrics
        assert f'wsnotify_selfcheck_last_success_timestamp_seconds{{check="{name}"}}' in metrics
    assert 'wsnotify_selfcheck_latency_seconds{check="nginx_roundtrip"}' in metrics
    assert 'wsnotify_selfcheck_certificate_expiry_timestamp_seconds{target="nginx"}' in metrics


def test_the_checks_run_from_the_installed_package_not_from_copied_files(host):
    venv = "/opt/wsnotify-selfcheck/venv/bin"
    where = host.check_output(f"{venv}/python -c 'import wsnotify_checks as p; print(p.__file__)'")
    assert "/site-packages/wsnotify_checks/" in where, where
    assert host.run(f"{venv}/pip show -q wsnotify_checks").rc == 0


def test_no_secret_in_the_units_and_the_unit_is_hardened(host):
    shown = host.check_output(f"systemctl cat {UNIT}.service {UNIT}.timer")
    for name in ("wsnotify_jwt_secret", "wsnotify_publish_token", "redis_password"):
        assert INVENTORY[name] not in shown, name
    assert f"EnvironmentFile={ENV}" in shown
    analysis = host.check_output(f"systemd-analyze security --no-pager {UNIT}.service")
    exposure = re.search(r"Overall exposure level for \S+: ([0-9.]+)", analysis)
    assert exposure and float(exposure.group(1)) <= 2.5, analysis[-300:]  # 1.2 measured
    assert "AccuracySec=1s" in shown and "OnUnitActiveSec=30s" in shown


def run_fault(host, fault: str, breaks: str, needle: str, repairs: str) -> None:
    since = now(host)
    host.check_output(breaks)
    try:
        seconds, message = detected(host, since, needle)
    finally:
        repaired = now(host)
        host.check_output(repairs)
    record(fault, seconds, message)
    assert seconds <= LIMIT
    wait_healthy(host, repaired)


def test_site_unlinked_is_reported(host):
    run_fault(
        host,
        "site unlinked",
        "rm /etc/nginx/sites-enabled/wsnotify && systemctl reload nginx",
        "/etc/nginx/sites-enabled/wsnotify is missing (or not a link)",
        "ln -s /etc/nginx/sites-available/wsnotify /etc/nginx/sites-enabled/wsnotify"
        " && systemctl reload nginx",
    )


def test_stopped_service_is_reported(host):
    run_fault(
        host,
        "service stopped",
        # With its socket: alone, a stopped service is started again by the self-check itself.
        "systemctl stop wsnotify.socket wsnotify",
        "nothing is listening on 127.0.0.1:3002: the service is not running",
        "systemctl start wsnotify.socket wsnotify",
    )


def test_port_taken_by_another_program_is_reported(host):
    run_fault(
        host,
        "port 3002 taken",
        "systemctl stop wsnotify.socket wsnotify"
        " && systemd-run --unit=selfcheck-squatter --property=Type=exec"
        " python3 -m http.server --bind 127.0.0.1 3002",
        "another program holds the port instead of wsnotify",
        "systemctl stop selfcheck-squatter && systemctl start wsnotify.socket wsnotify",
    )


def test_blanked_environment_file_is_reported_before_a_restart_fails(host):
    run_fault(
        host,
        "EnvironmentFile blanked",
        f"cp -p {ENV} {ENV}.selfcheck-test && : > {ENV}",
        "JWT_SECRET is missing",
        f"mv -f {ENV}.selfcheck-test {ENV}",
    )
    assert host.service("wsnotify").is_running  # the fault was found before it stopped anything
