"""nginx as the nginx_site role leaves it, and what the role does with a change nginx rejects.

Requests go through curl inside the container; two echo backends (converge.yml) answer with the
port and headers they received, which proves what nginx proxied and how.
"""

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

SCENARIO = Path(__file__).resolve().parents[1]
ROOT = SCENARIO.parents[3]
sys.path.insert(0, str(ROOT / "tests"))

from helpers.ansible_run import ansible_playbook  # noqa: E402

CONTAINER = "molecule-nginx-site"
testinfra_hosts = [f"podman://{CONTAINER}"]

SITE = "/etc/nginx/sites-available/wsnotify"
LINK = "/etc/nginx/sites-enabled/wsnotify"
CERT = "/etc/nginx/tls/wsnotify.crt"
KEY = "/etc/nginx/tls/wsnotify.key"
# Trusting the site's own certificate checks its SAN as well as the chain.
CURL = f"curl -sS --max-time 5 --cacert {CERT} --resolve localhost:443:127.0.0.1"


def curl_json(host, args):
    out = host.run(f"{CURL} {args}")
    assert out.rc == 0, out.stderr
    return json.loads(out.stdout)


def run_converge(*args):
    """Run converge.yml from the controller against the container, as an operator would."""
    return ansible_playbook(
        *("-i", f"{CONTAINER},", "-c", "containers.podman.podman"),
        *("-e", "ansible_python_interpreter=/usr/bin/python3"),
        str(SCENARIO / "converge.yml"),
        *args,
        timeout=300,
    )


def flat(text):
    """The output with line wrapping and YAML/JSON quote escaping undone, to search for phrases."""
    return " ".join(text.replace('\\"', '"').split())


def snapshot(host):
    """What must survive a rejected change: file contents and names under /etc/nginx."""
    out = host.run(
        "cd /etc/nginx && find . -path ./modules-enabled -prune -o \\( -type f -o -type l \\) "
        "-printf '%p %l\\n' | sort && sha256sum sites-available/* conf.d/* tls/*"
    )
    assert out.rc == 0, out.stderr
    return out.stdout


def worker_pids(host):
    """nginx's worker processes: a reload replaces them, so unchanged PIDs mean no reload."""
    out = host.run("pgrep -P $(cat /run/nginx.pid) | sort")
    assert out.rc == 0 and out.stdout.strip(), out.stderr
    return out.stdout


def test_nginx_is_enabled_running_and_accepts_its_configuration(host):
    assert host.service("nginx").is_enabled
    assert host.service("nginx").is_running
    out = host.run("nginx -t")
    assert out.rc == 0, out.stderr


def test_site_is_linked_into_sites_enabled_and_default_site_removed(host):
    assert host.file(SITE).is_file
    link = host.file(LINK)
    assert link.is_symlink
    assert link.linked_to == SITE
    assert not host.file("/etc/nginx/sites-enabled/default").exists


def test_upgrade_map_is_in_the_http_context(host):
    conf = host.run("nginx -T").stdout
    assert "map $http_upgrade $connection_upgrade" in conf
    assert "include /etc/nginx/conf.d/*.conf;" in conf


def test_private_key_is_root_only_and_certificate_names_the_site(host):
    key = host.file(KEY)
    assert (key.user, key.group, key.mode) == ("root", "root", 0o600)
    assert host.file(CERT).mode == 0o644
    out = host.run(f"openssl x509 -in {CERT} -noout -subject -ext subjectAltName")
    # OpenSSL 3.0 (Debian 12) prints "CN = localhost", 3.5 (Debian 13) "CN=localhost".
    assert "CN=localhost" in out.stdout.replace(" ", ""), out.stdout
    assert "DNS:localhost" in out.stdout and "IP Address:127.0.0.1" in out.stdout, out.stdout


def test_generated_certificate_is_ecdsa_p256_by_default(host):
    out = host.run(f"openssl x509 -in {CERT} -noout -text")
    assert "id-ecPublicKey" in out.stdout and "P-256" in out.stdout, out.stdout


