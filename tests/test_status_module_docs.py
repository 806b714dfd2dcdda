"""library/wsnotify_status.py: its DOCUMENTATION renders and matches its argument spec (it takes
none of the connection options, so tests/test_module_docs.py's fragment checks do not apply)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml
from helpers.moddocs import module_arguments

ROOT = Path(__file__).resolve().parent.parent


def test_documentation_renders_and_matches_the_argument_spec():
    out = subprocess.run(
        [str(Path(sys.executable).parent / "ansible-doc"), "-M", "library", "--json",
         "wsnotify_status"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0 and "[WARNING]" not in out.stderr, out.stderr
    rendered = json.loads(out.stdout)["wsnotify_status"]
    options = rendered["doc"]["options"]
    arguments = module_arguments("wsnotify_status")
    spec = arguments["argument_spec"]
    assert set(options) == set(spec)
    for name, arg in spec.items():
        assert options[name]["type"] == arg["type"], name
        assert options[name].get("default") == arg.get("default"), name
    assert arguments["supports_check_mode"] is True
    assert {"lines", "problems"} <= set(rendered["return"])
    examples = yaml.safe_load(rendered["examples"])
    used = [task["wsnotify_status"] for task in examples if "wsnotify_status" in task]
    assert used and all(set(call) <= set(options) for call in used)
