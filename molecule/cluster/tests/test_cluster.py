"""The production shape, converged: a proxy, two WS nodes and a data node, wired by their private
addresses only. Each service listens where the other hosts reach it, the WS nodes use the data
node's Redis and PostgreSQL, nginx balances both nodes, and verify.yml proves each node directly,
through nginx, and across nodes (a client on one node receives what the other publishes)."""

from __future__ import annotations

import json
import re
import time

import pytest
import yaml
from conftest import ADDRESS, DATA, GROUPS, PROXY, ROOT, SCENARIO, WS1, WS2, host, playbook

PRODUCTION = ROOT / "inventories/production"


def listening(name: str, port: int) -> set[str]:
    """The addresses a host listens on for a TCP port."""
    out = host(name).check_output(f"ss -Hltn 'sport = :{port}'")
    return {line.split()[3].rsplit(":", 1)[0] for line in out.splitlines()}


def connected_to(name: str, address: str, port: int) -> int:
    """How many established TCP connections a host holds to address:port."""
    out = host(name).check_output(f"ss -Htn state established 'dst {address}:{port}'")
    return len(out.splitlines())


def test_the_scenario_has_the_production_inventorys_shape():
    production = yaml.safe_load((PRODUCTION / "hosts.yml").read_text())["all"]["children"]
    prod_groups = {group: list(body["hosts"]) for group, body in production.items()}
    # Same groups, same number of hosts in each, the same host serving redis and postgres.
    assert {g: len(h) for g, h in prod_groups.items()} == {g: len(h) for g, h in GROUPS.items()}
    assert prod_groups["redis"] == prod_groups["postgres"] and GROUPS["redis"] == GROUPS["postgres"]
    # Every host has a private address and nothing else of its own, like production's hosts.
    prod_hostvars = {}
    for body in production.values():
        for name, hostvars in body["hosts"].items():
            prod_hostvars.setdefault(name, {}).update(hostvars or {})
    assert {frozenset(v) for v in prod_hostvars.values()} == {frozenset({"stack_private_address"})}
    assert (
        set(SCENARIO["provisioner"]["inventory"]["host_vars"])
        == set(ADDRESS)
        == {p["name"] for p in SCENARIO["platforms"]}
    )
    assert all(set(v) == {"stack_private_address"} for v in
               SCENARIO["provisioner"]["inventory"]["host_vars"].values())  # fmt: skip
    # What production's group_vars/all sets, the scenario sets too (values may differ: names).
    prod_vars = yaml.safe_load((PRODUCTION / "group_vars/all/main.yml").read_text())
    assert set(prod_vars) <= set(SCENARIO["provisioner"]["inventory"]["group_vars"]["all"])


@pytest.mark.parametrize("name", [WS1, WS2])
def test_each_ws_node_listens_on_its_private_address(name):
    assert listening(name, 3002) == {ADDRESS[name]}
    assert host(name).service("wsnotify").is_running
    assert not host(name).exists("nginx") and not host(name).exists("psql")


def test_the_data_node_serves_redis_and_postgresql_on_its_private_address():
    assert listening(DATA, 6379) == {"127.0.0.1", ADDRESS[DATA]}
    assert listening(DATA, 5432) == {"127.0.0.1", ADDRESS[DATA]}
    assert not host(DATA).exists("nginx") and not host(DATA).exists("wsnotify")


@pytest.mark.parametrize("name", [WS1, WS2])
def test_each_ws_node_uses_the_data_nodes_redis_and_postgresql(name):
    assert connected_to(name, ADDRESS[DATA], 6379) >= 1
    assert connected_to(name, ADDRESS[DATA], 5432) >= 1
    assert connected_to(name, "127.0.0.1", 6379) == connected_to(name, "127.0.0.1", 5432) == 0


def test_nginx_balances_both_ws_nodes():
    site = host(PROXY).file("/etc/nginx/sites-enabled/wsnotify").content_string
    servers = re.findall(r"^\s*server\s+(\S+?);", site, re.M)
    assert servers == [f"{ADDRESS[WS1]}:3002", f"{ADDRESS[WS2]}:3002"], site
    assert not host(PROXY).exists("redis-cli") and not host(PROXY).service("wsnotify").is_running