def directive(conf, name):
    """The value of a directive that appears once in `nginx -T`'s output."""
    values = re.findall(rf"^\s*{name}\s+([^;]+);", conf, re.MULTILINE)
    assert len(values) == 1, (name, values)
    return values[0]


def open_files(host, pid):
    """(soft, hard) open-files limit of a process."""
    line = host.run(f"grep '^Max open files' /proc/{pid}/limits").stdout.split()
    return int(line[3]), int(line[4])


def test_main_context_is_sized_for_max_clients_within_the_hosts_ceiling(host):
    conf = host.run("nginx -T").stdout
    workers = int(directive(conf, "worker_processes"))
    connections = int(directive(conf, "worker_connections"))
    nofile = int(directive(conf, "worker_rlimit_nofile"))
    max_clients = 3  # converge.yml
    cores = int(host.run("nproc").stdout)
    assert workers >= cores
    # Each client is two connections in one worker; the spare 256 are the API's.
    assert (connections - 256) * workers >= 2 * max_clients
    # This container's ceiling (containers.conf ulimit) is PID 1's hard limit.
    assert nofile == connections + 128 <= open_files(host, 1)[1]
    master = host.file("/run/nginx.pid").content_string.strip()
    assert open_files(host, master) == (nofile, nofile)  # the unit's LimitNOFILE
    pids = worker_pids(host).split()
    assert len(pids) == workers
    for pid in pids:
        assert open_files(host, pid)[0] == nofile
    assert directive(conf, "worker_shutdown_timeout") == "3s"


def test_tls_is_modern_for_every_server_block(host):
    conf = host.run("nginx -T").stdout
    protocols = re.findall(r"^\s*ssl_protocols\s+([^;]+);", conf, re.MULTILINE)
    assert protocols and all(p.split() == ["TLSv1.2", "TLSv1.3"] for p in protocols), protocols
    assert directive(conf, "ssl_prefer_server_ciphers") == "off"
    # SECLEVEL=0 lets the client offer TLS 1.1, so its failure is the server's refusal.
    for version, ok in (("-tls1_2", True), ("-tls1_3", True), ("-tls1_1", False)):
        out = host.run(
            f"openssl s_client {version} -cipher DEFAULT:@SECLEVEL=0 -connect 127.0.0.1:443"
            " -servername localhost </dev/null"
        )
        assert (out.rc == 0) == ok, (version, out.stdout, out.stderr)


def hold(host, count, seconds):
    """Open `count` requests on the WebSocket location that the backend answers after `seconds`."""
    for _ in range(count):
        # A transient unit each: it outlives this exec session and systemd reaps it.
        out = host.run(
            f"systemd-run -q --collect {CURL.replace('--max-time 5', f'--max-time {seconds + 5}')}"
            f" -o /dev/null 'https://localhost/ws?hold={seconds}'"
        )
        assert out.rc == 0, out.stderr
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if held(host) >= count:
            return
        time.sleep(0.2)
    raise AssertionError(f"nginx did not proxy {count} held requests")


def held(host) -> int:
    """nginx's connections to the backends now."""
    out = host.run("ss -Htn state established '( dport = :3002 or dport = :3003 )' | wc -l")
    return int(out.stdout)


# Held for 20 s: long enough for the three to be open at once on a loaded machine (with 8 s, the
# first was answered before the third connected once, in a CI run three scenarios at a time).
HOLD = 20


def test_the_client_over_max_clients_gets_503_with_retry_after(host):
    hold(host, 3, HOLD)
    out = host.run(f"{CURL} -D - 'https://localhost/ws?hold=0'")
    assert out.rc == 0, out.stderr
    assert out.stdout.startswith("HTTP/1.1 503"), out.stdout
    assert "retry-after: 10" in out.stdout.lower(), out.stdout
    assert '"error":"at capacity"' in out.stdout, out.stdout
    assert "limiting connections by zone" in host.run("tail -n 5 /var/log/nginx/error.log").stdout
    # The API is not counted: it still answers while the WebSocket location is full.
    assert curl_json(host, "https://localhost/healthz")["path"] == "/healthz"


