"""CLI commands against real backends: migrate (idempotent, concurrent), publish, token."""

from __future__ import annotations

import subprocess
from pathlib import Path

from backends import free_port, start_postgres
from wsnotify_harness import base_env, get_json, make_token, wsnotify_cmd


def test_concurrent_migrations_apply_once_then_report_up_to_date(workdir, redis):
    pg = start_postgres(Path(workdir) / "pg-migrate", free_port())
    env = base_env(pg.url, redis.url)
    try:
        runs = [
            subprocess.Popen(
                wsnotify_cmd("migrate"),
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(3)
        ]
        outputs = [run.communicate(timeout=60) for run in runs]
        assert [run.returncode for run in runs] == [0, 0, 0], outputs
        stdout = [out for out, _ in outputs]
        assert sum("applied migration 1:" in out for out in stdout) == 1
        assert sum(out.strip() == "schema up to date (version 1)" for out in stdout) == 2
        again = subprocess.run(wsnotify_cmd("migrate"), env=env, capture_output=True, text=True)
        assert (again.returncode, again.stdout.strip()) == (0, "schema up to date (version 1)")
    finally:
        pg.stop()


def test_migrate_reports_an_unreachable_database(redis):
    env = base_env(f"postgresql://u:secret-pw-xyz@127.0.0.1:{free_port()}/db", redis.url)
    result = subprocess.run(wsnotify_cmd("migrate"), env=env, capture_output=True, text=True)
    assert result.returncode == 69
    assert result.stderr.startswith("wsnotify: migration failed on postgres at postgresql://")
    assert "secret-pw-xyz" not in result.stderr + result.stdout


def test_publish_command_persists_and_delivers_through_the_same_path(env, service):
    result = subprocess.run(
        wsnotify_cmd("publish", "--user", "cli-user", "--title", "from cli", "--data", '{"a":1}'),
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    ident = int(result.stdout.strip())
    status, body = get_json(
        service.base, "/api/user/notifications?limit=100", make_token("cli-user")
    )
    assert status == 200
    mine = [n for n in body["notifications"] if n["id"] == ident]
    assert mine and mine[0]["title"] == "from cli" and mine[0]["data"] == {"a": 1}

    broadcast = subprocess.run(
        wsnotify_cmd("publish", "--broadcast", "--title", "all"), env=env, capture_output=True,
        text=True,
    )  # fmt: skip
    assert broadcast.returncode == 0 and int(broadcast.stdout) > ident


def test_publish_command_rejects_bad_input(env):
    for args in (["--user", "u", "--title", "t", "--data", "[1]"], ["--user", "u", "--title", ""]):
        result = subprocess.run(
            wsnotify_cmd("publish", *args), env=env, capture_output=True, text=True
        )
        assert result.returncode == 2 and result.stderr.startswith("wsnotify: ")


def test_token_ttl_bounds(env):
    result = subprocess.run(
        wsnotify_cmd("token", "--user", "u", "--ttl", "0"), env=env, capture_output=True, text=True
    )
    assert result.returncode == 2 and "--ttl" in result.stderr
