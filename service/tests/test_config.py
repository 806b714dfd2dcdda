"""Configuration: every required variable, malformed values, exit 78, secrets never printed."""

from __future__ import annotations

import subprocess

import pytest
from wsnotify_harness import wsnotify_cmd

from wsnotify.config import EX_CONFIG, ConfigError, Secret, load_config

SECRETS = {
    "DATABASE_URL": "postgresql://svc:db-password-SENTINEL-1@127.0.0.1:5432/app",
    "REDIS_URL": "redis://:redis-password-SENTINEL-2@127.0.0.1:6379/0",
    "JWT_SECRET": "jwt-secret-SENTINEL-3-0123456789abcdefghij",
    "PUBLISH_TOKEN": "publish-token-SENTINEL-4-0123456789abcdef",
}
SENTINELS = ("SENTINEL-1", "SENTINEL-2", "SENTINEL-3", "SENTINEL-4", "SENTINEL-5")


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    import os

    keep = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "PYTHONPATH")}
    return subprocess.run(
        wsnotify_cmd(*args), env={**keep, **env}, capture_output=True, text=True, timeout=30
    )


def _no_secret_in(result: subprocess.CompletedProcess[str]) -> None:
    for sentinel in SENTINELS:
        assert sentinel not in result.stdout
        assert sentinel not in result.stderr


def test_complete_config_passes_check():
    result = _cli(SECRETS, "check-config")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "config ok"
    _no_secret_in(result)


@pytest.mark.parametrize("command", ["check-config", "serve", "migrate", "token --user 1"])
@pytest.mark.parametrize("missing", sorted(SECRETS))
def test_each_missing_variable_exits_78_naming_it(missing, command):
    env = {k: v for k, v in SECRETS.items() if k != missing}
    result = _cli(env, *command.split())
    assert result.returncode == EX_CONFIG
    lines = result.stderr.strip().splitlines()
    assert lines == [f"wsnotify: config error: {missing} is missing: " + lines[0].split(": ", 3)[3]]
    assert result.stdout == ""
    _no_secret_in(result)


def test_contract_wording_for_missing_jwt_secret():
    env = {k: v for k, v in SECRETS.items() if k != "JWT_SECRET"}
    result = _cli(env, "check-config")
    assert result.stderr.startswith(
        "wsnotify: config error: JWT_SECRET is missing: set it to a random string of at least "
        "32 characters"
    )


def test_nextauth_secret_is_an_alias():
    env = {k: v for k, v in SECRETS.items() if k != "JWT_SECRET"}
    env["NEXTAUTH_SECRET"] = SECRETS["JWT_SECRET"]
    assert _cli(env, "check-config").returncode == 0


