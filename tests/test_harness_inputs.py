"""Bad input to the deploy fails at once, with the name of what is wrong, before any host changes.

These run site.yml for real: the preflight play and the role argument checks run on the
controller, so no container is needed, and the failing run must end before the first play that
would touch a host. The inventory's only host is unreachable on purpose: if a check ever let
the play through, it would fail to connect rather than change anything.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from helpers.ansible_run import ROOT, ansible_playbook

SECRETS = {
    "postgresql_db_password": "pg-password-0123456789",
    "redis_password": "redis-password-0123456789",
    "wsnotify_jwt_secret": "jwt-secret-0123456789abcdef0123456789",
    "wsnotify_publish_token": "publish-token-0123456789abcdef01234567",
}
INVENTORY = """
all:
  hosts:
    nowhere: {ansible_host: 127.0.0.1, ansible_port: 1, ansible_connection: ssh}
  children:
    proxy: {hosts: {nowhere: }}
    ws_nodes: {hosts: {nowhere: }}
    redis: {hosts: {nowhere: }}
    postgres: {hosts: {nowhere: }}
"""


@pytest.fixture(scope="module")
def inventory(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("inventory") / "hosts.yml"
    path.write_text(INVENTORY)
    return path


def site(inventory: Path, *extra: str, secrets: dict[str, str] = SECRETS) -> str:
    """Run site.yml; return its whole output, asserting that it failed."""
    args = [f"-e{k}={v}" for k, v in secrets.items()]
    run = ansible_playbook("playbooks/site.yml", "-i", str(inventory), *args, *extra, timeout=120)
    out = run.out
    assert run.rc != 0, out[-3000:]
    # Only the preflight play ran: no role play started, no host was contacted.
    assert "PLAY [Ensure" not in out and "UNREACHABLE" not in out, out[-3000:]
    return out


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        (["-e", "redis_pasword=x"], "unknown variable(s) for role redis: redis_pasword"),
        (["-e", "nginx_site_backend=127.0.0.1:3002"], "nginx_site_backend (a typo?)"),
        (["-e", "wsnotify_prot=3003"], "unknown variable(s) for role wsnotify: wsnotify_prot"),
        (["-e", '{"redis_port": "six"}'], "argument 'redis_port' is of type str"),
        (["-e", '{"wsnotify_allowed_origins": {"a": 1}}'], "wsnotify_allowed_origins"),
        (["-e", "redis_persistence=sometimes"], "redis_persistence"),
        # Beyond types: the roles' own checks of their variables run before any host changes too.
        (["-e", '{"nginx_site_ws_timeout": 20}'], "nginx_site_ws_timeout (20 s) must be longer"),
        (["-e", "postgresql_db_password=short"], "postgresql_db_password must be at least 16"),
        # The derived nginx value follows the service's: its timeout is checked against it.
        (["-e", '{"wsnotify_ping_interval": 90}'], "nginx_site_ws_ping_interval (90 s)"),
        # A diagnostics page that is on must be protected, at a path nginx can serve.
        (
            ["-e", "nginx_site_diagnostics_path=/diagnostics/"],
            "must be protected by nginx_site_diagnostics_password",
        ),
        (
            [
                "-e",
                "nginx_site_diagnostics_path=diag",
                "-e",
                "nginx_site_diagnostics_password=long-enough-pass",
            ],
            "nginx_site_diagnostics_path is set (diag)",
        ),
        (
            [
                "-e",
                "nginx_site_diagnostics_path=/d/",
                "-e",
                "nginx_site_diagnostics_password=short",
            ],
            "(at least 12 characters",
        ),
    ],
)
def test_wrong_variable_fails_the_play_at_its_start_naming_it(inventory, extra, named):
    out = site(inventory, *extra)
    assert named in out, out[-3000:]


def test_missing_secret_is_named(inventory):
    without = {k: v for k, v in SECRETS.items() if k != "postgresql_db_password"}
    out = site(inventory, secrets=without)
    assert "missing required arguments: postgresql_db_password" in out, out[-3000:]


def test_secrets_never_reach_the_output_of_a_failing_preflight(inventory):
    out = site(inventory, "-v", "-e", "redis_pasword=x")
    for value in SECRETS.values():
        assert value not in out
    # Nor the diagnostics page's password, when its own check is what fails.
    password = "diagnostics-password-0123"
    out = site(inventory, "-v", "-e", f"nginx_site_diagnostics_password={password}",
               "-e", "nginx_site_diagnostics_path=no-slashes")  # fmt: skip
    assert "nginx_site_diagnostics_path is set (no-slashes)" in out, out[-3000:]
    assert password not in out


def test_setup_refuses_to_run_without_root_in_one_line():
    run = subprocess.run(
        ["runuser", "-u", "nobody", "--", "bash", str(ROOT / "scripts/setup.sh")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode != 0
    lines = [line for line in (run.stdout + run.stderr).splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert lines[0].startswith("ERROR: run this as root"), lines
