"""Run tasks through ``ansible-playbook`` on localhost and get each task's result back as data.

One playbook run costs ~1-2 s, so tests group many tasks into one run (each with
``ignore_errors: true``) and then assert on the results, looked up by task name.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
PLAYBOOK = VENV_BIN / "ansible-playbook"
CALLBACKS = Path(__file__).resolve().parent / "callback_plugins"
TARGET_PYTHON = os.environ.get("TEST_TARGET_PYTHON", "/usr/bin/python3")


class PlaybookRun:
    """Results of one run: ``run[task name]`` is that task's recorded result dict."""

    def __init__(self, proc: subprocess.CompletedProcess, records: list[dict]) -> None:
        self.returncode = proc.returncode
        self.stdout = proc.stdout
        self.stderr = proc.stderr
        self.records = records
        self.by_name = {r["task"]: r for r in records}

    def __getitem__(self, name: str) -> dict:
        if name not in self.by_name:
            raise KeyError(f"no result for task {name!r}; output:\n{self.stdout}\n{self.stderr}")
        return self.by_name[name]["result"]

    def status(self, name: str) -> str:
        return self.by_name[name]["status"]


def task(name: str, module: str, args: dict, **keywords) -> dict:
    """One task calling ``module`` with ``args``; ``keywords`` are task keywords (check_mode...)."""
    return {"name": name, module: args, **keywords}


def run_tasks(
    tasks: list[dict],
    workdir: Path,
    extra_args: list[str] | None = None,
    extra_vars: dict | None = None,
) -> PlaybookRun:
    """Run ``tasks`` (module calls as dicts) in one play on localhost with the system Python.

    Every task gets ``ignore_errors: true`` so failures are recorded and the play continues.
    ``extra_vars`` are passed with ``-e @file`` (as an inventory's variables would be).
    The project's ansible.cfg applies (cwd is the project root): library/ and module_utils/.
    """
    play = [
        {
            "name": "verification modules under test",
            "hosts": "localhost",
            "gather_facts": False,
            "vars": {"ansible_python_interpreter": TARGET_PYTHON},
            "tasks": [{"ignore_errors": True, **t} for t in tasks],
        }
    ]
    workdir.mkdir(parents=True, exist_ok=True)
    playbook = workdir / "playbook.yml"
    playbook.write_text(json.dumps(play, indent=1))  # JSON is YAML
    results = workdir / "results.json"
    env = dict(os.environ)
    env.update(
        ANSIBLE_CALLBACK_PLUGINS=str(CALLBACKS),
        ANSIBLE_CALLBACKS_ENABLED="record_results",
        RECORD_RESULTS_FILE=str(results),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_LOCAL_TEMP=str(workdir / "ansible-tmp"),
        ANSIBLE_REMOTE_TEMP=str(workdir / "ansible-remote-tmp"),
        PATH=f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}",
    )
    cmd = [str(PLAYBOOK), "-i", "localhost,", "-c", "local", str(playbook), *(extra_args or [])]
    if extra_vars:
        vars_file = workdir / "extra-vars.json"
        vars_file.write_text(json.dumps(extra_vars))
        vars_file.chmod(0o600)
        cmd += ["-e", f"@{vars_file}"]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    if not results.exists():
        raise RuntimeError(f"ansible-playbook recorded nothing:\n{proc.stdout}\n{proc.stderr}")
    return PlaybookRun(proc, json.loads(results.read_text()))


def _expect(run, name: str, status: str) -> dict:
    results = run[0]
    assert results.status(name) == status, json.dumps(results[name], indent=1)
    # Both modules are read-only checks: never changed, whatever the outcome.
    assert results[name]["changed"] is False
    return results[name]


def ok(run, name: str) -> dict:
    """The result of task `name` from a (results, ...) fixture, asserting it passed."""
    return _expect(run, name, "ok")


def failed(run, name: str) -> dict:
    """The result of task `name` from a (results, ...) fixture, asserting it failed."""
    return _expect(run, name, "failed")
