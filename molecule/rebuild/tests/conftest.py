"""Helpers for the lifecycle scenario: our playbooks, the API and the database of its container."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[3]
SCENARIO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "module_utils"))

from helpers.ansible_run import Run, ansible_playbook  # noqa: E402
from wsnotify_jwt import mint_token  # noqa: E402

MOLECULE = yaml.safe_load((SCENARIO / "molecule.yml").read_text())
PLATFORM = MOLECULE["platforms"][0]
HOST = PLATFORM["name"]
# The inventory's values (the secrets tests mint tokens and publish with: test-only ones).
INVENTORY = MOLECULE["provisioner"]["inventory"]["group_vars"]["all"]
BACKUPS = Path(os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY", "/nonexistent")) / "backups" / HOST
REPORT = ROOT / ".cache" / "rebuild.txt"


def playbook(name: str, *args: str) -> Run:
    """ansible-playbook playbooks/<name> against the Molecule instance, from the project root."""
    inventory = os.path.dirname(os.environ["MOLECULE_INVENTORY_FILE"])
    return ansible_playbook("-i", inventory, f"playbooks/{name}", *args)


def token(user: str, ttl: int = 7200) -> str:
    return mint_token(INVENTORY["wsnotify_jwt_secret"], user, ttl=ttl)


# Runs inside the container: the requests come on stdin (tokens included: never on a command
# line), each sent through nginx over TLS, verified against the site's own certificate.
_API_CLIENT = r"""
import json, ssl, sys, urllib.error, urllib.request
ctx = ssl.create_default_context(cafile="/etc/nginx/tls/wsnotify.crt")
out = []
for r in json.load(sys.stdin):
    body = None if r.get("body") is None else json.dumps(r["body"]).encode()
    req = urllib.request.Request("https://127.0.0.1" + r["path"], data=body, method=r["method"],
        headers={"Authorization": "Bearer " + r["token"], "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=10) as resp:
            out.append({"status": resp.status, "body": json.load(resp)})
    except urllib.error.HTTPError as e:
        out.append({"status": e.code, "body": json.load(e)})
print(json.dumps(out))
"""


def api(*requests: dict) -> list[dict]:
    """Each {method, path, token, body} sent to the site's API; their {status, body}, in order."""
    proc = subprocess.run(
        ["podman", "exec", "-i", HOST, "python3", "-c", _API_CLIENT],
        input=json.dumps(list(requests)),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return json.loads(proc.stdout)


def publish(**notification) -> int:
    (r,) = api(
        {
            "method": "POST",
            "path": "/api/notifications",
            "token": INVENTORY["wsnotify_publish_token"],
            "body": notification,
        }
    )
    assert r["status"] == 202, r
    return r["body"]["id"]


def sql(query: str) -> str:
    """One query as postgres in the service's database; its unaligned output."""
    proc = subprocess.run(
        [
            *("podman", "exec", "-i", HOST, "runuser", "-u", "postgres", "--"),
            *("psql", "-d", "wsnotify", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"),
        ],
        input=query,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return proc.stdout.strip()


def main_pid() -> str:
    """The service's main PID (a restart changes it)."""
    return subprocess.run(
        ["podman", "exec", HOST, "systemctl", "show", "-p", "MainPID", "--value", "wsnotify"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def report(line: str) -> None:
    """Keep a figure for the report: .cache/rebuild.txt."""
    print(line)
    with open(REPORT, "a") as f:
        f.write(line + "\n")
