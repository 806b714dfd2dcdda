"""Both modules through ansible-playbook against real servers on 127.0.0.1 (no proxy).

One playbook run holds every task (each run costs seconds); the tests then assert on the recorded
result of their task. Servers: a correct wsnotify stand-in, one answering 101 with a wrong
Sec-WebSocket-Accept, one whose port only opens after a delay, one that mangles deliveries,
and a port where nothing listens.
"""

from __future__ import annotations

import json

import pytest
from helpers.ansible_run import failed, ok, run_tasks, task
from helpers.moddocs import MODULES, always_returned, key_paths, returns
from helpers.ports import free_port

from module_utils.wsnotify_jwt import mint_token

ROUNDTRIPS = ("roundtrip jwt secret", "roundtrip token query", "roundtrip broadcast")


@pytest.fixture(scope="module")
def run(tmp_path_factory, test_secrets):
    """Start the servers, run the whole play once, yield (results, servers, tokens)."""
    from helpers.wsserver import WsNotifyTestServer

    def server(**options) -> WsNotifyTestServer:
        return WsNotifyTestServer(test_secrets.jwt_secret, test_secrets.publish_token, **options)

    good = server().start()
    wrong_accept = server(accept_mode="wrong").start()
    mangled = server(delivery="mangled").start()
    silent = server(delivery="none").start()
    # The slow server's port opens 2.5 s after the task before its check touches the good server:
    # the retried task really meets "connection refused" first, whatever the play's pace.
    slow = server(port=free_port())

    def trigger(_method: str, target: str) -> None:
        if "trigger-slow-start" in target and slow._thread is None:
            slow.start(delay=2.5)

    good.on_request = trigger
    closed_port = free_port()
    token = mint_token(test_secrets.jwt_secret, "42")
    bad_token = mint_token("some-other-secret-" + "x" * 32, "42")
    ws = f"ws://{good.base}/ws"
    pub = test_secrets.publish_token
    up = {"url": ws, "token": token, "expect_message_type": "welcome"}

    tasks: list[dict] = []

    def add(name: str, module: str, args: dict, **keywords) -> None:
        tasks.append(task(name, module, args, **keywords))

    add("upgrade bearer", "websocket_handshake", up)
    add("upgrade bearer check mode", "websocket_handshake", up, check_mode=True)
    add("upgrade query", "websocket_handshake", {**up, "token_location": "query"})
    add("upgrade message", "websocket_handshake", {**up, "token_location": "message"})
    add(
        "refused 4401",
        "websocket_handshake",
        {"url": ws, "expect": "refused", "expect_close_code": 4401},
    )
    add(
        "refused 4401 check mode",
        "websocket_handshake",
        {"url": ws, "expect": "refused", "expect_close_code": 4401},
        check_mode=True,
    )
    add(
        "refused default",
        "websocket_handshake",
        {"url": ws, "token": bad_token, "expect": "refused"},
    )
    add(
        "expected message missing",
        "websocket_handshake",
        {**up, "expect_message_type": "no-such-type", "timeout": 1},
    )
    add("upgrade with bad token", "websocket_handshake", {**up, "token": bad_token})
    add(
        "refused but accepted",
        "websocket_handshake",
        {"url": ws, "token": token, "expect": "refused", "expect_close_code": 4401, "timeout": 2},
    )
    add(
        "refused wrong status",
        "websocket_handshake",
        {"url": ws, "token": bad_token, "expect": "refused", "expect_status": 403},
    )
    add("wrong accept", "websocket_handshake", {**up, "url": f"ws://{wrong_accept.base}/ws"})
    add("closed port", "websocket_handshake", {"url": f"ws://127.0.0.1:{closed_port}/ws"})
    add(
        "closed port check mode",
        "websocket_handshake",
        {"url": f"ws://127.0.0.1:{closed_port}/ws"},
        check_mode=True,
    )
    add(
        "closed port with retries",
        "websocket_handshake",
        {
            "url": f"ws://127.0.0.1:{closed_port}/ws",
            "retries": 2,
            "delay": 0.1,
            "unit": "wsnotify-blue",
        },
    )
    add("unknown path", "websocket_handshake", {**up, "url": f"ws://{good.base}/nope"})
    add(
        "trigger slow start",
        "websocket_handshake",
        {**up, "url": ws + "?trigger-slow-start", "hold": 0},
    )
    add(
        "slow start with retries",
        "websocket_handshake",
        {**up, "url": f"ws://{slow.base}/ws", "retries": 80, "delay": 0.1},
    )
    add(
        "roundtrip jwt secret",
        "notification_roundtrip",
        {"url": ws, "user_id": "7", "jwt_secret": test_secrets.jwt_secret, "publish_token": pub},
    )
    add(
        "roundtrip token query",
        "notification_roundtrip",
        {"url": ws, "token": token, "token_location": "query", "publish_token": pub},
    )
    add(
        "roundtrip broadcast",
        "notification_roundtrip",
        {
            "url": ws,
            "token": token,
            "token_location": "message",
            "publish_token": pub,
            "broadcast": True,
        },
    )
    add(
        "roundtrip check mode",
        "notification_roundtrip",
        {"url": ws, "token": token, "publish_token": pub},
        check_mode=True,
    )
    add(
        "roundtrip mangled delivery",
        "notification_roundtrip",
        {"url": f"ws://{mangled.base}/ws", "token": token, "publish_token": pub, "timeout": 1},
    )
    add(
        "roundtrip nothing delivered",
        "notification_roundtrip",
        {"url": f"ws://{silent.base}/ws", "token": token, "publish_token": pub, "timeout": 1},
    )
    add(
        "roundtrip wrong publish token",
        "notification_roundtrip",
        {"url": ws, "token": token, "publish_token": "not-the-publish-token-" + "y" * 20},
    )
    add(
        "roundtrip wrong jwt secret",
        "notification_roundtrip",
        {"url": ws, "user_id": "7", "jwt_secret": "wrong-secret-" + "z" * 32, "publish_token": pub},
    )
    add(
        "roundtrip closed port",
        "notification_roundtrip",
        {"url": f"ws://127.0.0.1:{closed_port}/ws", "token": token, "publish_token": pub},
    )
    add("bad options", "websocket_handshake", {"url": ws, "expect_close_code": 4401})

    try:
        results = run_tasks(tasks, tmp_path_factory.mktemp("play-direct"))
        servers = {"good": good, "wrong_accept": wrong_accept, "silent": silent, "slow": slow}
        tokens = {"token": token, "bad_token": bad_token, "closed": closed_port}
        yield results, servers, tokens, tasks
    finally:
        for s in (good, wrong_accept, mangled, silent, slow):
            s.stop()


