"""Configuration: read the environment once, validate everything, return a typed object.

Nothing else in the package reads ``os.environ``. Validation collects *every* problem before
failing, so an operator fixes an EnvironmentFile in one pass instead of one error per restart.
Problems name the variable and what is expected, never the value: values may be secrets.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import SplitResult, unquote, urlsplit

EX_CONFIG = 78  # sysexits.h: configuration error; systemd units can refuse to restart on it.

MIN_SECRET_LENGTH = 32
LOG_LEVELS = ("debug", "info", "warning", "error")


class Secret:
    """A string that does not print itself, so a stray f-string or repr cannot leak it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """Return the secret; call only where the value is actually used."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True)
class Config:
    """Validated settings of one wsnotify process."""

    database_url: Secret
    redis_url: Secret
    jwt_secret: Secret
    publish_token: Secret
    host: str = "127.0.0.1"
    port: int = 3002
    allowed_origins: tuple[str, ...] = ()
    max_connections_per_user: int = 10
    # Open WebSockets this process admits (0 = no cap); the next client is closed with 1013.
    max_connections: int = 0
    send_buffer_limit: int = 1_048_576
    # Notifications replayed to a client resuming with after_id; past it, it pages the API.
    recovery_limit: int = 1000
    ping_interval: float = 25.0
    auth_timeout: float = 5.0
    jwt_audience: str | None = None
    jwt_issuer: str | None = None
    jwt_leeway: float = 30.0
    jwt_user_claim: tuple[str, ...] = ("sub",)
    log_level: str = "info"
    # Set by systemd, not by the operator; read here so nothing else touches os.environ.
    notify_socket: str | None = None
    watchdog_usec: int | None = None
    # Socket activation (wsnotify.socket): systemd passed the listening socket as fd 3.
    listen_fd: int | None = None
    database_display: str = field(default="", compare=False)
    redis_display: str = field(default="", compare=False)


class ConfigError(Exception):
    """Raised with the full list of problems found in the environment."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def _redacted(parts: SplitResult) -> str:
    """host:port/path of a URL, for logs: the userinfo (with any password) is dropped."""
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


def _check_database_url(value: str, problems: list[str]) -> str:
    expect = "set it to postgresql://USER:PASSWORD@HOST:PORT/DATABASE"
    try:
        parts = urlsplit(value)
        _ = parts.port  # raises ValueError on a non-numeric port
    except ValueError:
        problems.append(f"DATABASE_URL is malformed: {expect}")
        return ""
    if parts.scheme not in ("postgresql", "postgres"):
        problems.append(f"DATABASE_URL must use the postgresql:// scheme: {expect}")
    elif not parts.hostname:
        problems.append(f"DATABASE_URL has no host: {expect}")
    elif not unquote(parts.path.lstrip("/")):
        problems.append(f"DATABASE_URL has no database name: {expect}")
    return _redacted(parts)


def _check_redis_url(value: str, problems: list[str]) -> str:
    expect = "set it to redis://[:PASSWORD@]HOST:PORT/DB (DB a number, default 0)"
    try:
        parts = urlsplit(value)
        _ = parts.port
    except ValueError:
        problems.append(f"REDIS_URL is malformed: {expect}")
        return ""
    if parts.scheme not in ("redis", "rediss"):
        problems.append(f"REDIS_URL must use the redis:// or rediss:// scheme: {expect}")
    elif not parts.hostname:
        problems.append(f"REDIS_URL has no host: {expect}")
    elif parts.path not in ("", "/") and not re.fullmatch(r"/\d{1,2}", parts.path):
        problems.append(f"REDIS_URL database must be a number: {expect}")
    return _redacted(parts)


