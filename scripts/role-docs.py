#!/usr/bin/env python3
"""Write each role's README variables table from its meta/argument_specs.yml (the one source).

A README keeps its hand-written prose; only the block between the two role-docs markers is
generated: the `main` entry point's variables (type, default, meaning) and the role's other
entry points (`tasks_from`). Edit the spec, then run this.

    python scripts/role-docs.py           rewrite the blocks
    python scripts/role-docs.py --check   exit 1 naming each README that differs (used by the tests)
"""

from __future__ import annotations

import argparse
import difflib
import json
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
BEGIN = "<!-- role-docs: begin (generated from meta/argument_specs.yml by scripts/role-docs.py) -->"
END = "<!-- role-docs: end -->"


def load_specs(role: Path) -> dict:
    return yaml.safe_load((role / "meta" / "argument_specs.yml").read_text())["argument_specs"]


def text(description: str | list[str]) -> str:
    return " ".join(description) if isinstance(description, list) else description


def cell(value: str) -> str:
    """Markdown table cell: a pipe would end the cell."""
    return value.replace("|", "\\|")


def code(value) -> str:
    """A value as it would be written in YAML flow style, in a code span."""
    shown = value if isinstance(value, str) and value else json.dumps(value)
    return f"`{shown}`"


def kind(option: dict) -> str:
    if option.get("type") == "list" and "elements" in option:
        return f"list of {option['elements']}"
    return option.get("type", "str")


def default(option: dict) -> str:
    if option.get("required"):
        shown = "required"
    elif "default" in option:
        shown = code(option["default"])
    else:
        shown = "(none)"
    return f"{shown}, secret (never logged)" if option.get("no_log") else shown


def meaning(option: dict) -> str:
    out = text(option.get("description", ""))
    if "choices" in option:
        out += " One of: " + ", ".join(code(c) for c in option["choices"]) + "."
    return out


def block(specs: dict) -> str:
    lines = [BEGIN, "", "| Variable | Type | Default | Meaning |", "|---|---|---|---|"]
    for name, option in specs["main"].get("options", {}).items():
        row = [f"`{name}`", kind(option), default(option), meaning(option)]
        lines.append("| " + " | ".join(cell(c) for c in row) + " |")
    others = [(name, spec) for name, spec in specs.items() if name != "main"]
    if others:
        lines += ["", "Entry points besides `main` (`tasks_from`):", ""]
        lines += [f"- `{name}`: {spec.get('short_description', '')}" for name, spec in others]
    lines += ["", END]
    return "\n".join(lines)


def render(readme: str, specs: dict, path: Path) -> str:
    if readme.count(BEGIN) != 1 or readme.count(END) != 1:
        raise SystemExit(f"{path}: needs exactly one pair of role-docs markers:\n{BEGIN}\n{END}")
    head, rest = readme.split(BEGIN)
    _, tail = rest.split(END)
    return head + block(specs) + tail


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check", action="store_true", help="change nothing; exit 1 on a difference"
    )
    args = parser.parse_args()
    stale = []
    for role in sorted(p.parent.parent for p in ROOT.glob("roles/*/meta/argument_specs.yml")):
        path = role / "README.md"
        if not path.exists():
            print(f"{path.relative_to(ROOT)}: missing (every role documents its variables)")
            stale.append(path)
            continue
        old = path.read_text()
        new = render(old, load_specs(role), path.relative_to(ROOT))
        if new == old:
            continue
        stale.append(path)
        if args.check:
            diff = difflib.unified_diff(
                old.splitlines(),
                new.splitlines(),
                str(path.relative_to(ROOT)),
                "generated",
                lineterm="",
            )
            print("\n".join(diff))
        else:
            path.write_text(new)
            print(f"wrote {path.relative_to(ROOT)}")
    if args.check and stale:
        names = ", ".join(str(p.relative_to(ROOT)) for p in stale)
        print(f"role-docs: {names} differ from the specs; run: python scripts/role-docs.py")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
