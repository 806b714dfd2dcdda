"""PostgreSQL persistence (asyncpg) and the versioned schema.

Read state is per (user, notification) in ``notification_reads``, because a broadcast is one
row in ``notifications`` but each user reads it separately.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

from .protocol import ListQuery, Notification, PublishRequest

_MIGRATION_LOCK = 0x77736E6F  # advisory lock key ("wsno"): concurrent `migrate` runs serialize


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "notifications and per-user read state",
        """
        CREATE TABLE notifications (
            id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            user_id     TEXT,
            title       TEXT NOT NULL,
            body        TEXT NOT NULL DEFAULT '',
            data        JSONB NOT NULL DEFAULT '{}'::jsonb,
            created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
        );
        COMMENT ON COLUMN notifications.user_id IS 'NULL = broadcast to every user';
        CREATE INDEX notifications_user_id_id ON notifications (user_id, id);
        CREATE INDEX notifications_broadcast_id ON notifications (id) WHERE user_id IS NULL;
        CREATE TABLE notification_reads (
            user_id         TEXT NOT NULL,
            notification_id BIGINT NOT NULL REFERENCES notifications (id) ON DELETE CASCADE,
            read_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
            PRIMARY KEY (user_id, notification_id)
        );
        """,
    ),
)
SCHEMA_VERSION = MIGRATIONS[-1].version


class SchemaError(Exception):
    """The database schema does not match this release; the message says what to run."""


async def migrate(dsn: str) -> list[Migration]:
    """Apply the migrations not applied yet, each in its own transaction; return them.

    A session advisory lock serializes concurrent runs (two hosts deploying at once), including
    the creation of ``schema_migrations`` itself.
    """
    conn = await asyncpg.connect(dsn, timeout=10)
    applied: list[Migration] = []
    try:
        await conn.execute("SELECT pg_advisory_lock($1)", _MIGRATION_LOCK)
        await conn.execute(
            """CREATE TABLE IF NOT EXISTS schema_migrations (
                   version    INTEGER PRIMARY KEY,
                   name       TEXT NOT NULL,
                   applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
               )"""
        )
        done = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
        for migration in MIGRATIONS:
            if migration.version in done:
                continue
            async with conn.transaction():
                await conn.execute(migration.sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                    migration.version,
                    migration.name,
                )
            applied.append(migration)
    finally:
        await conn.close()  # also releases the advisory lock
    return applied


async def _init_connection(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


# Static statements only (asyncpg prepares and caches them); every value is a parameter.
_INSERT = """
    INSERT INTO notifications (user_id, title, body, data) VALUES ($1, $2, $3, $4)
    RETURNING id, user_id, title, body, data, created_at"""
_LIST = """
    SELECT n.id, n.user_id, n.title, n.body, n.data, n.created_at
    FROM notifications n
    LEFT JOIN notification_reads r ON r.notification_id = n.id AND r.user_id = $1
    WHERE (n.user_id = $1 OR n.user_id IS NULL) AND n.id > $2
      AND (NOT $4::boolean OR r.notification_id IS NULL)
    ORDER BY n.id LIMIT $3"""
# $2 NULL = everything visible to the user; otherwise only those ids (if visible).
_MARK_READ = """
    INSERT INTO notification_reads (user_id, notification_id)
    SELECT $1, n.id FROM notifications n
    WHERE (n.user_id = $1 OR n.user_id IS NULL) AND ($2::bigint[] IS NULL OR n.id = ANY($2))
    ON CONFLICT DO NOTHING"""


def _row(record: asyncpg.Record) -> Notification:
    return Notification(
        id=record["id"],
        user_id=record["user_id"],
        title=record["title"],
        body=record["body"],
        data=record["data"],
        created_at=record["created_at"],
    )


class Store:
    """Queries the service runs, over a small pool."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    @classmethod
    async def connect(cls, dsn: str, max_size: int = 10) -> Store:
        pool = await asyncpg.create_pool(
            dsn,
            min_size=1,
            max_size=max_size,
            init=_init_connection,
            timeout=5,
            command_timeout=10,
        )
        return cls(pool)

    async def close(self) -> None:
        await self._pool.close()

    async def ping(self) -> None:
        async with self._pool.acquire(timeout=2) as conn:
            await conn.fetchval("SELECT 1", timeout=2)

    async def check_schema(self) -> None:
        """Refuse to serve against a schema older (or newer) than this release expects."""
        async with self._pool.acquire() as conn:
            exists = await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")
            version = (
                await conn.fetchval("SELECT max(version) FROM schema_migrations")
                if exists
                else None
            )
        if version != SCHEMA_VERSION:
            raise SchemaError(
                f"database schema is at version {version or 0}, this release needs "
                f"{SCHEMA_VERSION}: run `wsnotify migrate` with the same environment"
            )

    async def insert(self, request: PublishRequest) -> Notification:
        record = await self._pool.fetchrow(
            _INSERT, request.user_id, request.title, request.body, request.data
        )
        return _row(record)

    async def list_for(self, user_id: str, query: ListQuery) -> list[Notification]:
        """Notifications visible to ``user_id`` (own and broadcast), oldest first after a cursor."""
        records = await self._pool.fetch(_LIST, user_id, query.after_id, query.limit, query.unread)
        return [_row(r) for r in records]

    async def newest_id(self) -> int:
        """The highest id stored (0 when empty): a resuming client's cursor cannot be above it."""
        return await self._pool.fetchval("SELECT coalesce(max(id), 0) FROM notifications")

    async def mark_read(self, user_id: str, ids: Sequence[int] | None) -> int:
        """Mark ``ids`` (or, with None, everything visible) read; returns newly marked rows."""
        if ids is not None and not ids:
            return 0
        result = await self._pool.execute(_MARK_READ, user_id, None if ids is None else list(ids))
        return int(result.rsplit(" ", 1)[-1])