def test_upgrade_with_bearer_token_is_held_open_and_welcomed(run):
    r = ok(run, "upgrade bearer")
    assert r["outcome"] == "upgrade" and r["status"] == 101 and r["accept_valid"] is True
    assert r["messages"] == [{"type": "welcome", "user_id": "42"}]
    assert r["closed_by"] == "client" and r["close_code"] == 1000
    assert r["headers"]["upgrade"] == "websocket"
    assert r["tls"] is None and r["attempts"] == 1
    assert r["elapsed_ms"] >= 500  # hold: 0.5 s after the welcome


def test_check_mode_gives_the_same_result(run):
    normal, checked = ok(run, "upgrade bearer"), ok(run, "upgrade bearer check mode")
    for key in ("outcome", "status", "accept_valid", "messages", "closed_by", "close_code"):
        assert normal[key] == checked[key], key
    refused, refused_checked = ok(run, "refused 4401"), ok(run, "refused 4401 check mode")
    for key in ("outcome", "status", "close_code", "close_reason", "closed_by"):
        assert refused[key] == refused_checked[key], key
    closed, closed_checked = failed(run, "closed port"), failed(run, "closed port check mode")
    assert closed["hint"] == closed_checked["hint"]


def test_token_in_query_or_first_message(run):
    for name in ("upgrade query", "upgrade message"):
        r = ok(run, name)
        assert r["messages"] == [{"type": "welcome", "user_id": "42"}], name
    good = run[1]["good"]
    token = run[2]["token"]
    assert any(f"token={token}" in target for _m, target, _h in good.requests)
    assert "token=" not in ok(run, "upgrade query")["url"]


def test_unauthenticated_is_refused_with_4401_after_101(run):
    r = ok(run, "refused 4401")
    assert r["outcome"] == "refused" and r["status"] == 101
    assert (r["close_code"], r["close_reason"], r["closed_by"]) == (4401, "Unauthorized", "server")
    assert ok(run, "refused default")["close_code"] == 4401


def test_upgrade_with_a_bad_token_fails_with_the_auth_hint(run):
    r = failed(run, "upgrade with bad token")
    assert r["close_code"] == 4401 and r["outcome"] == "refused"
    assert "Unauthorized" in r["hint"] and "signed with another secret" in r["hint"]


def test_upgrade_waits_for_the_expected_message(run):
    r = failed(run, "expected message missing")
    assert r["outcome"] == "upgrade" and r["messages"] == [{"type": "welcome", "user_id": "42"}]
    assert "no 'no-such-type' message within 1.0s" in r["msg"]


def test_refused_expected_but_auth_not_enforced(run):
    r = failed(run, "refused but accepted")
    assert r["outcome"] == "upgrade"
    assert "authentication is not enforced" in r["msg"]
    assert r["messages"][0]["type"] == "welcome"


def test_refused_with_the_wrong_kind_of_refusal(run):
    r = failed(run, "refused wrong status")
    assert "expected the upgrade to be refused with HTTP 403, got HTTP 101" in r["msg"]
    assert "4401" in r["hint"]


def test_wrong_accept_means_the_handshake_was_rewritten(run):
    r = failed(run, "wrong accept")
    assert r["status"] == 101 and r["accept_valid"] is False and r["outcome"] == "error"
    assert "rewrote the handshake" in r["hint"]
    assert "Sec-WebSocket-Accept is" in r["msg"]


