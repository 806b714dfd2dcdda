"""The self-check scenario's container and the project root."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "tests"))

from helpers.ansible_run import ansible_playbook  # noqa: E402

SCENARIO = yaml.safe_load((Path(__file__).resolve().parents[1] / "molecule.yml").read_text())
HOST = SCENARIO["platforms"][0]["name"]
# The inventory's test-only values (the secrets must appear in no unit).
INVENTORY = SCENARIO["provisioner"]["inventory"]["group_vars"]["all"]


def playbook(name: str, *args: str):
    """ansible-playbook playbooks/<name> against the Molecule instance, from the project root."""
    inventory = os.path.dirname(os.environ["MOLECULE_INVENTORY_FILE"])
    return ansible_playbook("-i", inventory, f"playbooks/{name}", *args)
