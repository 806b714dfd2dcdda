"""Helpers for the cluster scenario: the scenario's hosts and addresses (molecule.yml, the one
source), testinfra hosts, and our playbooks against the Molecule instances."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import testinfra
import yaml

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "tests"))

from helpers.ansible_run import Run, ansible_playbook  # noqa: E402

SCENARIO = yaml.safe_load((ROOT / "molecule/cluster/molecule.yml").read_text())
# Container name -> its stack_private_address; group -> its hosts, in molecule.yml's order.
ADDRESS = {
    name: hostvars["stack_private_address"]
    for name, hostvars in SCENARIO["provisioner"]["inventory"]["host_vars"].items()
}
GROUPS: dict[str, list[str]] = {}
for _platform in SCENARIO["platforms"]:
    for _group in _platform["groups"]:
        GROUPS.setdefault(_group, []).append(_platform["name"])
PROXY, (WS1, WS2), DATA = GROUPS["proxy"][0], GROUPS["ws_nodes"], GROUPS["redis"][0]


def host(name: str):
    return testinfra.get_host(f"podman://{name}")


def playbook(name: str, *args: str) -> Run:
    """ansible-playbook playbooks/<name> against the Molecule instances, from the project root."""
    inventory = os.path.dirname(os.environ["MOLECULE_INVENTORY_FILE"])
    return ansible_playbook("-i", inventory, f"playbooks/{name}", *args)
