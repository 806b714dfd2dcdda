"""Changing redis_engine on a running host: the new engine takes the port, the old one is stopped
and disabled (it would hold the port); on Debian 12, which packages Redis only, asking for Valkey
fails before anything changes, saying what is packaged. Runs after test_redis.py (file order): it
changes the host."""

import os
import sys
from pathlib import Path

SCENARIO = Path(__file__).resolve().parents[1]
ROOT = SCENARIO.parents[3]
sys.path.insert(0, str(ROOT / "tests"))

from helpers.ansible_run import ansible_playbook  # noqa: E402

HOST = "molecule-redis-engine-redis"
testinfra_hosts = [f"podman://{HOST}"]
SUITE = os.environ.get("WSNOTIFY_SUITE", "trixie")


def converge(*args: str):
    inventory = os.path.dirname(os.environ["MOLECULE_INVENTORY_FILE"])
    return ansible_playbook("-i", inventory, "--limit", HOST, str(SCENARIO / "converge.yml"), *args)


def test_engine_change_moves_the_port_to_the_new_engine(host):
    run = converge("-e", "redis_engine=valkey")
    if SUITE == "bookworm":
        assert run.rc != 0, run
        assert "packages only redis: set redis_engine to auto or to one of them" in " ".join(
            run.out.split()
        ), run
        assert host.service("redis-server").is_running
        assert not host.package("valkey-server").is_installed
        return
    assert run.rc == 0, run
    assert host.service("valkey-server").is_running and host.service("valkey-server").is_enabled
    old = host.service("redis-server")
    assert not old.is_running and not old.is_enabled
    out = host.run("valkey-cli --no-auth-warning -a molecule-redis-password-0123456789 PING")
    assert out.stdout.strip() == "PONG", out.stdout + out.stderr