def test_a_reload_converges_within_worker_shutdown_timeout(host):
    deadline = time.monotonic() + HOLD + 10  # the previous test's held requests end
    while held(host) and time.monotonic() < deadline:
        time.sleep(0.5)
    hold(host, 3, 60)
    old = set(worker_pids(host).split())
    assert host.run("systemctl reload nginx").rc == 0
    # worker_shutdown_timeout is 3 s in this scenario: old workers are gone soon after, their
    # held requests closed although the backend would answer only after 60 s.
    deadline = time.monotonic() + 10
    while (left := old & set(host.run("pgrep -f 'nginx: [w]orker'").stdout.split())) and (
        time.monotonic() < deadline
    ):
        time.sleep(0.5)
    assert not left, f"old workers {left} still running 10 s after a reload"
    assert not host.run("pgrep -f '[w]orker process is shutting down'").stdout.strip()
    assert curl_json(host, "https://localhost/healthz")["path"] == "/healthz"


def test_plain_http_redirects_to_https(host):
    out = host.run(
        "curl -sS --max-time 5 -o /dev/null -w '%{http_code} %{redirect_url}' "
        "-H 'Host: localhost' http://127.0.0.1/api/user/notifications?x=1"
    )
    assert out.stdout == "301 https://localhost/api/user/notifications?x=1", out.stdout + out.stderr


def test_websocket_location_forwards_upgrade_and_client_headers(host):
    echo = curl_json(
        host,
        "-H 'Connection: Upgrade' -H 'Upgrade: websocket' https://localhost/ws?token=t",
    )
    assert echo["path"] == "/ws?token=t"
    headers = echo["headers"]
    assert headers["upgrade"] == "websocket"
    assert headers["connection"] == "upgrade"
    assert headers["host"] == "localhost"
    assert headers["x-real-ip"] == "127.0.0.1"
    assert headers["x-forwarded-for"] == "127.0.0.1"
    assert headers["x-forwarded-proto"] == "https"


def test_websocket_timeouts_outlast_the_ping_interval(host):
    conf = host.file(SITE).content_string
    assert "proxy_read_timeout 75s;" in conf
    assert "proxy_send_timeout 75s;" in conf


def test_per_connection_buffers_are_sized_for_small_frames(host):
    conf = host.run("nginx -T").stdout
    assert directive(conf, "ssl_buffer_size") == "4k"
    assert directive(conf, "proxy_buffer_size") == "1k"


@pytest.mark.parametrize("path", ["/api/user/notifications", "/healthz"])
def test_api_and_health_are_proxied_with_keepalive(host, path):
    echo = curl_json(host, f"https://localhost{path}")
    assert echo["path"] == path
    assert echo["headers"]["x-forwarded-proto"] == "https"
    assert "upgrade" not in echo["headers"]


@pytest.mark.parametrize("path", ["/", "/metrics", "/healthz/x"])
def test_other_paths_are_not_proxied(host, path):
    out = host.run(f"{CURL} -o /dev/null -w '%{{http_code}}' https://localhost{path}")
    assert out.stdout == "404", out.stdout + out.stderr


def test_upstream_spreads_requests_over_every_backend(host):
    ports = {curl_json(host, "https://localhost/healthz")["port"] for _ in range(6)}
    assert ports == {3002, 3003}


def test_extra_directives_reach_the_server_block(host):
    out = host.run(f"{CURL} -D - -o /dev/null https://localhost/")
    assert "x-site-extra: from nginx_site_extra_directives" in out.stdout.lower(), out.stdout


def rejected(host, change):
    """Run a change nginx must reject: it fails, and files and nginx's workers stay as they were."""
    before, workers = snapshot(host), worker_pids(host)
    result = change()
    assert result.returncode != 0, result.stdout
    assert snapshot(host) == before  # same files, same contents, no backup left behind
    assert worker_pids(host) == workers, "nginx was reloaded after a rejected change"
    return result


