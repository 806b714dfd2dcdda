"""monitoring/wsnotify-alerts.yml with Debian's promtool (package prometheus, installed by
scripts/setup.sh): the rules are valid, their unit tests pass, and the unit tests fail when a
rule is wrong (so they test something)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "monitoring/wsnotify-alerts.yml"
TESTS = ROOT / "monitoring/wsnotify-alerts.test.yml"
# Debian's prometheus per suite of the machine: the rules' syntax is checked by this version.
PINNED = {"bookworm": "2.42.0+ds"}


def os_codename() -> str:
    for line in Path("/etc/os-release").read_text().splitlines():
        if line.startswith("VERSION_CODENAME="):
            return line.split("=", 1)[1].strip('"')
    return ""


@pytest.fixture(scope="module")
def promtool() -> str:
    path = shutil.which("promtool")
    assert path, "promtool is missing: run `make setup` (it installs Debian's prometheus package)"
    return path


def run(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, timeout=120)


def test_promtool_is_the_suites_pinned_version(promtool):
    suite = os_codename()
    assert suite in PINNED, f"no promtool version pinned for Debian {suite}: add it to PINNED"
    version = run(promtool, "--version").stdout.split()[2]
    assert version == PINNED[suite], version


def test_rules_are_valid(promtool):
    out = run(promtool, "check", "rules", str(RULES))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS: 6 rules found" in out.stdout


def test_every_alert_fires_when_it_should_and_not_before(promtool):
    out = run(promtool, "test", "rules", str(TESTS))
    assert out.returncode == 0, out.stdout + out.stderr
    tested = set(TESTS.read_text().split("alertname: ")[1:])
    alerts = {part.split()[0] for part in RULES.read_text().split("- alert: ")[1:]}
    assert {t.split()[0] for t in tested} == alerts  # every rule has a unit test


def test_the_unit_tests_catch_a_wrong_threshold(promtool, tmp_path):
    broken = RULES.read_text().replace("/ 86400 < 14", "/ 86400 < 1")
    assert broken != RULES.read_text()
    (tmp_path / RULES.name).write_text(broken)
    shutil.copy(TESTS, tmp_path / TESTS.name)
    out = run(promtool, "test", "rules", str(tmp_path / TESTS.name))
    assert out.returncode != 0, out.stdout
    assert "WsnotifyCertificateExpiresSoon" in out.stdout + out.stderr
