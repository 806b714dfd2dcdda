"""The modules' DOCUMENTATION / EXAMPLES / RETURN: rendered by ansible-doc, consistent with
each module's argument_spec (read from the source, as ansible-test validate-modules does).
That the EXAMPLES also run as written is tested in test_modules_nginx.py."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from helpers.moddocs import argument_spec, doc_blocks

ROOT = Path(__file__).resolve().parent.parent
MODULES = ["websocket_handshake", "notification_roundtrip"]
SECRETS = {"token", "jwt_secret", "publish_token"}


def test_ansible_doc_renders_both_modules():
    out = subprocess.run(
        [str(Path(sys.executable).parent / "ansible-doc"), "-M", "library", *MODULES],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "[WARNING]" not in out.stderr and "[ERROR]" not in out.stderr, out.stderr
    for name in MODULES:
        assert f"MODULE {name}" in out.stdout.replace("\x1b[1m", "").replace("\x1b[0m", "")
    assert "expect_close_code" in out.stdout and "latency_ms" in out.stdout


@pytest.mark.parametrize("name", MODULES)
def test_documentation_matches_argument_spec(name):
    docs = doc_blocks(name)
    spec = argument_spec(name)
    options = docs["DOCUMENTATION"]["options"]
    assert set(options) == set(spec)
    for opt, arg in spec.items():
        doc = options[opt]
        assert doc["type"] == arg["type"], opt
        assert doc.get("default") == arg.get("default"), opt
        assert doc.get("choices") == arg.get("choices"), opt
        assert bool(doc.get("required")) == bool(arg.get("required")), opt
        assert doc.get("elements") == arg.get("elements"), opt
        assert bool(arg.get("no_log")) == (opt in SECRETS), opt
    assert docs["RETURN"], "RETURN must document the results"


@pytest.mark.parametrize("name", MODULES)
def test_examples_use_documented_options_only(name):
    docs = doc_blocks(name)
    options = set(docs["DOCUMENTATION"]["options"])
    used = [t for t in docs["EXAMPLES"] if name in t]
    assert used, "EXAMPLES must call the module"
    for example in used:
        assert set(example[name]) <= options, example["name"]
        assert example["name"][0].isupper()
