"""Redis as the role leaves it: running, bound where asked, answering only with the password."""

testinfra_hosts = ["podman://molecule-redis"]

PASSWORD = "molecule-redis-password-0123456789"  # the value converge.yml sets


def test_redis_is_enabled_and_running(host):
    service = host.service("redis-server")
    assert service.is_enabled
    assert service.is_running


def test_redis_listens_on_loopback_only(host):
    assert host.socket("tcp://127.0.0.1:6379").is_listening
    assert not host.socket("tcp://0.0.0.0:6379").is_listening


def test_redis_answers_ping_with_the_password(host):
    out = host.run("redis-cli --no-auth-warning -a %s PING", PASSWORD)
    assert out.stdout.strip() == "PONG", out.stdout + out.stderr


def test_redis_refuses_commands_without_the_password(host):
    out = host.run("redis-cli PING")
    assert "NOAUTH" in out.stdout + out.stderr


def test_redis_refuses_a_wrong_password(host):
    out = host.run("redis-cli --no-auth-warning -a wrong-password PING")
    assert "PONG" not in out.stdout
    assert "WRONGPASS" in out.stdout + out.stderr


def test_redis_config_holding_the_password_is_not_world_readable(host):
    conf = host.file("/etc/redis/redis.conf")
    assert conf.user == "redis"
    assert conf.mode == 0o640


def test_redis_persistence_is_off_as_configured(host):
    out = host.run("redis-cli --no-auth-warning -a %s CONFIG GET save", PASSWORD)
    assert out.stdout.split("\n")[1].strip() == "", out.stdout
