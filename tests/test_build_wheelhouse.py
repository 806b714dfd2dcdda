"""The release's wheelhouse, built on the controller for each target's ABI, never for the
controller's own Python (roles/wsnotify/files/build_wheelhouse.py, run as the role runs it).

Real downloads from the package index, checked against service/requirements.lock's hashes.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BUILD = ROOT / "roles/wsnotify/files/build_wheelhouse.py"
SOURCE = ROOT / "service"
DEBIAN_13 = "cp313-manylinux_2_41_x86_64"
DEBIAN_12 = "cp311-manylinux_2_36_x86_64"
# docopt 0.6.2 is published as a source archive only: no binary wheel exists for any ABI.
SDIST_ONLY = (
    "docopt==0.6.2 \\\n"
    "    --hash=sha256:49b3a825280bd66b3aa83585ef59c4a8c82f2c8a522dbe754a8bc8d08c85c491\n"
)


def build(source: Path, cache: Path, *abis: str) -> tuple[int, dict]:
    proc = subprocess.run(
        [sys.executable, str(BUILD), str(source), str(cache), *abis],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert proc.stdout.strip(), proc.stderr
    return proc.returncode, json.loads(proc.stdout)


def source_copy(tmp_path: Path) -> Path:
    copy = tmp_path / "service"
    shutil.copytree(SOURCE, copy, ignore=shutil.ignore_patterns("*.egg-info", "__pycache__"))
    return copy


def wheels(tarball: str) -> list[str]:
    with tarfile.open(tarball) as tar:
        return tar.getnames()


@pytest.fixture(scope="module")
def both(tmp_path_factory):
    cache = tmp_path_factory.mktemp("wheelhouse")
    rc, out = build(SOURCE, cache, DEBIAN_13, DEBIAN_12)
    assert rc == 0, out
    return cache, out


def test_each_abi_gets_its_own_release_of_the_same_source(both):
    _, out = both
    r13, r12 = out["targets"][DEBIAN_13], out["targets"][DEBIAN_12]
    assert r13["release"].endswith("-" + DEBIAN_13) and r12["release"].endswith("-" + DEBIAN_12)
    # Same version and source hash: only the ABI part differs.
    assert r13["release"].removesuffix(DEBIAN_13) == r12["release"].removesuffix(DEBIAN_12)
    assert r13["built"] and r12["built"]


def test_the_compiled_wheels_are_the_targets_not_the_controllers(both):
    _, out = both
    for abi, tag in ((DEBIAN_13, "cp313"), (DEBIAN_12, "cp311")):
        names = wheels(out["targets"][abi]["tarball"])
        for package in ("uvloop", "asyncpg", "aiohttp"):
            [wheel] = [n for n in names if n.lower().startswith(package + "-")]
            assert wheel.split("-")[2] == tag, (abi, wheel)
            assert "manylinux" in wheel and wheel.endswith("x86_64.whl"), (abi, wheel)
        assert any(n.startswith("wsnotify-") and n.endswith("-py3-none-any.whl") for n in names)


def test_a_second_build_reuses_the_cached_tarballs(both):
    cache, first = both
    rc, again = build(SOURCE, cache, DEBIAN_12, DEBIAN_13)
    assert rc == 0, again
    for abi in (DEBIAN_13, DEBIAN_12):
        assert again["targets"][abi] == {**first["targets"][abi], "built": False}


def test_a_changed_source_file_is_a_new_release(tmp_path, both):
    _, first = both
    copy = source_copy(tmp_path)
    module = next((copy / "src").rglob("hub.py"))
    module.write_text(module.read_text() + "\n# changed\n")
    rc, out = build(copy, tmp_path / "cache", DEBIAN_13)
    assert rc == 0, out
    assert out["targets"][DEBIAN_13]["release"] != first["targets"][DEBIAN_13]["release"]


def test_a_locked_package_without_a_wheel_for_the_abi_is_named_and_nothing_is_built(tmp_path):
    copy = source_copy(tmp_path)
    with open(copy / "requirements.lock", "a") as lock:
        lock.write(SDIST_ONLY)
    cache = tmp_path / "cache"
    rc, out = build(copy, cache, DEBIAN_13)
    assert rc == 3, out
    assert out["abi"] == DEBIAN_13
    assert "no wheel of docopt==0.6.2" in out["error"] and DEBIAN_13 in out["error"], out
    assert not list(cache.glob("*.tar")) and not list(cache.glob("*.partial"))
    assert not list(cache.glob("build-*")), "a failed build leaves its work directory behind"


def test_a_python_older_than_the_package_requires_is_named(tmp_path):
    rc, out = build(SOURCE, tmp_path, "cp39-manylinux_2_31_x86_64")
    assert rc == 3 and out["abi"] == "cp39-manylinux_2_31_x86_64"
    assert "requires Python >=3.11" in out["error"] and "that host has 3.9" in out["error"], out


def test_a_non_glibc_or_non_cpython_abi_is_refused_by_name(tmp_path):
    rc, out = build(SOURCE, tmp_path, "pp310-musllinux_1_2_x86_64")
    assert rc == 3 and out["abi"] == "pp310-musllinux_1_2_x86_64"
    assert "CPython on glibc" in out["error"], out
