"""Both modules through a REAL nginx with a self-signed certificate made by the openssl CLI.

One nginx process, several server blocks on free 127.0.0.1 ports, each a known-good or a known-bad
site as operators meet them:
  good       wss proxy of /ws (Upgrade/Connection forwarded) and /api/
  no_ws      the site without its /ws location            -> 404 from nginx
  no_upgrade /ws proxied without Upgrade/Connection headers -> the backend's refusal, through nginx
  down       /ws proxied to a port where nothing listens   -> 502
  other      a certificate for another host name
Upstream is the wsnotify stand-in of helpers/wsserver.py.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml
from helpers.ansible_run import failed, ok, run_tasks, task
from helpers.moddocs import MODULES, documented_keys, key_paths, rendered, returns
from helpers.nginx import running_nginx
from helpers.ports import free_port
from helpers.proc_sampler import CmdlineWatch

from module_utils import websocket
from module_utils.wsnotify_jwt import mint_token

UPGRADE = """proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection "upgrade";
            proxy_set_header Host $host;
            proxy_read_timeout 60s;"""


def site(port: int, cert, key, locations: str) -> str:
    return f"""
    server {{
        listen 127.0.0.1:{port} ssl;
        server_name localhost;
        ssl_certificate {cert};
        ssl_certificate_key {key};
{locations}
    }}"""


def nginx_config(ports: dict[str, int], upstream: int, dead: int, tls: dict) -> str:
    up = f"http://127.0.0.1:{upstream}"
    cert, key = tls["cert"], tls["key"]
    ws = f"        location /ws {{ proxy_pass {up}; {UPGRADE} }}"
    api = f"        location /api/ {{ proxy_pass {up}; }}"
    return "\n".join(
        [
            site(ports["good"], cert, key, ws + "\n" + api),
            site(ports["no_ws"], cert, key, api),
            site(ports["no_upgrade"], cert, key, f"        location /ws {{ proxy_pass {up}; }}"),
            site(ports["down"], cert, key, ws.replace(up, f"http://127.0.0.1:{dead}")),
            site(ports["other"], tls["other_cert"], tls["other_key"], ws),
            # At capacity as the nginx_site role refuses it: one WebSocket admitted, then 503.
            "limit_conn_zone $server_name zone=full_clients:1m;",
            site(
                ports["full"],
                cert,
                key,
                "        location /ws { limit_conn full_clients 1; limit_conn_status 503;"
                f" error_page 503 @full; proxy_pass {up}; {UPGRADE} }}\n"
                "        location @full { add_header Retry-After 10 always;"
                """ return 503 '{"error":"at capacity"}'; }""",
            ),
        ]
    )


@pytest.fixture(scope="module")
def run(tmp_path_factory, test_secrets, tls_material):
    from helpers.wsserver import WsNotifyTestServer

    backend = WsNotifyTestServer(test_secrets.jwt_secret, test_secrets.publish_token).start()
    ports = {name: free_port() for name in ("good", "no_ws", "no_upgrade", "down", "other", "full")}
    closed = free_port()
    config = nginx_config(ports, backend.port, free_port(), tls_material)
    token = mint_token(test_secrets.jwt_secret, "42")
    ca = str(tls_material["ca_bundle"])

    def wss(name: str, host: str = "localhost") -> str:
        return f"wss://{host}:{ports[name]}/ws"

    up = {"url": wss("good"), "token": token, "ca_path": ca, "expect_message_type": "welcome"}
    hs = "websocket_handshake"
    tasks = [
        task("wss upgrade", hs, up),
        task("wss upgrade check mode", hs, up, check_mode=True),
        task(
            "wss refused 4401",
            hs,
            {"url": wss("good"), "ca_path": ca, "expect": "refused", "expect_close_code": 4401},
        ),
        task(
            "wss roundtrip",
            "notification_roundtrip",
            {
                "url": wss("good"),
                "ca_path": ca,
                "token": token,
                "unit": "nginx",
                "publish_token": test_secrets.publish_token,
            },
        ),
        task("no ws location", hs, {**up, "url": wss("no_ws")}),
        task("upgrade not forwarded", hs, {**up, "url": wss("no_upgrade")}),
        task("upstream down", hs, {**up, "url": wss("down")}),
        task("self-signed untrusted", hs, {**up, "ca_path": None}),
        task("self-signed untrusted check mode", hs, {**up, "ca_path": None}, check_mode=True),
        task("wrong host name", hs, {**up, "url": wss("other")}),
        task("ip not in certificate", hs, {**up, "url": wss("good", "127.0.0.1")}),
        task(
            "validate_certs false",
            hs,
            {**up, "url": wss("good", "127.0.0.1"), "ca_path": None, "validate_certs": False},
        ),
        task("plain ws to the TLS port", hs, {**up, "url": f"ws://127.0.0.1:{ports['good']}/ws"}),
        task("wss to a plain port", hs, {**up, "url": f"wss://127.0.0.1:{backend.port}/ws"}),
        task("wss closed port", hs, {**up, "url": f"wss://127.0.0.1:{closed}/ws"}),
        task("over capacity", hs, {**up, "url": wss("full")}),
        task(
            "over capacity expected",
            hs,
            {"url": wss("full"), "ca_path": ca, "expect": "refused", "expect_status": 503},
        ),
    ]
    # The modules' EXAMPLES, as written, against this stack: only the service's port differs.
    for name in MODULES:
        text = rendered()[name]["examples"].replace("127.0.0.1:3002", backend.base)
        tasks += yaml.safe_load(text)
    stack_vars = {
        "wsnotify_jwt_secret": test_secrets.jwt_secret,
        "wsnotify_publish_token": test_secrets.publish_token,
        "nginx_site_https_port": ports["good"],
        "nginx_site_tls_certificate_path": str(tls_material["cert"]),
    }
    prefix = tmp_path_factory.mktemp("nginx")
    secrets = {"jwt_secret": test_secrets.jwt_secret, "publish_token": test_secrets.publish_token}
    try:
        with running_nginx(config, prefix, ports=list(ports.values())) as nginx:
            # The one client the "full" site admits, held while the tasks run.
            holder = websocket.connect(
                wss("full"),
                timeout=5,
                headers={"Authorization": f"Bearer {token}"},
                ssl_context=websocket.make_ssl_context(ca_path=ca),
            )
            with CmdlineWatch(secrets) as cmdlines:
                results = run_tasks(
                    tasks, tmp_path_factory.mktemp("play-nginx"), extra_vars=stack_vars
                )
            holder.close()
            yield results, nginx, backend, ports, tasks, cmdlines
    finally:
        backend.stop()


def test_wss_through_nginx_upgrades_with_tls_details(run):
    r = ok(run, "wss upgrade")
    assert r["status"] == 101 and r["accept_valid"] is True and r["outcome"] == "upgrade"
    assert r["headers"]["server"].startswith("nginx")
    assert r["messages"] == [{"type": "welcome", "user_id": "42"}]
    tls = r["tls"]
    assert tls["protocol"] in ("TLSv1.2", "TLSv1.3")
    assert tls["subject"] == "CN=localhost" and tls["self_signed"] is True
    assert tls["subject_alt_names"] == ["DNS:localhost"]
    assert tls["days_to_expiry"] in (29, 30)
    checked = ok(run, "wss upgrade check mode")
    for key in ("outcome", "status", "accept_valid", "messages"):
        assert checked[key] == r[key]
    assert checked["tls"]["subject"] == tls["subject"]


def test_wss_refusal_and_roundtrip_through_nginx(run):
    r = ok(run, "wss refused 4401")
    assert (r["status"], r["close_code"], r["close_reason"]) == (101, 4401, "Unauthorized")
    rt = ok(run, "wss roundtrip")
    assert rt["publish_status"] == 202 and rt["notification"]["data"]["marker"] == rt["marker"]
    assert rt["latency_ms"] > 0


def test_site_without_ws_location_is_404_with_hint(run):
    r = failed(run, "no ws location")
    assert r["status"] == 404 and r["headers"]["server"].startswith("nginx")
    assert "site is not enabled" in r["hint"] and "location /ws" in r["hint"]
    assert "404 Not Found" in r["body"]


def test_upgrade_headers_not_forwarded(run):
    r = failed(run, "upgrade not forwarded")
    # nginx sends the request upstream as HTTP/1.0 without Upgrade; the backend (like aiohttp)
    # answers 400, which nginx passes through.
    assert r["status"] == 400 and r["headers"]["server"].startswith("nginx")
    assert "without its Upgrade/Connection headers" in r["hint"]
    assert "proxy_set_header Upgrade $http_upgrade" in r["hint"]
    backend = run[2]
    forwarded = [h for m, t, h in backend.requests if t == "/ws" and "upgrade" not in h]
    assert forwarded, "the backend should have seen the /ws request without Upgrade"


def test_upstream_down_is_502_naming_the_unit(run):
    r = failed(run, "upstream down")
    assert r["status"] == 502
    assert "could not reach its upstream" in r["hint"] and "systemctl status wsnotify" in r["hint"]


def test_over_capacity_is_the_clean_refusal_naming_the_variable(run):
    r = failed(run, "over capacity")
    assert r["status"] == 503 and r["at_capacity"] is True, r
    assert r["headers"]["retry-after"] == "10"
    assert "nginx_site_max_clients" in r["msg"] and "Retry-After: 10 s" in r["msg"], r["msg"]
    r = ok(run, "over capacity expected")
    assert r["at_capacity"] is True and r["outcome"] == "refused"
    assert ok(run, "wss upgrade")["at_capacity"] is False


def test_untrusted_self_signed_certificate(run):
    r = failed(run, "self-signed untrusted")
    assert r["outcome"] == "error" and r["status"] is None
    assert "self-signed and not trusted" in r["hint"] and "ca_path" in r["hint"]
    assert "CN=localhost" in r["hint"]  # the presented certificate, fetched without verification
    assert r["tls"]["subject"] == "CN=localhost"
    assert "self-signed" in r["tls"]["certificate_error"]
    assert failed(run, "self-signed untrusted check mode")["hint"] == r["hint"]


def test_certificate_for_another_name(run):
    r = failed(run, "wrong host name")
    assert "not valid for 'localhost'" in r["hint"] and "DNS:other.example" in r["hint"]
    ip = failed(run, "ip not in certificate")
    assert "not valid for '127.0.0.1'" in ip["hint"] and "DNS:localhost" in ip["hint"]


def test_validate_certs_false_still_reports_the_certificate(run):
    r = ok(run, "validate_certs false")
    assert r["tls"]["subject"] == "CN=localhost"


def test_scheme_and_port_mismatches(run):
    plain = failed(run, "plain ws to the TLS port")
    assert plain["status"] == 400 and "use a wss:// url" in plain["hint"]
    tls_to_plain = failed(run, "wss to a plain port")
    assert "does not speak TLS" in tls_to_plain["hint"]
    closed = failed(run, "wss closed port")
    assert "TLS proxy is down" in closed["hint"] and "systemctl status nginx" in closed["hint"]


def test_nginx_is_a_real_process_stopped_by_pid(run):
    nginx = run[1]
    assert nginx.pid is not None and nginx.proc.pid == nginx.pid
    assert int((nginx.prefix / "nginx.pid").read_text()) == nginx.pid
    assert "[emerg]" not in nginx.error_log()


def test_examples_run_as_written_against_the_stack(run):
    results = run[0]
    names = [t["name"] for m in MODULES for t in yaml.safe_load(rendered()[m]["examples"])]
    assert len(names) == 7
    for name in names:
        assert results.status(name) == "ok", json.dumps(results[name], indent=1)
    shown = results["Show how long the TLS certificate remains valid"]["msg"]
    assert shown in ("CN=localhost expires in 29 days", "CN=localhost expires in 30 days")
    assert results["Ensure a published notification reaches a connected user"]["user_id"] == (
        "ansible-probe"
    )


def test_no_secret_is_ever_on_a_command_line(run):
    """Sampled /proc/*/cmdline during the whole play, the EXAMPLES' controller-side mint
    included: the secrets go in as module arguments or on stdin, never as arguments."""
    cmdlines = run[5]
    assert cmdlines.leaks == []
    assert cmdlines.sweeps > 100
    assert any("ansible-playbook" in c for c in cmdlines.seen)
    assert any("from wsnotify_jwt import mint_token" in c for c in cmdlines.seen), (
        "the sampling missed the EXAMPLES' mint command, so it proves nothing about it"
    )


def test_the_cmdline_watch_catches_a_secret_argument(test_secrets):
    with CmdlineWatch({"jwt_secret": test_secrets.jwt_secret}) as watch:
        subprocess.run(
            [sys.executable, "-c", "import time; time.sleep(0.2)", test_secrets.jwt_secret],
            check=True, timeout=10,
        )  # fmt: skip
    assert watch.leaks and watch.leaks[0] == "jwt_secret"
    assert not any(test_secrets.jwt_secret in c for c in watch.seen)  # redacted


def test_return_documents_what_the_modules_return_through_tls(run):
    """Every key of every result is in RETURN (``tls`` through its ``contains``), and every
    documented ``tls`` key was returned by some wss check (a successful one, a TLS failure)."""
    results, tasks = run[0], run[4]
    tls_seen = set()
    for module in MODULES:
        documented = returns(module)
        for t in tasks:
            if module in t:
                seen, unknown = key_paths(results[t["name"]], documented)
                assert not unknown, (t["name"], unknown)
                tls_seen |= {k for k in seen if k.startswith("tls.")}
    tls_documented = {k for k in documented_keys(returns("websocket_handshake")) if "." in k}
    assert tls_seen == tls_documented
