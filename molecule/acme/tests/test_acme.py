"""nginx_site_tls_source: acme against Pebble, on the converged container (molecule.yml).

Converge has issued the certificate inside playbooks/site.yml (whose verification trusted
Pebble's root for the site's name). Here: what nginx serves and on port 80, a forced renewal
through the deploy hook, a failed challenge that changes nothing and fails the play with the
CA's reason, and re-runs that ask the CA nothing. Tests run in file order and share the state.
"""

import json
import re
import time
from datetime import datetime

from conftest import HOST, INVENTORY, NAME, playbook, report, served, sh

testinfra_hosts = [f"podman://{HOST}"]
CERT = "/etc/nginx/tls/wsnotify.crt"
KEY = "/etc/nginx/tls/wsnotify.key"
LINEAGE = "/etc/letsencrypt/live/wsnotify"
BAD_NAME = "unresolvable." + NAME  # in no hosts file and no DNS zone
STATE = {}


def flat(text: str) -> str:
    """Output with line wrapping and YAML/JSON quote escaping undone, to search for phrases."""
    return " ".join(text.replace('\\"', '"').split())


def tls_files() -> str:
    r = sh(f"sha256sum {CERT} {KEY}")
    assert r.returncode == 0, r.stderr
    return r.stdout


def workers() -> str:
    """nginx's worker PIDs: a reload replaces them."""
    r = sh("pgrep -P $(cat /run/nginx.pid) | sort")
    assert r.returncode == 0 and r.stdout.strip(), r.stderr
    return r.stdout


def run_seconds(marker: str) -> float:
    """Seconds from the first to the last line of the first certbot run whose log says `marker`
    (certbot appends every run to letsencrypt.log, each starting with its version line)."""
    r = sh("cat /var/log/letsencrypt/letsencrypt.log")
    assert r.returncode == 0, r.stderr
    runs = re.split(
        r"^(?=\S+ \S+:DEBUG:certbot\._internal\.main:certbot version:)", r.stdout, flags=re.M
    )
    run = next(one for one in runs if marker in one)  # the first such run
    stamps = re.findall(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})", run, re.M)
    first, last = (datetime.strptime(s, "%Y-%m-%d %H:%M:%S,%f") for s in (stamps[0], stamps[-1]))
    return (last - first).total_seconds()


def test_the_issued_certificate_serves_and_its_chain_validates_against_pebbles_root():
    cert = served()
    assert cert["rc"] == "0" and cert["verify"] == "Verify return code: 0 (ok)", cert
    # Issued by Pebble's intermediate, no longer the self-signed one of the first deploy.
    assert "Pebble Intermediate" in cert["issuer"], cert
    r = sh(
        f"cmp {CERT} {LINEAGE}/fullchain.pem && cmp {KEY} {LINEAGE}/privkey.pem && stat -c %a {KEY}"
    )
    assert r.returncode == 0 and r.stdout.strip() == "600", r.stdout + r.stderr
    STATE["serial"] = cert["serial"]
    # The one run that requested a new certificate (renewals say "Renewing") is the issuance.
    took = run_seconds("Requesting a certificate")
    report(f"acme: first issuance (certbot certonly, deploy hook included) took {took:.1f} s")


def test_the_self_check_reaches_the_site_by_its_name_and_trusts_the_issued_certificate():
    # The self-check (roles/selfcheck) connects through nginx as verify does: to the certificate's
    # name, trusting the CA the inventory names, not the site's own file on 127.0.0.1.
    unit = sh("systemctl cat wsnotify-selfcheck.service").stdout
    assert f"wss://{NAME}:" in unit, unit
    deadline = time.monotonic() + 75  # two runs of the default 30 s interval, and some
    last: dict = {}
    while time.monotonic() < deadline:
        read = sh("cat /var/lib/wsnotify-selfcheck/last.json")
        last = json.loads(read.stdout) if read.returncode == 0 else {}
        if last.get("ok") and "nginx_welcome" in last.get("checks", {}):
            break
        time.sleep(2)
    assert last.get("ok") and last["checks"]["nginx_roundtrip"]["ok"], last


