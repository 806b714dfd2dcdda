"""PostgreSQL as the role leaves it: the service role reaches its database over TCP with its
password, and nothing else gets in."""

testinfra_hosts = ["podman://molecule-postgresql"]

PASSWORD = "molecule-postgres-password-0123"  # the value converge.yml sets


def psql(host, password, sql="select current_user || ':' || current_database()"):
    return host.run(
        "env PGPASSWORD=%s PGCONNECT_TIMEOUT=5 psql -h 127.0.0.1 -U wsnotify -d wsnotify -Atc %s",
        password,
        sql,
    )


def test_postgresql_is_enabled_and_running(host):
    service = host.service("postgresql@15-main")
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
    assert host.file("/etc/postgresql/15/main/pg_hba.conf").mode == 0o640