def converge_with(extra_vars):
    return run_converge("--skip-tags", "test-setup", "-e", json.dumps(extra_vars))


def test_check_mode_on_the_converged_host_reports_no_change():
    result = run_converge("--check", "--diff")
    assert result.returncode == 0, result.stdout + result.stderr
    assert " changed=0 " in result.stdout and " failed=0 " in result.stdout, result.stdout


def test_invalid_directive_is_rejected_restored_and_nginx_keeps_serving(host):
    result = rejected(
        host, lambda: converge_with({"nginx_site_extra_directives": ["bogus_directive on;"]})
    )
    assert "nginx rejected the new configuration of site wsnotify" in flat(result.stdout)
    assert 'unknown directive "bogus_directive"' in flat(result.stdout), result.stdout
    assert "bogus_directive" not in host.run("nginx -T").stdout
    assert curl_json(host, "https://localhost/healthz")["path"] == "/healthz"


def test_rejected_new_site_is_removed_with_its_link(host):
    broken = {
        "nginx_site_name": "broken",
        "nginx_site_tls_source": "files",
        "nginx_site_tls_certificate_path": CERT,
        "nginx_site_tls_key_path": KEY,
        "nginx_site_extra_directives": ["bogus_directive on;"],
    }
    result = rejected(host, lambda: converge_with(broken))
    assert "nginx rejected the new configuration of site broken" in flat(result.stdout)
    # test -e follows links: a dangling link must be caught too.
    assert host.run("test -e /etc/nginx/sites-available/broken").rc == 1
    assert host.run("test -L /etc/nginx/sites-enabled/broken").rc == 1
    assert host.run("nginx -t").rc == 0
    assert curl_json(host, "https://localhost/healthz")["path"] == "/healthz"


def make_pair(directory, name):
    """A throwaway certificate and key for localhost, made on the controller."""
    crt, key = directory / f"{name}.crt", directory / f"{name}.key"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2"),
            *("-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"),
            *("-keyout", str(key), "-out", str(crt)),
        ],
        check=True,
        capture_output=True,
    )
    return crt.read_text(), key.read_text()


def provide_pair(tmp_path, crt, key):
    """Run converge with the pair as content, verbosely, through a vars file (never argv)."""
    vars_file = tmp_path / "tls.json"
    vars_file.write_text(
        json.dumps(
            {
                "nginx_site_tls_source": "content",
                "nginx_site_tls_certificate": crt,
                "nginx_site_tls_key": key,
            }
        )
    )
    return run_converge("--skip-tags", "test-setup", "-v", "-e", f"@{vars_file}")


def test_provided_key_is_validated_never_logged_and_served(host, tmp_path):
    crt_a, key_a = make_pair(tmp_path, "a")
    _, key_b = make_pair(tmp_path, "b")
    key_line = key_a.splitlines()[5]  # any line of a key's base64 body identifies it

    # A key that does not belong to the certificate: nginx -t refuses, the old pair comes back.
    result = rejected(host, lambda: provide_pair(tmp_path, crt_a, key_b))
    assert "key values mismatch" in flat(result.stdout), result.stdout
    assert key_b.splitlines()[5] not in result.stdout + result.stderr

    # The matching pair: accepted, reloaded, served, and the key is root-only.
    result = provide_pair(tmp_path, crt_a, key_a)
    assert result.returncode == 0, result.stdout + result.stderr
    assert key_line not in result.stdout + result.stderr
    key = host.file(KEY)
    assert (key.user, key.mode) == ("root", 0o600)
    served = host.run(
        "openssl s_client -connect 127.0.0.1:443 -servername localhost </dev/null 2>/dev/null"
        " | openssl x509 -noout -fingerprint -sha256"
    ).stdout
    expected = subprocess.run(
        ["openssl", "x509", "-noout", "-fingerprint", "-sha256"],
        input=crt_a,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert served.strip() == expected.strip()
