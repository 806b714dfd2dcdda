"""Helpers for the mixed-release scenario: our playbooks against both Molecule containers."""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "tests"))

from helpers.ansible_run import Run, ansible_playbook  # noqa: E402

# Container name -> the Debian suite it runs (molecule.yml's platforms).
NODES = {"wsnotify-mixed-13": "trixie", "wsnotify-mixed-12": "bookworm"}


def playbook(name: str, *args: str) -> Run:
    """ansible-playbook playbooks/<name> against the Molecule instances, from the project root."""
    inventory = os.path.dirname(os.environ["MOLECULE_INVENTORY_FILE"])
    return ansible_playbook("-i", inventory, f"playbooks/{name}", *args)
