"""The service's data across backup, restore and a rebuild of the host, on the deployed container.

Notifications are published (per user and broadcast) and some read; a backup is taken; restore's
refusals change nothing; the container is destroyed and a bare one of the same name takes its
place; playbooks/rebuild.yml (the same inventory) deploys and restores the newest backup; the API
then answers exactly as before, to tokens minted before; an explicit overwrite restores over new
data. Tests run in file order and share the state of the module."""

import hashlib
import json
import os
import subprocess
import time

import pytest
from conftest import (
    BACKUPS,
    HOST,
    INVENTORY,
    PLATFORM,
    api,
    main_pid,
    mint_token,
    playbook,
    publish,
    report,
    sql,
    token,
)

testinfra_hosts = [f"podman://{HOST}"]
USERS = ("alice", "bob", "carol")  # carol has nothing of her own: broadcasts only


def snapshot(tokens: dict[str, str]) -> dict:
    """What each user sees through the API: everything, and the unread part."""
    paths = ("/api/user/notifications?limit=100", "/api/user/notifications?limit=100&unread=true")
    answers = api(*({"method": "GET", "path": p, "token": tokens[u]} for u in USERS for p in paths))
    assert all(a["status"] == 200 for a in answers), answers
    bodies = iter(a["body"]["notifications"] for a in answers)
    return {u: {"all": next(bodies), "unread": next(bodies)} for u in USERS}


def checksum(value) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()


# Every deploy's checks publish to (and read as) their own probe user, verify-probe
# (roles/wsnotify/tasks/checks.yml), after a restore too, and the self-check timer does the same
# every 30 s as selfcheck-probe (module_utils/ws_selfcheck.py): the comparisons are about everyone
# else's. (Without the second, the first CI of the merged stack saw 45, 47 and 49 rows.)


def table_state() -> str:
    """Row counts and a digest of every row of the service's tables (the probes' excepted)."""
    return sql(
        "CREATE TEMP VIEW n AS SELECT * FROM notifications"
        " WHERE user_id IS NULL OR user_id NOT IN ('verify-probe', 'selfcheck-probe');"
        "CREATE TEMP VIEW r AS SELECT * FROM notification_reads"
        " WHERE user_id NOT IN ('verify-probe', 'selfcheck-probe');"
        "SELECT (SELECT count(*) FROM n) || ' notifications, '"
        " || (SELECT count(*) FROM r) || ' reads, md5 '"
        " || md5((SELECT coalesce(string_agg(n::text, '|' ORDER BY id), '') FROM n)"
        " || (SELECT coalesce(string_agg(r::text, '|' ORDER BY user_id, notification_id), '')"
        "     FROM r))"
    )


def dumps() -> list:
    return sorted(BACKUPS.glob("*.dump"))


@pytest.fixture(scope="module")
def state() -> dict:
    """Published and read once: alice 3 (1 read), bob 2 (all read), 2 broadcasts (alice and bob
    read one each, carol none). Tokens minted now, used before and after the rebuild."""
    tokens = {u: token(u) for u in USERS}
    ids = [publish(user_id="alice", title=f"alice {i}", data={"n": i}) for i in range(3)]
    ids += [publish(user_id="bob", title=f"bob {i}", body="b") for i in range(2)]
    ids += [publish(broadcast=True, title=f"everyone {i}") for i in range(2)]
    reads = api(
        {
            "method": "POST",
            "path": "/api/user/notifications/read",
            "token": tokens["alice"],
            "body": {"ids": [ids[0], ids[5]]},
        },
        {
            "method": "POST",
            "path": "/api/user/notifications/read",
            "token": tokens["bob"],
            "body": {"ids": [ids[3], ids[4], ids[6]]},
        },
    )
    assert [r["body"]["updated"] for r in reads] == [2, 3], reads
    seen = snapshot(tokens)
    assert [len(seen[u]["all"]) for u in USERS] == [5, 4, 2], seen
    assert [len(seen[u]["unread"]) for u in USERS] == [3, 1, 2], seen
    return {"tokens": tokens, "ids": ids, "seen": seen, "tables": table_state()}