MALFORMED = {
    "DATABASE_URL": ("mysql://u:p-SENTINEL-5@h/db", "DATABASE_URL must use the postgresql://"),
    "REDIS_URL": ("redis://:p-SENTINEL-5@h:notaport/0", "REDIS_URL is malformed"),
    "JWT_SECRET": ("short-SENTINEL-5", "JWT_SECRET is too short"),
    "PUBLISH_TOKEN": ("short-SENTINEL-5", "PUBLISH_TOKEN is too short"),
    "WSNOTIFY_PORT": ("99999", "WSNOTIFY_PORT must be between 1 and 65535"),
    "WSNOTIFY_MAX_CONNECTIONS_PER_USER": ("many", "WSNOTIFY_MAX_CONNECTIONS_PER_USER must be"),
    "WSNOTIFY_MAX_CONNECTIONS": ("-1", "WSNOTIFY_MAX_CONNECTIONS must be"),
    "WSNOTIFY_SEND_BUFFER_LIMIT": ("-5", "WSNOTIFY_SEND_BUFFER_LIMIT must be between"),
    "WSNOTIFY_RECOVERY_LIMIT": ("-3", "WSNOTIFY_RECOVERY_LIMIT must be between 1 and 100000"),
    "WSNOTIFY_PING_INTERVAL": ("soon", "WSNOTIFY_PING_INTERVAL must be a number of seconds"),
    "WSNOTIFY_AUTH_TIMEOUT": ("-1", "WSNOTIFY_AUTH_TIMEOUT must be a number of seconds"),
    "JWT_LEEWAY": ("x", "JWT_LEEWAY must be a number of seconds"),
    "WSNOTIFY_LOG_LEVEL": ("loud", "WSNOTIFY_LOG_LEVEL must be one of"),
    "WSNOTIFY_ALLOWED_ORIGINS": ("app.example.com/path", "WSNOTIFY_ALLOWED_ORIGINS must be"),
    "JWT_USER_CLAIM": ("user..SENTINEL-5", "JWT_USER_CLAIM must be a claim name or a dotted"),
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_value_exits_78_without_echoing_it(name):
    value, expected = MALFORMED[name]
    result = _cli({**SECRETS, name: value}, "check-config")
    assert result.returncode == EX_CONFIG
    assert result.stderr.startswith(f"wsnotify: config error: {expected}")
    assert len(result.stderr.strip().splitlines()) == 1
    assert value not in result.stderr
    _no_secret_in(result)


def test_all_problems_reported_at_once():
    result = _cli({"WSNOTIFY_PORT": "abc"}, "check-config")
    assert result.returncode == EX_CONFIG
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 5
    assert all(line.startswith("wsnotify: config error: ") for line in lines)


def test_typed_defaults_and_secret_repr():
    config = load_config(SECRETS)
    assert (config.host, config.port) == ("127.0.0.1", 3002)
    assert config.max_connections_per_user == 10
    assert config.send_buffer_limit == 1_048_576
    assert config.ping_interval == 25.0 and config.auth_timeout == 5.0
    assert config.jwt_leeway == 30.0 and config.log_level == "info"
    assert config.allowed_origins == ()
    assert config.jwt_user_claim == ("sub",)
    assert config.database_display == "postgresql://127.0.0.1:5432/app"
    assert config.redis_display == "redis://127.0.0.1:6379/0"
    for sentinel in SENTINELS:
        assert sentinel not in repr(config)
    assert repr(Secret("x")) == "Secret('***')"


def test_optional_values_parsed():
    config = load_config(
        {
            **SECRETS,
            "WSNOTIFY_ALLOWED_ORIGINS": "https://a.example, http://b.example:8080/",
            "JWT_AUDIENCE": "aud",
            "JWT_ISSUER": "iss",
            "WSNOTIFY_LOG_LEVEL": "DEBUG",
            "WATCHDOG_USEC": "2000000",
            "NOTIFY_SOCKET": "@sock",
            "JWT_USER_CLAIM": "user.id",
        }
    )
    assert config.jwt_user_claim == ("user", "id")
    assert config.allowed_origins == ("https://a.example", "http://b.example:8080")
    assert (config.jwt_audience, config.jwt_issuer, config.log_level) == ("aud", "iss", "debug")
    assert config.watchdog_usec == 2_000_000 and config.notify_socket == "@sock"


@pytest.mark.parametrize("claim", ["exp", "aud", "iss", "a.b.c.d.e.f", "user id", "user/id"])
def test_user_claim_that_cannot_hold_a_user_id_is_refused(claim):
    with pytest.raises(ConfigError) as error:
        load_config({**SECRETS, "JWT_USER_CLAIM": claim})
    assert error.value.problems[0].startswith("JWT_USER_CLAIM must")


def test_conflicting_alias_is_an_error():
    with pytest.raises(ConfigError) as error:
        load_config({**SECRETS, "NEXTAUTH_SECRET": "x" * 40})
    assert error.value.problems == [
        "JWT_SECRET and NEXTAUTH_SECRET are both set and differ: set only JWT_SECRET (the alias "
        "is accepted for compatibility with the old server)"
    ]


def test_token_command_mints_a_verifiable_token():
    import jwt

    result = _cli({**SECRETS, "JWT_AUDIENCE": "a", "JWT_ISSUER": "i"}, "token", "--user", "7")
    assert result.returncode == 0, result.stderr
    claims = jwt.decode(
        result.stdout.strip(), SECRETS["JWT_SECRET"], algorithms=["HS256"], audience="a",
        issuer="i",
    )  # fmt: skip
    assert claims["sub"] == "7" and claims["exp"] - claims["iat"] == 3600
