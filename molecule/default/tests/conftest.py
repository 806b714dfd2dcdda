"""Helpers for the full-stack scenario: run our playbooks against the Molecule container."""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
HOST = f"wsnotify-molecule-{os.environ['WSNOTIFY_SUITE']}"  # molecule.yml names it so
sys.path.insert(0, str(ROOT / "tests"))

from helpers.ansible_run import Run, ansible_playbook  # noqa: E402


def playbook(name: str, *args: str) -> Run:
    """ansible-playbook playbooks/<name> against the Molecule instance, from the project root."""
    inventory = os.path.dirname(os.environ["MOLECULE_INVENTORY_FILE"])
    return ansible_playbook("-i", inventory, f"playbooks/{name}", *args)


def record(test: str, out: str, needle: str) -> None:
    """Keep the operator-facing line holding needle, for the report: .cache/regressions.txt."""
    lines = [line.strip() for line in out.splitlines() if needle in line and "ERROR" in line]
    lines = lines or [line.strip() for line in out.splitlines() if needle in line]
    with open(ROOT / ".cache" / "regressions.txt", "a") as f:
        f.write(f"{test}: {lines[0] if lines else '(not found)'}\n")
