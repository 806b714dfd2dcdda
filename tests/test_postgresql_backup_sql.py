"""The postgresql role's backup/restore pieces against a real PostgreSQL on this machine: the
"does the database hold data" query (files/nonempty-tables.sql) and pg_restore with the role's
own flags (tasks/restore.yml), whose single transaction must leave the database as it was when
a dump breaks half-way."""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
ROLE = ROOT / "roles/postgresql"
sys.path.insert(0, str(ROOT / "service/tests"))

from backends import PG_BIN, _as_postgres, free_port, start_postgres  # noqa: E402


@pytest.fixture(scope="module")
def pg():
    server = start_postgres(tempfile.mkdtemp(prefix="wsnotify-pg-"), free_port())
    yield server
    server.stop()


def client(pg, tool: str, *args: str, stdin: str | bytes | None = None, binary: bool = False):
    """A PostgreSQL client tool as postgres over the cluster's socket; its stdout."""
    proc = subprocess.run(
        [
            *_as_postgres(),
            str(PG_BIN / tool),
            *("-h", str(pg.dir), "-p", str(pg.port)),
            *("-U", "postgres"),
            *args,
        ],
        input=stdin,
        capture_output=True,
        text=not binary,
        timeout=60,
        check=True,
        cwd="/",
    )
    return proc.stdout


def nonempty(pg) -> str:
    role_vars = yaml.safe_load((ROLE / "vars/main.yml").read_text())
    ignore = ",".join(role_vars["__postgresql_bookkeeping_tables"])
    sql = (ROLE / "files/nonempty-tables.sql").read_text()
    out = client(pg, "psql", "-d", pg.database, "-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1",
                 "-v", f"ignore={ignore}", stdin=sql)  # fmt: skip
    return out.strip()


def test_only_tables_with_rows_are_named_and_bookkeeping_does_not_count(pg):
    assert nonempty(pg) == ""  # a new database
    client(pg, "psql", "-d", pg.database, "-v", "ON_ERROR_STOP=1", stdin="""
        CREATE TABLE schema_migrations (version int);
        INSERT INTO schema_migrations VALUES (1);
        CREATE TABLE notifications (id int);
        CREATE TABLE "Odd name" (id int);
        CREATE SCHEMA other;
        CREATE TABLE other.t (id int);
    """)  # fmt: skip
    assert nonempty(pg) == ""  # migrated but empty: a restore may go ahead
    client(pg, "psql", "-d", pg.database, "-v", "ON_ERROR_STOP=1",
           stdin="""INSERT INTO notifications VALUES (1), (2); INSERT INTO "Odd name" VALUES (1);
                    INSERT INTO other.t VALUES (1);""")  # fmt: skip
    assert nonempty(pg) == "Odd name (1), notifications (2), t (1)"


def restore_flags() -> list[str]:
    tasks = yaml.safe_load((ROLE / "tasks/restore.yml").read_text())
    block = next(t for t in tasks if "block" in t)["block"]
    argv = next(t for t in block if "pg_restore" in str(t))["ansible.builtin.command"]["argv"]
    return re.findall(r"'(--(?:clean|if-exists|single-transaction|exit-on-error))'", argv)


def dump(pg, database: str) -> bytes:
    return client(pg, "pg_dump", "--format=custom", database, binary=True)


def rows(pg, database: str) -> list[str]:
    return client(pg, "psql", "-d", database, "-tAc", "SELECT count(*) FROM a").split()


def test_a_dump_that_breaks_half_way_leaves_the_database_as_it_was(pg):
    assert restore_flags() == ["--clean", "--if-exists", "--single-transaction", "--exit-on-error"]
    client(pg, "createdb", "source")
    client(pg, "psql", "-d", "source", "-v", "ON_ERROR_STOP=1", stdin="""
        CREATE TABLE a (id int PRIMARY KEY, t text);
        INSERT INTO a SELECT i, md5(i::text) FROM generate_series(1, 20000) i;
    """)  # fmt: skip
    good = dump(pg, "source")
    client(pg, "createdb", "target")
    client(pg, "psql", "-d", "target", "-v", "ON_ERROR_STOP=1",
           stdin="CREATE TABLE a (id int); INSERT INTO a VALUES (42);")  # fmt: skip
    # Cut inside a's data: the table has been dropped and re-created when reading fails.
    with pytest.raises(subprocess.CalledProcessError):
        client(
            pg,
            "pg_restore",
            "-d",
            "target",
            *restore_flags(),
            stdin=good[: len(good) * 2 // 3],
            binary=True,
        )
    assert rows(pg, "target") == ["1"]  # the old table and its one row, untouched
    client(pg, "pg_restore", "-d", "target", *restore_flags(), stdin=good, binary=True)
    assert rows(pg, "target") == ["20000"]
