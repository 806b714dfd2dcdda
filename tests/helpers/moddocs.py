"""Read a module's DOCUMENTATION / EXAMPLES / RETURN and argument_spec from its source, without
importing it (modules import ``ansible.module_utils.*``, which only resolve inside Ansible)."""

from __future__ import annotations

import ast
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def module_tree(name: str) -> ast.Module:
    return ast.parse((ROOT / "library" / f"{name}.py").read_text())


def raw_blocks(name: str) -> dict[str, str]:
    """The YAML text of DOCUMENTATION, EXAMPLES and RETURN."""
    blocks = {}
    for node in module_tree(name).body:
        target = node.targets[0] if isinstance(node, ast.Assign) else None
        if isinstance(target, ast.Name) and target.id in ("DOCUMENTATION", "EXAMPLES", "RETURN"):
            blocks[target.id] = node.value.value
    return blocks


def doc_blocks(name: str) -> dict:
    return {key: yaml.safe_load(text) for key, text in raw_blocks(name).items()}


def argument_spec(name: str) -> dict:
    """argument_spec=dict(name=dict(...), ...) of the AnsibleModule(...) call, as literals."""
    for node in ast.walk(module_tree(name)):
        if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "AnsibleModule":
            spec_call = next(k.value for k in node.keywords if k.arg == "argument_spec")
            return {
                opt.arg: {k.arg: ast.literal_eval(k.value) for k in opt.value.keywords}
                for opt in spec_call.keywords
            }
    raise AssertionError(f"no AnsibleModule(argument_spec=...) call in {name}")
