"""The modules' DOCUMENTATION / EXAMPLES / RETURN: rendered by ansible-doc with the shared doc
fragment, consistent with each module's real argument_spec (captured from main(), as ansible-test
validate-modules does), and the fragment consistent with the shared spec in module_utils.
That the EXAMPLES run as written is tested in test_modules_nginx.py; that RETURN documents
exactly what the modules return, from real runs, in test_modules_direct.py and
test_modules_nginx.py."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from helpers.moddocs import MODULES, module_arguments, rendered

from module_utils.wsnotify_connection import (
    CONNECTION_ARGUMENT_SPEC,
    CONNECTION_MUTUALLY_EXCLUSIVE,
    CONNECTION_REQUIRED_BY,
)

ROOT = Path(__file__).resolve().parent.parent
SECRETS = {"token", "jwt_secret", "publish_token"}
FRAGMENT = ROOT / "plugins" / "doc_fragments" / "wsnotify_connection.py"


def ansible_doc(*args: str, cwd: Path = ROOT, env: dict | None = None):
    return subprocess.run(
        [str(Path(sys.executable).parent / "ansible-doc"), *args],
        cwd=cwd, capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip


def test_ansible_doc_renders_both_modules():
    out = ansible_doc("-M", "library", *MODULES)
    assert out.returncode == 0, out.stderr
    assert "[WARNING]" not in out.stderr and "[ERROR]" not in out.stderr, out.stderr
    text = out.stdout.replace("\x1b[1m", "").replace("\x1b[0m", "")
    for name in MODULES:
        assert f"MODULE {name}" in text
    assert "expect_close_code" in out.stdout and "latency_ms" in out.stdout
    assert text.count("jwt_secret  The service's") == 2  # the fragment, in both modules


def test_the_fragment_is_found_through_ansible_cfg_from_any_directory(tmp_path):
    """ansible.cfg's doc_fragment_plugins is relative to the file, not to the caller's cwd."""
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env["ANSIBLE_CONFIG"] = str(ROOT / "ansible.cfg")
    out = ansible_doc("-M", str(ROOT / "library"), "websocket_handshake", cwd=tmp_path, env=env)
    assert out.returncode == 0 and "jwt_secret" in out.stdout, out.stderr
    env["ANSIBLE_CONFIG"] = str(tmp_path / "none.cfg")  # without it, the fragment is missing
    missing = ansible_doc("-M", str(ROOT / "library"), "websocket_handshake", cwd=tmp_path, env=env)
    assert "wsnotify_connection" in missing.stderr


@pytest.mark.parametrize("name", MODULES)
def test_documentation_matches_argument_spec(name):
    doc = rendered()[name]["doc"]
    arguments = module_arguments(name)
    spec = arguments["argument_spec"]
    options = doc["options"]
    assert set(options) == set(spec)
    for opt, arg in spec.items():
        documented = options[opt]
        assert documented["type"] == arg["type"], opt
        assert documented.get("default") == arg.get("default"), opt
        assert documented.get("choices") == arg.get("choices"), opt
        assert bool(documented.get("required")) == bool(arg.get("required")), opt
        assert documented.get("elements") == arg.get("elements"), opt
        assert bool(arg.get("no_log")) == (opt in SECRETS), opt
    assert arguments["supports_check_mode"] is True
    assert doc["attributes"]["check_mode"]["support"] == "full"
    assert doc["attributes"]["diff_mode"]["support"] == "none"
    assert set(CONNECTION_MUTUALLY_EXCLUSIVE) <= set(arguments["mutually_exclusive"])
    assert arguments["required_by"] == CONNECTION_REQUIRED_BY
    assert rendered()[name]["return"], "RETURN must document the results"


def test_the_fragment_documents_exactly_the_shared_spec():
    loader = importlib.util.spec_from_file_location("wsnotify_connection_fragment", FRAGMENT)
    fragment = importlib.util.module_from_spec(loader)
    loader.loader.exec_module(fragment)
    options = yaml.safe_load(fragment.ModuleDocFragment.DOCUMENTATION)["options"]
    assert set(options) == set(CONNECTION_ARGUMENT_SPEC)
    for name in MODULES:
        own = set(module_arguments(name)["argument_spec"]) - set(CONNECTION_ARGUMENT_SPEC)
        module_doc = yaml.safe_load(
            (ROOT / "library" / f"{name}.py").read_text().split('DOCUMENTATION = r"""')[1]
            .split('"""')[0]
        )  # fmt: skip
        # A module documents only its own options: a shared one is written once, in the fragment.
        assert set(module_doc["options"]) == own, name


@pytest.mark.parametrize("name", MODULES)
def test_examples_use_documented_options_only(name):
    options = set(rendered()[name]["doc"]["options"])
    examples = yaml.safe_load(rendered()[name]["examples"])
    used = [t for t in examples if name in t]
    assert used, "EXAMPLES must call the module"
    for example in examples:
        assert example["name"][0].isupper(), example["name"]
    for example in used:
        assert set(example[name]) <= options, example["name"]