def _secret(
    env: Mapping[str, str], name: str, problems: list[str], alias: str | None = None
) -> Secret:
    value = env.get(name, "")
    used = name
    if alias and not value:
        value = env.get(alias, "")
        used = alias
    elif alias and env.get(alias) and env[alias] != value:
        problems.append(
            f"{name} and {alias} are both set and differ: set only {name} (the alias is "
            "accepted for compatibility with the old server)"
        )
    hint = f"set it to a random string of at least {MIN_SECRET_LENGTH} characters"
    if not value:
        also = f" ({alias} is accepted as an alias)" if alias else ""
        problems.append(f"{name} is missing: {hint}{also}")
    elif len(value) < MIN_SECRET_LENGTH:
        problems.append(f"{used} is too short: {hint}")
    return Secret(value)


def _integer(
    env: Mapping[str, str], name: str, default: int, low: int, high: int, problems: list[str]
) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        problems.append(f"{name} must be a whole number between {low} and {high}")
        return default
    if not low <= value <= high:
        problems.append(f"{name} must be between {low} and {high}")
        return default
    return value


def _seconds(
    env: Mapping[str, str], name: str, default: float, low: float, high: float, problems: list[str]
) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        problems.append(f"{name} must be a number of seconds between {low:g} and {high:g}")
        return default
    if not low <= value <= high:
        problems.append(f"{name} must be a number of seconds between {low:g} and {high:g}")
        return default
    return value


def _origins(raw: str, problems: list[str]) -> tuple[str, ...]:
    # Scheme and host are case-insensitive; compare lower-cased on both sides.
    origins = tuple(o.strip().rstrip("/").lower() for o in raw.split(",") if o.strip())
    for origin in origins:
        parts = urlsplit(origin)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.path:
            problems.append(
                "WSNOTIFY_ALLOWED_ORIGINS must be a comma-separated list of origins like "
                "https://app.example.com (scheme and host, no path); leave it empty to allow any"
            )
            return ()
    return origins


_CLAIM_NAME = re.compile(r"[A-Za-z0-9_:\-]+")
# Claims the verifier itself interprets: a user id there would be checked as a time or audience.
_RESERVED_CLAIMS = ("exp", "nbf", "iat", "aud", "iss", "jti")


def _user_claim(raw: str, problems: list[str]) -> tuple[str, ...]:
    path = tuple(raw.split(".")) if raw else ("sub",)
    if len(path) > 5 or not all(_CLAIM_NAME.fullmatch(name) for name in path):
        problems.append(
            "JWT_USER_CLAIM must be a claim name or a dotted path of up to 5 names "
            "(letters, digits, _ : -), e.g. sub, id or user.id"
        )
        return ("sub",)
    if path[0] in _RESERVED_CLAIMS and len(path) == 1:
        problems.append(
            f"JWT_USER_CLAIM must not be one of {', '.join(_RESERVED_CLAIMS)}: "
            "those are checked as times, audience or issuer"
        )
        return ("sub",)
    return path