def test_closed_port_names_the_unit(run):
    port = run[2]["closed"]
    r = failed(run, "closed port")
    assert r["status"] is None and r["outcome"] == "error"
    assert f"nothing is listening on 127.0.0.1:{port}" in r["hint"]
    assert "systemctl status wsnotify" in r["hint"] and "journalctl -u wsnotify" in r["hint"]
    retried = failed(run, "closed port with retries")
    assert retried["attempts"] == 3
    assert "systemctl status wsnotify-blue" in retried["hint"]


def test_unknown_path_is_a_404_without_nginx(run):
    r = failed(run, "unknown path")
    assert r["status"] == 404 and r["outcome"] == "refused"
    assert "no route for this path" in r["hint"]
    assert r["body"] == "404: Not Found"


def test_retries_wait_for_a_service_that_is_still_starting(run):
    r = ok(run, "slow start with retries")
    assert r["attempts"] > 1
    assert r["messages"] == [{"type": "welcome", "user_id": "42"}]


def test_roundtrip_with_minted_token(run):
    r = ok(run, "roundtrip jwt secret")
    assert r["published"] is True and r["publish_status"] == 202
    assert r["user_id"] == "7"
    assert r["notification"]["data"]["marker"] == r["marker"]
    assert r["notification"]["user_id"] == "7"
    assert 0 < r["latency_ms"] < 5000
    assert r["notification_id"] == r["notification"]["id"]
    assert r["notification_id"] in run[1]["good"].acks  # acknowledged: not left unread


def test_roundtrip_with_given_token_and_broadcast(run):
    r = ok(run, "roundtrip token query")
    assert r["user_id"] == "42" and r["notification"]["user_id"] == "42"
    b = ok(run, "roundtrip broadcast")
    assert b["notification"]["user_id"] is None
    assert b["notification"]["data"]["marker"] == b["marker"]


def test_roundtrip_check_mode_publishes_nothing(run):
    r = ok(run, "roundtrip check mode")
    assert r["published"] is False and r["user_id"] == "42"
    assert "marker" not in r and "latency_ms" not in r
    markers = {n["data"].get("marker") for n in run[1]["good"].published}
    expected = {ok(run, n)["marker"] for n in ROUNDTRIPS}
    assert markers == expected  # the check-mode task added none


def test_roundtrip_reports_what_arrived_instead(run):
    r = failed(run, "roundtrip mangled delivery")
    assert r["stage"] == "deliver" and r["published"] is True and r["publish_status"] == 202
    assert r["notification_id"] == r["received"][0]["id"]
    assert r["received"][0]["type"] == "notification" and r["received"][0]["data"] == {}
    assert "received instead" in r["msg"] and "none carried the probe's marker" in r["hint"]
    silent = failed(run, "roundtrip nothing delivered")
    assert silent["stage"] == "deliver" and silent["received"] == []
    assert "Redis subscriber" in silent["hint"] and "journalctl -u wsnotify" in silent["hint"]
    assert len(run[1]["silent"].published) == 1  # the publisher did accept it


def test_roundtrip_publish_and_auth_failures(run):
    r = failed(run, "roundtrip wrong publish token")
    assert r["stage"] == "publish" and "PUBLISH_TOKEN" in r["hint"]
    assert r["published"] is False and r["publish_status"] == 401
    a = failed(run, "roundtrip wrong jwt secret")
    assert a["stage"] == "auth" and "4401" in a["hint"] and "JWT_SECRET" in a["hint"]
    assert a["published"] is False
    c = failed(run, "roundtrip closed port")
    assert c["stage"] == "connect" and "systemctl status wsnotify" in c["hint"]


def test_contradictory_options_are_refused(run):
    r = failed(run, "bad options")
    assert "use them with expect=refused" in r["msg"]


def test_secrets_never_reach_the_output(run, test_secrets):
    results, _servers, tokens, _tasks = run
    everything = results.stdout + results.stderr + json.dumps(results.records)
    for secret in (test_secrets.jwt_secret, test_secrets.publish_token, tokens["token"]):
        assert secret not in everything
    assert "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER" in json.dumps(results.records)


@pytest.mark.parametrize("module", MODULES)
def test_return_documents_exactly_what_the_module_returns(run, module):
    """From every real result of this play: no key RETURN leaves out, every 'always' key in
    each result, and every documented top-level key returned by some task (drift fails)."""
    results, _servers, _tokens, tasks = run
    documented = returns(module)
    names = [t["name"] for t in tasks if module in t]
    seen_anywhere: set[str] = set()
    for name in names:
        seen, unknown = key_paths(results[name], documented)
        assert not unknown, f"{name}: returned but not in RETURN: {sorted(unknown)}"
        missing = always_returned(documented) - seen
        assert not missing, f"{name}: RETURN says always, but missing: {sorted(missing)}"
        seen_anywhere |= seen
    never = set(documented) - seen_anywhere
    assert not never, f"documented in RETURN but never returned: {sorted(never)}"
