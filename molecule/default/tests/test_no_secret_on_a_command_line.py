"""No secret ever appears on a command line while the stack is verified.

A command line is readable by every local user (`ps`, /proc/<pid>/cmdline); no_log hides only
Ansible's own output. (The probe token was once minted by a process given the JWT secret as an
argument; it is now minted inside Ansible's own process.) While verify.yml runs against the
container, every process's command line is sampled on the controller (which sees the
container's processes too) and inside the container; none may hold any of the four secrets.
"""

import json
import secrets
import subprocess
import sys
import time

import yaml
from conftest import HOST, ROOT, playbook

testinfra_hosts = [f"podman://{HOST}"]

SAMPLER = ROOT / "tests/helpers/proc_sampler.py"
SCENARIO = yaml.safe_load((ROOT / "molecule/default/molecule.yml").read_text())
NAMES = (
    "postgresql_db_password",
    "redis_password",
    "wsnotify_jwt_secret",
    "wsnotify_publish_token",
)
SECRETS = {n: SCENARIO["provisioner"]["inventory"]["group_vars"]["all"][n] for n in NAMES}


def start(cmd: list[str]) -> subprocess.Popen:
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready", cmd
    return proc


def finish(proc: subprocess.Popen) -> dict:
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    return json.loads(out)


def test_verify_puts_no_secret_on_any_command_line(host):
    canary = f"canary-{secrets.token_hex(8)}"
    on_controller = start([sys.executable, str(SAMPLER)])
    in_container = start(["podman", "exec", "-i", HOST, "python3", "-c", SAMPLER.read_text()])
    try:
        # The samplers must catch a process as short-lived as a Python interpreter's start.
        subprocess.run(["sh", "-c", "sleep 0.05", canary], check=True)
        host.run(f"sh -c 'sleep 0.05' {canary}-in")
        run = playbook("verify.yml")
        time.sleep(0.1)
    finally:
        seen_outside, seen_inside = finish(on_controller), finish(in_container)
    assert run.rc == 0, run
    outside, inside = seen_outside["cmdlines"], seen_inside["cmdlines"]
    print(f"sampled {len(outside)} command lines outside, {len(inside)} inside the container")
    # The sampling saw what ran: the canaries, the playbook, the modules in the container.
    assert any(canary in c for c in outside) and any(f"{canary}-in" in c for c in inside)
    assert any("ansible-playbook" in c and "verify.yml" in c for c in outside)
    # Over SSH with pipelining each module reaches the container on the interpreter's stdin
    # (its code is never a file or an argument): what runs there is Ansible's interpreter command.
    assert any("/usr/bin/python3 && sleep 0" in c for c in inside), inside
    for name, value in SECRETS.items():
        assert [c for c in outside + inside if value in c] == [], f"{name} on a command line"