def test_verify_checks_each_node_nginx_and_across_nodes_both_ways():
    run = playbook("verify.yml")
    assert run.rc == 0, run
    for name in (PROXY, WS1, WS2):
        recap = rf"{name}\s*:\s*ok=\d+\s+changed=0\s+unreachable=0\s+failed=0"
        assert re.search(recap, run.out), run
    for receiver, publisher in ((WS1, WS2), (WS2, WS1)):
        label = f"published on {ADDRESS[publisher]}:3002, received on {ADDRESS[receiver]}:3002"
        assert re.search(rf"ok: \[{receiver}\] => \(item={re.escape(label)}\)", run.out), run


def test_a_node_whose_peer_cannot_deliver_fails_verification_naming_it():
    """The cross-node check can fail: with ws2's service stopped, ws1's check of it fails."""
    h = host(WS2)
    # Its socket too: alone, a stopped service is started again by the socket's next client.
    h.check_output("systemctl stop wsnotify.socket wsnotify")
    try:
        run = playbook("verify.yml", "--limit", WS1)
    finally:
        h.check_output("systemctl start wsnotify.socket wsnotify")
    assert run.rc != 0, run
    assert f"published on {ADDRESS[WS2]}:3002, received on {ADDRESS[WS1]}:3002" in run.out, run
    assert re.search(rf"failed: \[{WS1}\]", run.out), run
    assert playbook("verify.yml").rc == 0


def selfcheck_state(name: str, after: float = 0.0) -> dict:
    """The host's last self-check run (its timer runs every 30 s), once it is newer than
    ``after`` (a time on the host)."""
    deadline = time.monotonic() + 75
    while True:
        out = host(name).run("cat /var/lib/wsnotify-selfcheck/last.json")
        state = json.loads(out.stdout) if out.rc == 0 else {}
        if state.get("time", 0) > after or time.monotonic() > deadline:
            return state
        time.sleep(2)


def test_the_proxy_checks_the_site_through_nginx_on_its_own_timer():
    """The proxy has no service, no EnvironmentFile and no wsnotify user: its self-check runs as
    a user of its own, with the token secrets in a root-only file, through nginx only."""
    proxy = host(PROXY)
    assert proxy.service("wsnotify-selfcheck.timer").is_running
    secrets = proxy.file("/etc/wsnotify-selfcheck/selfcheck.env")
    assert (secrets.user, secrets.group, secrets.mode) == ("root", "root", 0o600)
    unit = proxy.file("/etc/systemd/system/wsnotify-selfcheck.service").content_string
    assert "User=wsnotify-selfcheck" in unit and "--direct-url" not in unit, unit
    assert "molecule-jwt-secret" not in unit
    state = selfcheck_state(PROXY)
    assert set(state["checks"]) == {
        "nginx_site_linked",
        "nginx_refused",
        "nginx_welcome",
        "nginx_roundtrip",
    }, state
    assert state["ok"], state


def test_the_proxys_self_check_finds_the_site_unlinked():
    proxy = host(PROXY)
    since = float(proxy.check_output("date +%s.%N"))
    proxy.check_output("rm /etc/nginx/sites-enabled/wsnotify && systemctl reload nginx")
    try:
        state = selfcheck_state(PROXY, after=since)
    finally:
        proxy.check_output(
            "ln -s /etc/nginx/sites-available/wsnotify /etc/nginx/sites-enabled/wsnotify"
            " && systemctl reload nginx"
        )
    linked = state["checks"]["nginx_site_linked"]
    assert not linked["ok"], state
    assert linked["message"].startswith("/etc/nginx/sites-enabled/wsnotify is missing"), state


def test_status_shows_every_host_with_its_self_check():
    # A passing self-check run after the test before it relinked the site (its last run may
    # still be the failing one, and status reports that, rightly).
    since = float(host(PROXY).check_output("date +%s.%N"))
    assert selfcheck_state(PROXY, after=since)["ok"]
    run = playbook("status.yml")
    assert run.rc == 0, run
    for name in (PROXY, WS1, WS2):
        assert re.search(rf"ok: \[{name}\]", run.out), run
    # Each host's table has its self-check row: the proxy's too.
    assert len(re.findall(r"self-check\s+ok \(\d+ s ago\)", run.out)) == 3, run