def test_backup_writes_a_dump_and_its_checksum_and_keeps_the_newest(state):
    for _ in range(3):
        run = playbook("backup.yml", "-e", "postgresql_backup_keep=2")
        assert run.rc == 0, run
    assert len(dumps()) == 2, dumps()  # the oldest of three went, with its checksum
    assert sorted(BACKUPS.glob("*.sha256")) == [d.with_name(d.name + ".sha256") for d in dumps()]
    newest = dumps()[-1]
    check = subprocess.run(
        ["sha256sum", "-c", newest.name + ".sha256"],
        cwd=BACKUPS,
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.returncode == 0 and check.stdout.strip() == f"{newest.name}: OK", check
    assert oct(newest.stat().st_mode & 0o777) == "0o600"
    # A custom-format archive (pg_restore's), holding both tables' data.
    assert newest.read_bytes()[:5] == b"PGDMP"
    listing = subprocess.run(
        ["podman", "exec", "-i", HOST, "pg_restore", "--list"],
        input=newest.read_bytes(),
        capture_output=True,
        check=True,
    ).stdout
    assert b"TABLE DATA public notifications" in listing
    assert b"TABLE DATA public notification_reads" in listing
    state["dump"] = newest
    recorded = (BACKUPS / (newest.name + ".sha256")).read_text().split()[0]
    report(f"backup: {newest.name}, {newest.stat().st_size} bytes, sha256 {recorded}")


def test_restore_refuses_a_database_holding_data_and_stops_nothing(state):
    pid = main_pid()
    run = playbook("restore.yml")
    assert run.rc != 0, run
    said = " ".join(run.out.split())
    assert "Refusing to restore" in said, run
    rows = sql(
        "SELECT (SELECT count(*) FROM notification_reads), (SELECT count(*) FROM notifications)"
    ).split("|")
    assert f"is not empty (notification_reads ({rows[0]}), notifications ({rows[1]})" in said, run
    assert "-e postgresql_restore_overwrite=true. Nothing was changed." in said, run
    assert main_pid() == pid and table_state() == state["tables"]
    report(
        "non-empty database: "
        + said[said.index("Refusing") : said.index("Nothing was changed.") + 20]
    )


def test_restore_refuses_a_damaged_dump(state, tmp_path):
    damaged = tmp_path / "damaged.dump"
    data = bytearray(state["dump"].read_bytes())
    data[len(data) // 2] ^= 0xFF
    damaged.write_bytes(bytes(data))
    (tmp_path / "damaged.dump.sha256").write_text(
        (state["dump"].parent / (state["dump"].name + ".sha256")).read_text()
    )
    run = playbook(
        "restore.yml",
        "-e",
        f"postgresql_restore_from={damaged}",
        "-e",
        "postgresql_restore_overwrite=true",
    )
    assert run.rc != 0, run
    said = " ".join(run.out.split())
    assert f"The dump {damaged} is damaged: its SHA-256 is" in said, run
    assert "Nothing was changed." in said, run
    assert table_state() == state["tables"]


def test_rebuild_from_a_bare_host_gives_back_every_notification(state):
    # The host is lost: its container goes, a bare one from the same image takes its name.
    subprocess.run(
        ["podman", "rm", "--force", "--time", "5", HOST], check=True, capture_output=True
    )
    volumes = [os.path.expandvars(v) for v in PLATFORM["volumes"]]
    subprocess.run(
        ["podman", "run", "--detach", "--name", HOST, "--hostname", HOST, "--systemd=always"]
        + [arg for v in volumes for arg in ("--volume", v)]
        + [os.path.expandvars(PLATFORM["image"]), PLATFORM["command"]],
        check=True,
        capture_output=True,
    )
    bare = subprocess.run(["podman", "exec", HOST, "test", "-e", "/opt/wsnotify"], check=False)
    assert bare.returncode == 1  # nothing of the old host is left
    start = time.monotonic()
    run = playbook("rebuild.yml")
    elapsed = time.monotonic() - start
    assert run.rc == 0, run
    tables = table_state()
    seen = snapshot(state["tokens"])  # the tokens minted before the host was lost
    assert tables == state["tables"]
    assert seen == state["seen"]
    report(f"rebuild (playbooks/rebuild.yml on a bare container): {elapsed:.0f} s")
    report(f"database before: {state['tables']}")
    report(f"database after:  {tables}")
    report(
        f"API before: {sum(len(v['all']) for v in state['seen'].values())} rows seen by "
        f"{len(USERS)} users, {sum(len(v['unread']) for v in state['seen'].values())} unread, "
        f"sha256 {checksum(state['seen'])}"
    )
    report(
        f"API after:  {sum(len(v['all']) for v in seen.values())} rows seen by "
        f"{len(USERS)} users, {sum(len(v['unread']) for v in seen.values())} unread, "
        f"sha256 {checksum(seen)}"
    )


def test_a_client_resumes_after_its_last_id_and_new_ids_follow_the_old_ones(state):
    ids, tokens = state["ids"], state["tokens"]
    (after,) = api(
        {
            "method": "GET",
            "path": f"/api/user/notifications?after_id={ids[1]}",
            "token": tokens["alice"],
        }
    )
    assert [n["id"] for n in after["body"]["notifications"]] == [ids[2], ids[5], ids[6]], after
    new = publish(user_id="alice", title="after the rebuild")
    assert new > max(ids)  # the identity sequence came back with the data
    (after,) = api(
        {
            "method": "GET",
            "path": f"/api/user/notifications?after_id={ids[6]}",
            "token": tokens["alice"],
        }
    )
    assert [n["id"] for n in after["body"]["notifications"]] == [new], after
    state["new"] = new


def test_restore_with_overwrite_replaces_newer_data(state):
    run = playbook("restore.yml", "-e", "postgresql_restore_overwrite=true")
    assert run.rc == 0, run
    assert table_state() == state["tables"]  # the notification published since is gone
    assert snapshot(state["tokens"]) == state["seen"]


def test_the_inventory_secrets_were_what_made_old_tokens_valid(state):
    # A token signed with another secret is refused by the same API: validity is not a default.
    (r,) = api(
        {"method": "GET", "path": "/api/user/notifications", "token": mint_token("x" * 40, "alice")}
    )
    assert r["status"] == 401, r
    assert INVENTORY["wsnotify_jwt_secret"] != "x" * 40
