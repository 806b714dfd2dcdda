"""The old outage, reproduced for real on the deployed container. Each test breaks one thing the
way it broke in production, asserts the message the toolkit prints, and that the stack serves
again (or never stopped serving) afterwards. Tests run in file order and each leaves the stack
as it found it."""

import shutil
import tempfile
from pathlib import Path

from conftest import HOST, ROOT, playbook, record

testinfra_hosts = [f"podman://{HOST}"]


def main_pid(host) -> str:
    return host.check_output("systemctl show -p MainPID --value wsnotify")


def assert_serving():
    run = playbook("verify.yml")
    assert run.rc == 0, run


def assert_failed_saying(run, test: str, needle: str) -> None:
    """The run failed and says needle to the operator (the line is kept for the report)."""
    assert run.rc != 0, run
    assert needle in run.out, run
    record(test, run.out, needle)


def test_1_missing_required_variable_stops_before_any_restart(host):
    pid = main_pid(host)
    run = playbook("site.yml", "-e", "wsnotify_jwt_secret=")
    assert_failed_saying(run, "1 missing variable", "JWT_SECRET is missing")
    assert "nothing was restarted" in run.out, run
    assert main_pid(host) == pid  # the running service was never touched
    live = host.file("/etc/wsnotify/wsnotify.env").content_string
    assert "JWT_SECRET=molecule-jwt-secret" in live
    assert_serving()


def test_2_sites_enabled_link_removed_by_hand_is_named_then_restored(host):
    host.check_output("rm /etc/nginx/sites-enabled/wsnotify && systemctl reload nginx")
    run = playbook("verify.yml")
    assert_failed_saying(run, "2 link removed", "/etc/nginx/sites-enabled/wsnotify is missing")
    run = playbook("site.yml")
    assert run.rc == 0, run
    assert host.file("/etc/nginx/sites-enabled/wsnotify").is_symlink
    assert_serving()


def test_3a_stopped_service_is_named_with_its_port_and_unit(host):
    # The socket as well: alone, a stopped service is started again by its socket's next client.
    host.check_output("systemctl stop wsnotify.socket wsnotify")
    run = playbook("verify.yml")
    assert_failed_saying(run, "3a service stopped", "127.0.0.1:3002")
    assert "wsnotify" in run.out and "systemctl status wsnotify" in run.out, run
    assert playbook("site.yml").rc == 0
    assert_serving()


def test_3b_port_taken_by_another_process_is_named(host):
    host.check_output("systemctl stop wsnotify.socket wsnotify")
    host.check_output(
        "systemd-run --unit=squatter --property=Type=exec "
        "python3 -m http.server --bind 127.0.0.1 3002"
    )
    try:
        run = playbook("verify.yml")
        assert_failed_saying(
            run, "3b port taken", "another program holds the port instead of wsnotify"
        )
        assert "127.0.0.1:3002" in run.out, run
        assert "systemctl status wsnotify" in run.out, run
    finally:
        host.run("systemctl stop squatter")
    assert playbook("site.yml").rc == 0
    assert_serving()


def test_4_invalid_nginx_directive_is_never_activated(host):
    before = host.file("/etc/nginx/sites-available/wsnotify").content_string
    run = playbook("site.yml", "-e", '{"nginx_site_extra_directives": ["no_such_directive on;"]}')
    assert_failed_saying(run, "4 invalid directive", 'unknown directive "no_such_directive"')
    assert "nginx rejected" in run.out, run
    assert host.file("/etc/nginx/sites-available/wsnotify").content_string == before
    assert host.run("nginx -t").rc == 0
    assert_serving()


def test_5_release_failing_verification_is_rolled_back(host):
    before = host.file("/opt/wsnotify/current").linked_to
    broken = Path(tempfile.mkdtemp()) / "service"
    shutil.copytree(ROOT / "service", broken, ignore=shutil.ignore_patterns("__pycache__", "tests"))
    protocol = broken / "src/wsnotify/protocol.py"
    # A release that authenticates but never greets: clients waiting for "welcome" hang.
    protocol.write_text(protocol.read_text().replace('"type": "welcome"', '"type": "hello"'))
    try:
        run = playbook("site.yml", "-e", f"wsnotify_source_dir={broken}")
    finally:
        shutil.rmtree(broken.parent)
    assert_failed_saying(run, "5 failing release", "rolled back to the previous release")
    assert "welcome" in run.out, run
    assert host.file("/opt/wsnotify/current").linked_to == before
    assert_serving()
