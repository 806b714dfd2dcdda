"""Helpers for the full-stack scenario: run our playbooks against the Molecule container."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
HOST = "wsnotify-molecule"


class Run:
    def __init__(self, proc: subprocess.CompletedProcess[str]) -> None:
        self.rc = proc.returncode
        self.out = proc.stdout + proc.stderr

    def __repr__(self) -> str:  # shown by pytest when an assertion fails
        return f"rc={self.rc}\n{self.out[-6000:]}"


def playbook(name: str, *args: str) -> Run:
    """ansible-playbook playbooks/<name> against the Molecule instance, from the project root."""
    inventory = os.path.dirname(os.environ["MOLECULE_INVENTORY_FILE"])
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_FORCE_COLOR="0")
    proc = subprocess.run(
        ["ansible-playbook", "-i", inventory, f"playbooks/{name}", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    return Run(proc)


def record(test: str, out: str, needle: str) -> None:
    """Keep the operator-facing line holding needle, for the report: .cache/regressions.txt."""
    lines = [line.strip() for line in out.splitlines() if needle in line and "ERROR" in line]
    lines = lines or [line.strip() for line in out.splitlines() if needle in line]
    with open(ROOT / ".cache" / "regressions.txt", "a") as f:
        f.write(f"{test}: {lines[0] if lines else '(not found)'}\n")


@pytest.fixture(scope="module")
def stack():
    """The deployed stack; each test leaves it serving (it is asserted by the tests)."""
    return playbook
