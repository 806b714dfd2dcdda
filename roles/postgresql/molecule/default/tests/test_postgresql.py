"""PostgreSQL as the role leaves it: the service role reaches its database over TCP with its
password, and nothing else gets in."""

import os
import sys
from pathlib import Path

SCENARIO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(SCENARIO.parents[3] / "tests"))

from helpers.ansible_run import ansible_playbook  # noqa: E402
from helpers.platforms import role_values  # noqa: E402

HOST = "molecule-postgresql"
testinfra_hosts = [f"podman://{HOST}"]

PASSWORD = "molecule-postgres-password-0123"  # the value converge.yml sets
# The major version the role installs on the suite under test (its vars/Debian-<major>.yml).
VERSION = role_values("postgresql")["__postgresql_version"]


def psql(host, password, sql="select current_user || ':' || current_database()"):
    return host.run(
        "env PGPASSWORD=%s PGCONNECT_TIMEOUT=5 psql -h 127.0.0.1 -U wsnotify -d wsnotify -Atc %s",
        password,
        sql,
    )


def test_postgresql_is_enabled_and_running(host):
    service = host.service(f"postgresql@{VERSION}-main")
    assert service.is_enabled
    assert service.is_running


def test_postgresql_listens_on_loopback_only(host):
    assert host.socket("tcp://127.0.0.1:5432").is_listening
    assert not host.socket("tcp://0.0.0.0:5432").is_listening


def test_service_role_connects_over_tcp_with_its_password(host):
    out = psql(host, PASSWORD)
    assert out.rc == 0, out.stderr
    assert out.stdout.strip() == "wsnotify:wsnotify"


def test_wrong_password_is_refused(host):
    out = psql(host, "not-the-password")
    assert out.rc != 0
    assert "password authentication failed" in out.stderr


def test_database_is_utf8_and_owned_by_the_service_role(host):
    out = psql(
        host,
        PASSWORD,
        "select pg_encoding_to_char(encoding) || ':' || pg_get_userbyid(datdba) "
        "from pg_database where datname = 'wsnotify'",
    )
    assert out.stdout.strip() == "UTF8:wsnotify", out.stderr


def test_pg_hba_is_not_world_readable(host):
    assert host.file(f"/etc/postgresql/{VERSION}/main/pg_hba.conf").mode == 0o640


def test_a_cluster_left_by_a_distribution_upgrade_stops_the_role_naming_the_upgrade(host):
    """A cluster of another major (left by a dist-upgrade) is never shadowed by a new one."""
    other = VERSION - 2
    host.check_output(f"mkdir -p /etc/postgresql/{other}/main")
    try:
        inventory = os.path.dirname(os.environ["MOLECULE_INVENTORY_FILE"])
        run = ansible_playbook("-i", inventory, str(SCENARIO / "converge.yml"))
    finally:
        host.check_output(f"rm -r /etc/postgresql/{other}")
    assert run.rc != 0, run
    said = " ".join(run.out.split())
    assert f"This host has a PostgreSQL {other} cluster (/etc/postgresql/{other}/main)" in said, run
    assert f"pg_upgradecluster {other} main" in said and "Nothing was changed." in said, run
    assert host.service(f"postgresql@{VERSION}-main").is_running
