"""nginx as the nginx_site role leaves it, and what the role does with a change nginx rejects.

Requests go through curl inside the container; two echo backends (converge.yml) answer with the
port and headers they received, which proves what nginx proxied and how.
"""

import json
import subprocess
import sys
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
