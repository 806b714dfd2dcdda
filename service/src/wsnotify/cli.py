"""The ``wsnotify`` command: serve, check-config, migrate, token, publish, status.

Every subcommand validates the whole configuration first, so a command either runs against a
complete configuration or exits 78 saying what to fix.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence

from . import __version__, protocol
from .auth import JwtSettings, mint_token
from .config import EX_CONFIG, Config, ConfigError, load_config, scrub
from .logs import setup_logging

EX_UNAVAILABLE = 69  # sysexits.h: a backend needed by the command is unreachable


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wsnotify",
        description="WebSocket notification service. Configuration comes from the environment "
        "(see the README); nothing is read from files or flags.",
    )
    parser.add_argument("--version", action="version", version=f"wsnotify {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub.add_parser("serve", help="run the service (systemd Type=notify aware)")
    sub.add_parser("check-config", help="validate the environment; no network, no side effects")
    sub.add_parser("migrate", help="apply database migrations (idempotent)")
    token = sub.add_parser("token", help="print a signed JWT for a user (ops and tests)")
    token.add_argument("--user", required=True, help="user id, becomes the sub claim")
    token.add_argument(
        "--ttl", type=int, default=3600, help="lifetime in seconds (default 3600, max 31536000)"
    )
    publish = sub.add_parser("publish", help="store and deliver a notification; prints its id")
    target = publish.add_mutually_exclusive_group(required=True)
    target.add_argument("--user", help="recipient user id")
    target.add_argument("--broadcast", action="store_true", help="deliver to every user")
    publish.add_argument("--title", required=True)
    publish.add_argument("--body", default="")
    publish.add_argument("--data", default="{}", help="JSON object attached to the notification")
    status = sub.add_parser(
        "status",
        help="ask the running service (WSNOTIFY_HOST/PORT) for its health and counters; "
        "exit 1 naming what is wrong, 69 when nothing answers",
    )
    status.add_argument("--json", action="store_true", help="print the report as JSON")
    return parser


def _config() -> Config:
    try:
        return load_config(os.environ)
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"wsnotify: config error: {problem}", file=sys.stderr)
        sys.exit(EX_CONFIG)


def _fail(message: str, code: int) -> int:
    print(f"wsnotify: {message}", file=sys.stderr)
    return code


async def _migrate(config: Config) -> int:
    from .db import SCHEMA_VERSION, migrate

    try:
        applied = await migrate(config.database_url.reveal())
    except Exception as exc:
        return _fail(
            f"migration failed on postgres at {config.database_display}: {scrub(exc, config)}; "
            "check DATABASE_URL and that the server is running",
            EX_UNAVAILABLE,
        )
    for migration in applied:
        print(f"applied migration {migration.version}: {migration.name}")
    if not applied:
        print(f"schema up to date (version {SCHEMA_VERSION})")
    return 0


async def _publish(config: Config, request: protocol.PublishRequest) -> int:
    from .bus import Publisher
    from .db import Store
    from .metrics import Metrics
    from .service import StorageUnavailable, publish

    try:
        store = await Store.connect(config.database_url.reveal(), max_size=1)
    except Exception as exc:
        return _fail(
            f"cannot reach postgres at {config.database_display}: {scrub(exc, config)}",
            EX_UNAVAILABLE,
        )
    publisher = Publisher(config.redis_url.reveal())
    metrics = Metrics()
    try:
        notification, published = await publish(store, publisher, metrics, request)
    except StorageUnavailable as exc:
        return _fail(f"notification not stored: {exc}", EX_UNAVAILABLE)
    finally:
        await publisher.close()
        await store.close()
    print(notification.id)
    if not published:
        print(
            "wsnotify: stored but not published live (redis unreachable); clients catch up "
            "through the API after their resync",
            file=sys.stderr,
        )
    return 0


def _status(config: Config, as_json: bool) -> int:
    from . import status

    url = status.base_url(config.host, config.port)
    try:
        report = status.collect(url)
    except OSError as exc:
        return _fail(
            f"nothing answers on {url} ({getattr(exc, 'reason', exc)}): is the service running? "
            "see `systemctl status wsnotify wsnotify.socket` and `journalctl -u wsnotify -n 50`",
            EX_UNAVAILABLE,
        )
    print(json.dumps(report.as_dict(), indent=2) if as_json else status.render(report))
    for problem in report.problems:
        print(f"wsnotify: {problem}", file=sys.stderr)
    return status.EX_UNHEALTHY if report.problems else 0


def _run(coro: object) -> int:
    import uvloop

    return uvloop.run(coro)  # type: ignore[arg-type]


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    config = _config()
    setup_logging(config.log_level)

    if args.command == "check-config":
        print("config ok")
        return 0
    if args.command == "token":
        if not 1 <= args.ttl <= 31_536_000:
            return _fail("--ttl must be between 1 and 31536000 seconds", 2)
        try:
            user_id = protocol.parse_user_id(args.user)
        except protocol.ValidationError as exc:
            return _fail(f"--user: {exc}", 2)
        print(mint_token(user_id, args.ttl, JwtSettings.from_config(config)))
        return 0
    if args.command == "status":
        return _status(config, args.json)
    if args.command == "migrate":
        return _run(_migrate(config))
    if args.command == "publish":
        payload: dict[str, object] = {"title": args.title, "body": args.body}
        try:
            payload["data"] = json.loads(args.data)
        except ValueError:
            return _fail("--data must be a JSON object", 2)
        if args.broadcast:
            payload["broadcast"] = True
        else:
            payload["user_id"] = args.user
        try:
            request = protocol.parse_publish(json.dumps(payload).encode())
        except protocol.ValidationError as exc:
            return _fail(str(exc), 2)
        return _run(_publish(config, request))
    # serve
    from .app import serve

    return _run(serve(config))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