def test_port_80_answers_challenges_and_redirects_everything_else():
    probe = "/.well-known/acme-challenge/molecule-probe"
    missing = "/.well-known/acme-challenge/missing"
    r = sh(
        # certbot --webroot writes <webroot>/.well-known/acme-challenge/<token>.
        "mkdir -p /var/lib/nginx-site/acme-challenge/.well-known/acme-challenge"
        f" && echo token-body > /var/lib/nginx-site/acme-challenge{probe}"
        " && python3 - <<'PY'\n"
        "import http.client\n"
        f"for path in ('{probe}', '{missing}', '/api/user/notifications?x=1'):\n"
        f"    c = http.client.HTTPConnection('{NAME}', 80, timeout=5)\n"
        "    c.request('GET', path)\n"
        "    r = c.getresponse()\n"
        "    print(r.status, r.getheader('Location'), ' '.join(r.read().decode().split())[:20])\n"
        "PY"
    )
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "200 None token-body", lines
    assert lines[1].startswith("404 None"), lines
    assert lines[2].startswith(f"301 https://{NAME}/api/user/notifications?x=1"), lines


def test_certbot_timer_renews_with_the_acme_servers_ca():
    r = sh(
        "systemctl is-enabled certbot.timer; systemctl is-active certbot.timer;"
        " systemctl show -p Environment --value certbot.service"
    )
    assert r.stdout.split() == [
        "enabled",
        "active",
        f"REQUESTS_CA_BUNDLE={INVENTORY['nginx_site_acme_server_ca_path']}",
    ], r.stdout


def test_a_forced_renewal_runs_the_deploy_hook_and_nginx_serves_the_new_certificate():
    before_workers = workers()
    start = time.monotonic()
    r = sh(
        f"REQUESTS_CA_BUNDLE={INVENTORY['nginx_site_acme_server_ca_path']}"
        " certbot renew --force-renewal --no-random-sleep-on-renew --cert-name wsnotify 2>&1"
    )
    took = time.monotonic() - start
    assert r.returncode == 0, r.stdout
    assert f"the certificate of {LINEAGE} is installed at {CERT}, nginx reloaded" in r.stdout, (
        r.stdout
    )
    cert = served()
    assert cert["verify"] == "Verify return code: 0 (ok)", cert
    assert cert["serial"] != STATE["serial"], (cert, STATE)
    assert workers() != before_workers  # reloaded
    report(
        "acme: forced renewal (certbot renew --force-renewal, deploy hook and reload included)"
        f" took {took:.1f} s;"
        f" serial {STATE['serial']} -> {cert['serial']}"
    )
    STATE["serial"] = cert["serial"]


def test_a_failed_challenge_keeps_the_previous_certificate_and_fails_with_the_reason():
    files = tls_files()
    run = playbook("site.yml", "-e", f'{{"nginx_site_server_names": ["{NAME}", "{BAD_NAME}"]}}')
    assert run.rc != 0, run
    out = flat(run.out)
    # The message runs to ansible's error context (the task's origin) or the end of its output.
    said = re.search(
        r"certbot could not get a certificate for .*? The CA said: .*?"
        r"(?= Origin: |' (?:NO MORE|PLAY)|$)",
        out,
    )
    assert said, run
    message = said.group(0)
    assert (
        f"{NAME}, {BAD_NAME}" in message
        and "nginx keeps serving the previous certificate" in message
    ), message
    assert BAD_NAME in message.split("The CA said:")[1], message
    report(f"acme: failed challenge message: {message}")
    assert tls_files() == files
    cert = served()
    assert cert["serial"] == STATE["serial"] and cert["verify"] == "Verify return code: 0 (ok)", (
        cert
    )


def test_a_rerun_asks_the_ca_nothing_and_changes_nothing():
    # The failed run's server_name (two names) goes back; certbot keeps the valid certificate.
    run = playbook("site.yml")
    assert run.rc == 0, run
    assert served()["serial"] == STATE["serial"]
    start = time.monotonic()
    run = playbook("site.yml")
    took = time.monotonic() - start
    assert run.rc == 0, run
    recap = re.search(rf"^{re.escape(HOST)}\s*:.*$", run.stdout, re.M)
    assert recap and " changed=0 " in recap.group(0) + " ", run
    assert served()["serial"] == STATE["serial"]
    report(f"acme: re-run of site.yml with a valid certificate: changed=0 in {took:.0f} s")
