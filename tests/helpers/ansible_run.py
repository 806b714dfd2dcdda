"""The one way tests run ``ansible-playbook``, in every test root (tests/, molecule/*/tests).

``ansible_playbook(*args)`` runs it from the project root with the project's ansible.cfg, roles,
modules and collections, and returns its exit code and output. ``run_tasks(tasks, workdir)``
builds a play on localhost from module calls and returns each task's result as data: one run
costs ~1-2 s, so tests group many tasks into one run (each with ``ignore_errors: true``) and
then assert on the results, looked up by task name.
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


class Run:
    """One ansible-playbook run: ``rc``, ``stdout``, ``stderr`` and ``out`` (both)."""

    def __init__(self, rc: int, stdout: str, stderr: str) -> None:
        self.rc = self.returncode = rc
        self.stdout, self.stderr = stdout, stderr
        self.out = stdout + stderr

    def __repr__(self) -> str:  # shown by pytest when an assertion on a run fails
        return f"rc={self.rc}\n{self.out[-6000:]}"


def ansible_playbook(*args: str, env: dict[str, str] | None = None, timeout: int = 900) -> Run:
    """``ansible-playbook *args`` from the project root, with its ansible.cfg and paths.

    ``env`` adds to (or overrides) the environment; colour is off so tests can search the output.
    """
    run_env = dict(
        os.environ,
        ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
        ANSIBLE_ROLES_PATH=str(ROOT / "roles"),
        ANSIBLE_LIBRARY=str(ROOT / "library"),
        ANSIBLE_MODULE_UTILS=str(ROOT / "module_utils"),
        ANSIBLE_COLLECTIONS_PATH=str(ROOT / ".collections"),
        ANSIBLE_FORCE_COLOR="0",
        ANSIBLE_NOCOLOR="1",
        PATH=f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    )
    run_env.update(env or {})
    proc = subprocess.run(
        [str(PLAYBOOK), *args],
        cwd=ROOT,
        env=run_env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return Run(proc.returncode, proc.stdout, proc.stderr)


class PlaybookRun(Run):
    """Results of one run of ``run_tasks``: ``run[task name]`` is that task's recorded result."""

    def __init__(self, run: Run, records: list[dict]) -> None:
        super().__init__(run.rc, run.stdout, run.stderr)
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
    env = {
        "ANSIBLE_CALLBACK_PLUGINS": str(CALLBACKS),
        "ANSIBLE_CALLBACKS_ENABLED": "record_results",
        "RECORD_RESULTS_FILE": str(results),
        "ANSIBLE_LOCAL_TEMP": str(workdir / "ansible-tmp"),
        "ANSIBLE_REMOTE_TEMP": str(workdir / "ansible-remote-tmp"),
    }
    args = ["-i", "localhost,", "-c", "local", str(playbook), *(extra_args or [])]
    if extra_vars:
        vars_file = workdir / "extra-vars.json"
        vars_file.write_text(json.dumps(extra_vars))
        vars_file.chmod(0o600)
        args += ["-e", f"@{vars_file}"]
    run = ansible_playbook(*args, env=env, timeout=300)
    if not results.exists():
        raise RuntimeError(f"ansible-playbook recorded nothing:\n{run.out}")
    return PlaybookRun(run, json.loads(results.read_text()))


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
