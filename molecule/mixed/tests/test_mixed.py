"""A Debian 12 node and a Debian 13 node deployed by one run of site.yml: each got the release
built for its own Python and glibc, the engines its release ships, and the stack serves on both.
Then what must stop a run before it touches any host: a node whose ABI the lock cannot serve,
and a node on an unsupported release. Tests run in file order; each leaves both nodes serving."""

from __future__ import annotations

import re
import shutil

import pytest
import testinfra
from conftest import NODES, ROOT, playbook
from helpers.platforms import role_values, supported

CURRENT = "/opt/wsnotify/current"
# docopt 0.6.2 is published as a source archive only: no wheel exists for any ABI.
SDIST_ONLY = (
    "docopt==0.6.2 \\\n"
    "    --hash=sha256:49b3a825280bd66b3aa83585ef59c4a8c82f2c8a522dbe754a8bc8d08c85c491\n"
)


def host(name: str):
    return testinfra.get_host(f"podman://{name}")


def state(name: str) -> tuple[str, str]:
    """What a deploy changes on a node: its current release and the service's process."""
    h = host(name)
    return h.file(CURRENT).linked_to, h.check_output("systemctl show -p MainPID --value wsnotify")


@pytest.mark.parametrize("name", NODES)
def test_each_node_runs_the_release_built_for_its_own_abi(name):
    h = host(name)
    python = h.check_output("python3 -c 'import sys; print(*sys.version_info[:2], sep=\"\")'")
    glibc = role_values("wsnotify", NODES[name])["__wsnotify_glibc"].replace(".", "_")
    release = h.file(CURRENT).linked_to
    assert release.endswith(f"-cp{python}-manylinux_{glibc}_x86_64"), release
    # The compiled wheels installed are the node's: e.g. uvloop's extension for its Python.
    venv = h.check_output(f"ls {release}/venv/lib")
    assert venv == f"python{python[0]}.{python[1:]}", venv
    assert h.run(f"{release}/venv/bin/python -c 'import uvloop, asyncpg, aiohttp'").rc == 0


def test_both_releases_come_from_the_same_source():
    ids = [host(name).file(CURRENT).linked_to.rsplit("/", 1)[1] for name in NODES]
    version_and_hash = {re.sub(r"-cp\d+-manylinux_.*$", "", release) for release in ids}
    assert len(version_and_hash) == 1, ids


@pytest.mark.parametrize("name", NODES)
def test_each_node_runs_its_releases_engines(name):
    h = host(name)
    engine = role_values("redis", NODES[name])["__redis_distribution_engines"][0]
    unit = {"valkey": "valkey-server", "redis": "redis-server"}[engine]
    assert h.service(unit).is_running and h.service(unit).is_enabled
    major = role_values("postgresql", NODES[name])["__postgresql_version"]
    assert h.service(f"postgresql@{major}-main").is_running
    assert h.service("wsnotify").is_running and h.service("nginx").is_running


def test_verify_passes_on_both_nodes():
    run = playbook("verify.yml")
    assert run.rc == 0, run
    for name in NODES:
        assert re.search(rf"{name}\s*:\s*ok=\d+\s+changed=0\s+unreachable=0\s+failed=0", run.out)


def test_a_node_whose_abi_no_locked_wheel_serves_stops_the_run_before_any_host_changes(tmp_path):
    before = {name: state(name) for name in NODES}
    source = tmp_path / "service"
    shutil.copytree(ROOT / "service", source, ignore=shutil.ignore_patterns("*.egg-info"))
    with open(source / "requirements.lock", "a") as lock:
        lock.write(SDIST_ONLY)
    run = playbook("site.yml", "-e", f"wsnotify_source_dir={source}")
    assert run.rc != 0, run
    assert re.search(r"Cannot build wsnotify for cp3\d+-manylinux_2_\d+_x86_64: no wheel of "
                     r"docopt==0\.6\.2", run.out), run  # fmt: skip
    assert "Nothing was changed." in run.out
    assert "Ensure Redis runs as the notification bus" not in run.out, "a role play started"
    assert {name: state(name) for name in NODES} == before


def test_an_unsupported_release_is_named_and_no_host_changes():
    name = "wsnotify-mixed-12"
    h = host(name)
    before = {node: state(node) for node in NODES}
    files = ("/etc/os-release", "/etc/debian_version")
    saved = {path: h.file(path).content_string for path in files}
    try:
        # What a Debian 11 host reports (its files as bullseye ships them).
        # (Ansible reads the codename from PRETTY_NAME, the point release from debian_version.)
        h.check_output("sed -i 's/^VERSION_ID=.*/VERSION_ID=\"11\"/; s/^VERSION=.*/VERSION=\"11 "
                       "(bullseye)\"/; s/^VERSION_CODENAME=.*/VERSION_CODENAME=bullseye/; "
                       "s/^PRETTY_NAME=.*/PRETTY_NAME=\"Debian GNU\\/Linux 11 (bullseye)\"/' "
                       "/etc/os-release && echo 11.11 > /etc/debian_version")  # fmt: skip
        run = playbook("site.yml")
    finally:
        for path, content in saved.items():
            h.check_output(f"cat > {path} <<'EOF'\n{content}EOF")
    assert run.rc != 0, run
    wanted = ", ".join(f"Debian {major} ({codename})" for codename, major in supported().items())
    line = f"{name} runs Debian 11.11 (bullseye), which these roles do not support; supported: "
    line += f"{wanted}."
    assert line in run.out and "Nothing was changed." in run.out, run
    assert "Ensure Redis runs as the notification bus" not in run.out, "a role play started"
    assert {node: state(node) for node in NODES} == before
    assert playbook("verify.yml").rc == 0