def load_config(env: Mapping[str, str]) -> Config:
    """Validate ``env`` (normally ``os.environ``) into a :class:`Config` or raise ConfigError."""
    problems: list[str] = []

    database_url = env.get("DATABASE_URL", "")
    if not database_url:
        problems.append(
            "DATABASE_URL is missing: set it to postgresql://USER:PASSWORD@HOST:PORT/DATABASE"
        )
        database_display = ""
    else:
        database_display = _check_database_url(database_url, problems)

    redis_url = env.get("REDIS_URL", "")
    if not redis_url:
        problems.append("REDIS_URL is missing: set it to redis://[:PASSWORD@]HOST:PORT/DB")
        redis_display = ""
    else:
        redis_display = _check_redis_url(redis_url, problems)

    jwt_secret = _secret(env, "JWT_SECRET", problems, alias="NEXTAUTH_SECRET")
    publish_token = _secret(env, "PUBLISH_TOKEN", problems)

    host = env.get("WSNOTIFY_HOST", "").strip() or "127.0.0.1"
    if not re.fullmatch(r"[A-Za-z0-9.:\-\[\]]+", host):
        problems.append("WSNOTIFY_HOST must be an IP address or host name, e.g. 127.0.0.1")

    log_level = env.get("WSNOTIFY_LOG_LEVEL", "").strip().lower() or "info"
    if log_level not in LOG_LEVELS:
        problems.append(f"WSNOTIFY_LOG_LEVEL must be one of: {', '.join(LOG_LEVELS)}")
        log_level = "info"

    watchdog_usec: int | None = None
    if env.get("WATCHDOG_USEC"):
        # Only honoured when meant for this process (systemd sets WATCHDOG_PID alongside).
        pid = env.get("WATCHDOG_PID", "")
        watchdog_raw = env["WATCHDOG_USEC"]
        if watchdog_raw.isdigit() and int(watchdog_raw) > 0:
            watchdog_usec = int(watchdog_raw)
            if pid and pid.isdigit() and int(pid) != os.getpid():
                watchdog_usec = None
        else:
            problems.append("WATCHDOG_USEC must be a positive number of microseconds")

    # sd_listen_fds(3): LISTEN_FDS sockets from fd 3 on, meant for us only if LISTEN_PID is our pid
    # (a child would otherwise take its parent's sockets).
    listen_fd: int | None = None
    if env.get("LISTEN_FDS"):
        fds, pid = env["LISTEN_FDS"], env.get("LISTEN_PID", "")
        if fds != "1":
            problems.append("LISTEN_FDS must be 1: wsnotify.socket passes one listening socket")
        elif pid.isdigit() and int(pid) == os.getpid():
            listen_fd = 3

    config = Config(
        database_url=Secret(database_url),
        redis_url=Secret(redis_url),
        jwt_secret=jwt_secret,
        publish_token=publish_token,
        host=host,
        port=_integer(env, "WSNOTIFY_PORT", 3002, 1, 65535, problems),
        allowed_origins=_origins(env.get("WSNOTIFY_ALLOWED_ORIGINS", ""), problems),
        max_connections_per_user=_integer(
            env, "WSNOTIFY_MAX_CONNECTIONS_PER_USER", 10, 1, 100_000, problems
        ),
        max_connections=_integer(env, "WSNOTIFY_MAX_CONNECTIONS", 0, 0, 10_000_000, problems),
        send_buffer_limit=_integer(
            env, "WSNOTIFY_SEND_BUFFER_LIMIT", 1_048_576, 1024, 1 << 30, problems
        ),
        recovery_limit=_integer(env, "WSNOTIFY_RECOVERY_LIMIT", 1000, 1, 100_000, problems),
        ping_interval=_seconds(env, "WSNOTIFY_PING_INTERVAL", 25.0, 1.0, 3600.0, problems),
        auth_timeout=_seconds(env, "WSNOTIFY_AUTH_TIMEOUT", 5.0, 0.1, 300.0, problems),
        jwt_audience=env.get("JWT_AUDIENCE", "").strip() or None,
        jwt_issuer=env.get("JWT_ISSUER", "").strip() or None,
        jwt_leeway=_seconds(env, "JWT_LEEWAY", 30.0, 0.0, 3600.0, problems),
        jwt_user_claim=_user_claim(env.get("JWT_USER_CLAIM", "").strip(), problems),
        log_level=log_level,
        notify_socket=env.get("NOTIFY_SOCKET") or None,
        watchdog_usec=watchdog_usec,
        listen_fd=listen_fd,
        database_display=database_display,
        redis_display=redis_display,
    )
    if problems:
        raise ConfigError(problems)
    return config


def scrub(exc: BaseException, config: Config) -> str:
    """One line describing ``exc`` for logs, with every configured secret value masked.

    Driver errors are not supposed to echo credentials; this makes sure of it.
    """
    text = (str(exc) or type(exc).__name__).splitlines()[0][:300].rstrip(". ")
    for secret in (config.database_url, config.redis_url, config.jwt_secret, config.publish_token):
        value = secret.reveal()
        if value:
            text = text.replace(value, "***")
    return text
