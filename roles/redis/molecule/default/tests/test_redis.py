"""Redis as the role leaves it, for each engine: running, bound where asked, answering only with
the password. molecule-redis runs the distribution's default engine, molecule-redis-engine-redis
redis-server chosen explicitly (molecule.yml)."""

import os

import pytest

PASSWORD = "molecule-redis-password-0123456789"  # the value converge.yml sets
# The default engine of the suite under test (scripts/test-molecule.sh exports WSNOTIFY_SUITE).
DEFAULT_ENGINE = {"trixie": "valkey", "bookworm": "redis"}[
    os.environ.get("WSNOTIFY_SUITE", "trixie")
]
ENGINES = {"molecule-redis": DEFAULT_ENGINE, "molecule-redis-engine-redis": "redis"}
testinfra_hosts = [f"podman://{name}" for name in ENGINES]


@pytest.fixture
def engine(host):
    name = ENGINES[host.backend.get_hostname()]
    return {
        "redis": {"unit": "redis-server", "cli": "redis-cli", "conf": "/etc/redis/redis.conf"},
        "valkey": {"unit": "valkey-server", "cli": "valkey-cli", "conf": "/etc/valkey/valkey.conf"},
    }[name] | {"name": name}


def test_the_chosen_engine_is_enabled_and_running(host, engine):
    service = host.service(engine["unit"])
    assert service.is_enabled
    assert service.is_running
    version = host.check_output(f"{engine['cli']} --version")
    assert version.startswith(f"{engine['cli']} "), version


def test_it_listens_on_loopback_only(host):
    assert host.socket("tcp://127.0.0.1:6379").is_listening
    assert not host.socket("tcp://0.0.0.0:6379").is_listening


def test_it_answers_ping_with_the_password(host, engine):
    out = host.run(f"{engine['cli']} --no-auth-warning -a %s PING", PASSWORD)
    assert out.stdout.strip() == "PONG", out.stdout + out.stderr


def test_it_refuses_commands_without_the_password(host, engine):
    out = host.run(f"{engine['cli']} PING")
    assert "NOAUTH" in out.stdout + out.stderr


def test_it_refuses_a_wrong_password(host, engine):
    out = host.run(f"{engine['cli']} --no-auth-warning -a wrong-password PING")
    assert "PONG" not in out.stdout
    assert "WRONGPASS" in out.stdout + out.stderr


def test_the_config_holding_the_password_is_not_world_readable(host, engine):
    conf = host.file(engine["conf"])
    assert conf.user == engine["name"]
    assert conf.mode == 0o640


def test_persistence_is_off_as_configured(host, engine):
    out = host.run(f"{engine['cli']} --no-auth-warning -a %s CONFIG GET save", PASSWORD)
    assert out.stdout.split("\n")[1].strip() == "", out.stdout
