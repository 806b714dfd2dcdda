"""Helpers for the ACME scenario: commands in its container and our playbooks against it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[3]
SCENARIO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from helpers.ansible_run import Run, ansible_playbook  # noqa: E402

MOLECULE = yaml.safe_load((SCENARIO / "molecule.yml").read_text())
HOST = MOLECULE["platforms"][0]["name"]
INVENTORY = MOLECULE["provisioner"]["inventory"]["group_vars"]["all"]
NAME = INVENTORY["nginx_site_server_names"][0]
REPORT = ROOT / ".cache" / "acme.txt"


def playbook(name: str, *args: str) -> Run:
    """ansible-playbook playbooks/<name> against the Molecule instance, from the project root."""
    inventory = os.path.dirname(os.environ["MOLECULE_INVENTORY_FILE"])
    return ansible_playbook("-i", inventory, f"playbooks/{name}", *args)


def sh(script: str, timeout: int = 120) -> subprocess.CompletedProcess:
    """A shell script run as root in the container; its result (not checked)."""
    return subprocess.run(
        ["podman", "exec", "-i", HOST, "sh", "-c", script],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def served() -> dict:
    """The certificate nginx serves for NAME on 127.0.0.1:443, checked against Pebble's root:
    {serial, issuer, verify (openssl's verdict line), pem}."""
    r = sh(
        f"openssl s_client -connect 127.0.0.1:443 -servername {NAME} -verify_hostname {NAME}"
        f" -CAfile {INVENTORY['nginx_site_verify_ca_path']} -verify_return_error </dev/null"
        " > /tmp/s_client.out 2>&1; rc=$?;"
        " grep -m1 'Verify return code' /tmp/s_client.out; echo rc=$rc;"
        " openssl x509 -noout -serial -issuer -in /tmp/s_client.out"
    )
    assert r.returncode == 0, r.stdout + r.stderr
    lines = dict(line.split("=", 1) for line in r.stdout.splitlines() if "=" in line)
    return {
        "verify": r.stdout.splitlines()[0].strip(),
        "rc": lines.get("rc"),
        "serial": lines.get("serial"),
        "issuer": lines.get("issuer", "").strip(),
    }


def report(line: str) -> None:
    """Keep a figure for the report: .cache/acme.txt."""
    print(line)
    with open(REPORT, "a") as f:
        f.write(line + "\n")
