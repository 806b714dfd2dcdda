"""Each role variable is written once: meta/argument_specs.yml is the source, and what is derived
from it (defaults/main.yml, the README tables, the cross-role wiring) is checked against it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.parsing.vault import VaultLib, VaultSecret

ROOT = Path(__file__).resolve().parent.parent
ROLES = sorted(p.parent.parent.name for p in ROOT.glob("roles/*/meta/argument_specs.yml"))


def options(role: str) -> dict:
    specs = yaml.safe_load((ROOT / "roles" / role / "meta/argument_specs.yml").read_text())
    return specs["argument_specs"]["main"]["options"]


def defaults(role: str) -> dict:
    return yaml.safe_load((ROOT / "roles" / role / "defaults/main.yml").read_text()) or {}


def test_every_role_is_checked():
    assert set(ROLES) == {p.name for p in (ROOT / "roles").iterdir()}
    assert {"nginx_site", "postgresql", "preflight", "redis", "wsnotify"} <= set(ROLES)


@pytest.mark.parametrize("role", ROLES)
def test_defaults_file_sets_exactly_the_spec_defaults(role):
    spec = {name: o["default"] for name, o in options(role).items() if "default" in o}
    have = defaults(role)
    assert sorted(have.keys() - spec.keys()) == [], (
        "set in defaults/main.yml, no default in the spec"
    )
    assert sorted(spec.keys() - have.keys()) == [], (
        "default in the spec, missing in defaults/main.yml"
    )
    differ = {name: (have[name], spec[name]) for name in spec if have[name] != spec[name]}
    assert differ == {}, "(defaults/main.yml, spec) values differ"


@pytest.mark.parametrize("role", ROLES)
def test_every_variable_is_required_or_has_a_default(role):
    loose = [n for n, o in options(role).items() if not o.get("required") and "default" not in o]
    assert loose == [], "neither required nor defaulted: the role would see them undefined"
    both = [n for n, o in options(role).items() if o.get("required") and "default" in o]
    assert both == [], "required and defaulted at once"


@pytest.mark.parametrize("role", ROLES)
def test_spec_defaults_pass_the_spec_itself(role):
    """A default of the wrong type or outside its choices would fail every run of the role."""
    spec = options(role)
    values = {n: o["default"] for n, o in spec.items() if "default" in o}
    values |= {n: "x" * 32 for n, o in spec.items() if o.get("required")}
    result = ArgumentSpecValidator(spec).validate(values)
    assert result.error_messages == []


def run_role_docs(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(cwd / "scripts/role-docs.py"), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_readme_tables_are_the_generated_ones():
    run = run_role_docs("--check")
    assert run.returncode == 0, run.stdout + run.stderr


def test_role_docs_check_names_a_stale_readme_and_rewriting_fixes_it(tmp_path):
    """The check above can fail: on a copy whose spec changed, --check names the README."""
    copy = tmp_path / "tree"
    (copy / "scripts").mkdir(parents=True)
    (copy / "scripts/role-docs.py").write_text((ROOT / "scripts/role-docs.py").read_text())
    role = copy / "roles/redis"
    for part in ("README.md", "meta/argument_specs.yml"):
        (role / part).parent.mkdir(parents=True, exist_ok=True)
        (role / part).write_text((ROOT / "roles/redis" / part).read_text())
    spec = role / "meta/argument_specs.yml"
    spec.write_text(spec.read_text().replace("default: 6379", "default: 6380"))
    run = run_role_docs("--check", cwd=copy)
    assert run.returncode == 1
    assert "roles/redis/README.md" in run.stdout and "`6380`" in run.stdout, run.stdout
    assert run_role_docs(cwd=copy).returncode == 0
    assert "| `redis_port` | int | `6380` |" in (role / "README.md").read_text()
    assert run_role_docs("--check", cwd=copy).returncode == 0


def inventory_vars(path: Path) -> dict:
    """An inventory's group_vars/all (the production vault opens with its documented password)."""
    data = path.read_bytes()
    if data.startswith(b"$ANSIBLE_VAULT"):
        secret = VaultSecret(b"example-only-not-a-secret")
        data = VaultLib([("default", secret)]).decrypt(data)
    if path.name == "molecule.yml":  # a scenario's inventory is in its provisioner section
        scenario = yaml.safe_load(data)["provisioner"]["inventory"]
        return scenario.get("group_vars", {}).get("all", {})
    return yaml.safe_load(data) or {}


def wired() -> set[str]:
    return set(yaml.safe_load((ROOT / "playbooks/group_vars/all.yml").read_text()))


def test_playbook_wiring_sets_only_declared_role_variables():
    declared = {name for role in ROLES for name in options(role)}
    role_vars = {n for n in wired() if any(n.startswith(f"{r}_") for r in ROLES)}
    assert role_vars, "playbooks/group_vars/all.yml wires no role variable"
    assert sorted(role_vars - declared) == []


INVENTORY_VARS = sorted(ROOT.glob("inventories/*/group_vars/all/*.yml")) + sorted(
    ROOT.glob("molecule/*/molecule.yml")
)


@pytest.mark.parametrize("path", INVENTORY_VARS, ids=lambda p: str(p.relative_to(ROOT)))
def test_inventories_do_not_set_what_the_playbooks_derive(path):
    """playbooks/group_vars/all.yml outranks an inventory's group_vars/all: a value set there
    would be silently ignored. Override a derived value per group or host instead."""
    shadowed = sorted(set(inventory_vars(path)) & wired())
    assert shadowed == []
