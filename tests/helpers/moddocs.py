"""The modules' documentation as ansible-doc renders it (doc fragments merged), their real
argument spec, and the keys their results may carry according to RETURN.

The argument spec is captured the way ansible-test validate-modules does: import the module
with ``ansible.module_utils`` extended by this project's module_utils/ and run ``main()`` with
an ``AnsibleModule`` that records its keyword arguments and stops.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from unittest import mock

import ansible.module_utils

ROOT = Path(__file__).resolve().parents[2]
MODULES = ("websocket_handshake", "notification_roundtrip")
# Keys every module result has or may have, documented by Ansible itself, not in RETURN
# (ansible-core adds ``exception`` to every failure, "(traceback unavailable)" without one,
# and ``failed_when_result`` to a task with failed_when).
STANDARD_RESULT_KEYS = {
    "changed",
    "failed",
    "msg",
    "invocation",
    "exception",
    "failed_when_result",
    "warnings",
    "deprecations",
}


@functools.cache
def rendered() -> dict:
    """``ansible-doc --json`` of both modules: {name: {"doc", "examples", "return", ...}}."""
    out = subprocess.run(
        [str(Path(sys.executable).parent / "ansible-doc"), "-M", "library", "--json", *MODULES],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    return json.loads(out.stdout)


def returns(name: str) -> dict:
    return rendered()[name]["return"]


class _Captured(Exception):
    pass


def module_arguments(name: str) -> dict:
    """The keyword arguments ``main()`` passes to AnsibleModule (argument_spec, ...)."""
    project_utils = str(ROOT / "module_utils")
    if project_utils not in ansible.module_utils.__path__:
        ansible.module_utils.__path__.append(project_utils)
    spec = importlib.util.spec_from_file_location(f"_doc_{name}", ROOT / "library" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    def record(**kwargs):
        raise _Captured(kwargs)

    with mock.patch.object(module, "AnsibleModule", record):
        try:
            module.main()
        except _Captured as captured:
            return captured.args[0]
    raise AssertionError(f"{name}.main() did not create an AnsibleModule")


def key_paths(result: dict, documented: dict, prefix: str = "") -> tuple[set[str], set[str]]:
    """(documented key paths the result has, key paths RETURN does not document), following
    ``contains`` into dicts (``tls.subject``); Ansible's standard keys left out."""
    seen, unknown = set(), set()
    for key, value in result.items():
        if not prefix and (key in STANDARD_RESULT_KEYS or key.startswith("_ansible")):
            continue
        if key not in documented:
            unknown.add(prefix + key)
            continue
        seen.add(prefix + key)
        contains = documented[key].get("contains")
        if contains and isinstance(value, dict):
            inner_seen, inner_unknown = key_paths(value, contains, f"{prefix}{key}.")
            seen |= inner_seen
            unknown |= inner_unknown
    return seen, unknown


def documented_keys(documented: dict, prefix: str = "") -> set[str]:
    """Every key path RETURN documents (``tls.subject`` for a ``contains`` entry)."""
    keys = set()
    for key, doc in documented.items():
        keys.add(prefix + key)
        if doc.get("contains"):
            keys |= documented_keys(doc["contains"], f"{key}.")
    return keys


def always_returned(documented: dict) -> set[str]:
    """Top-level keys RETURN promises in every result."""
    return {key for key, doc in documented.items() if doc.get("returned") == "always"}
