"""The full stack as site.yml leaves it on a bare host: files, modes, links, units, ports."""

import re

from conftest import HOST, playbook
from helpers.in_container import https_status
from helpers.platforms import role_values

testinfra_hosts = [f"podman://{HOST}"]


def test_environment_file_is_root_owned_group_readable_only(host):
    env = host.file("/etc/wsnotify/wsnotify.env")
    assert (env.user, env.group, env.mode) == ("root", "wsnotify", 0o640)


def test_unit_requires_its_environment_file_and_refuses_restart_loops(host):
    unit = host.file("/etc/systemd/system/wsnotify.service").content_string
    assert "EnvironmentFile=/etc/wsnotify/wsnotify.env" in unit  # no "-": missing is an error
    assert "Type=notify" in unit
    assert "RestartPreventExitStatus=78" in unit


def test_release_layout_current_points_at_an_installed_release(host):
    current = host.file("/opt/wsnotify/current")
    assert current.is_symlink
    assert current.linked_to.startswith("/opt/wsnotify/releases/")
    # Built for this host's own Python, never the controller's: the ABI ends the release id.
    python = host.check_output("python3 -c 'import sys; print(\"%d%d\" % sys.version_info[:2])'")
    assert re.search(rf"-cp{python}-manylinux_2_\d+_x86_64$", current.linked_to), current.linked_to
    assert host.file(f"{current.linked_to}/venv/.installed").exists


def test_site_is_linked_into_sites_enabled_and_default_removed(host):
    link = host.file("/etc/nginx/sites-enabled/wsnotify")
    assert link.is_symlink
    assert link.linked_to == "/etc/nginx/sites-available/wsnotify"
    assert not host.file("/etc/nginx/sites-enabled/default").exists


def test_services_run_and_listen_where_expected(host):
    redis_unit = {"redis": "redis-server", "valkey": "valkey-server"}[
        role_values("redis")["__redis_distribution_engines"][0]
    ]
    postgresql_unit = f"postgresql@{role_values('postgresql')['__postgresql_version']}-main"
    for unit in ("wsnotify", "nginx", redis_unit, postgresql_unit):
        service = host.service(unit)
        assert service.is_running and service.is_enabled, unit
    assert host.socket("tcp://127.0.0.1:3002").is_listening
    assert not host.socket("tcp://0.0.0.0:3002").is_listening
    assert host.socket("tcp://0.0.0.0:443").is_listening


def test_wsnotify_status_on_the_host_reports_a_healthy_service(host):
    """The command README gives operators, as written there."""
    out = host.run(
        "systemd-run --quiet --pipe --wait -p EnvironmentFile=/etc/wsnotify/wsnotify.env"
        " -p User=wsnotify /opt/wsnotify/current/venv/bin/wsnotify status"
    )
    assert out.rc == 0, (out.stdout, out.stderr)
    assert re.search(r"^redis / postgresql\s+ok / ok$", out.stdout, re.M), out.stdout
    assert re.search(r"^redis subscription\s+live$", out.stdout, re.M), out.stdout
    assert re.search(r"^service\s+http://127\.0\.0\.1:3002$", out.stdout, re.M), out.stdout


def test_diagnostics_page_needs_its_password_which_the_host_keeps_hashed(host):
    page = "/diagnostics/"
    assert https_status(HOST, "127.0.0.1", page) == 401
    assert https_status(HOST, "127.0.0.1", page, "wsnotify:wrong-password") == 401
    assert https_status(HOST, "127.0.0.1", page, "wsnotify:molecule-diagnostics-password") == 200
    htpasswd = host.file("/etc/nginx/wsnotify-diagnostics.htpasswd")
    assert (htpasswd.user, htpasswd.group, htpasswd.mode) == ("root", "www-data", 0o640)
    assert re.fullmatch(
        r"wsnotify:\$6\$[./A-Za-z0-9]{16}\$[./A-Za-z0-9]{86}\n", htpasswd.content_string
    )


def test_unit_exposure_is_at_most_2(host):
    out = host.check_output("systemd-analyze security --no-pager wsnotify.service")
    level = float(re.search(r"Overall exposure level for wsnotify.service: ([0-9.]+)", out)[1])
    print(f"systemd-analyze security exposure: {level}")
    assert level <= 2.0


def test_secrets_are_not_in_the_unit_or_the_journal(host):
    secret = "molecule-jwt-secret-0123456789abcdef0123456789"
    assert secret not in host.file("/etc/systemd/system/wsnotify.service").content_string
    journal = host.run("journalctl --no-pager -o cat").stdout
    assert secret not in journal


def test_verify_playbook_passes_and_summarises():
    run = playbook("verify.yml")
    assert run.rc == 0, run
    assert "wss notification round trip" in run.out
    assert "FAILED" not in run.out


def test_check_mode_on_a_deployed_host_changes_nothing_and_shows_no_secret():
    run = playbook("site.yml", "--check", "--diff", "-v")
    assert run.rc == 0, run
    assert re.search(rf"{HOST}\s+: ok=\d+\s+changed=0 .*failed=0", run.out), run
    for secret in (
        "molecule-jwt-secret-0123456789abcdef0123456789",
        "molecule-publish-token-0123456789abcdef012345",
        "molecule-postgres-password-0123456789",
        "molecule-redis-password-0123456789",
        "molecule-diagnostics-password",
    ):
        assert secret not in run.out
