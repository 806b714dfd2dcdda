"""The Debian release a Molecule scenario runs on, and the roles' values for it, read from the
roles themselves (roles/preflight/vars/main.yml, roles/<role>/vars/Debian-<major>.yml): tests
assert what the roles chose, never a second copy of a version number."""

from __future__ import annotations

import os
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
# scripts/test-molecule.sh exports the suite under test; Debian 13 is the default target.
SUITE = os.environ.get("WSNOTIFY_SUITE", "trixie")


def supported() -> dict[str, str]:
    """Codename -> major version of every supported Debian release."""
    platforms = yaml.safe_load((ROOT / "roles/preflight/vars/main.yml").read_text())
    return {
        codename: major for major, codename in platforms["__preflight_platforms"]["Debian"].items()
    }


def role_values(role: str, suite: str = SUITE) -> dict:
    """A role's per-release values (its vars/Debian-<major>.yml) on Debian ``suite``."""
    path = ROOT / "roles" / role / "vars" / f"Debian-{supported()[suite]}.yml"
    return yaml.safe_load(path.read_text())
