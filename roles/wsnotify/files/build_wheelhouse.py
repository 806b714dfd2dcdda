#!/usr/bin/env python3
"""Build the offline wheelhouse of one wsnotify release for each target ABI; print it as JSON.

A target ABI names what a host's interpreter can load: ``<python tag>-<platform tag>``, e.g.
``cp313-manylinux_2_41_x86_64`` for Debian 13 on x86_64 (CPython 3.13, glibc 2.41). The
controller's own Python and platform play no part: the locked dependencies are *downloaded* as
binary wheels for the target's tags (`pip download --only-binary=:all:`), hash-checked against
requirements.lock, so a macOS laptop or an x86_64 CI machine can deploy to an arm64 Debian 13
server. The service itself is a pure-Python wheel, built once per source hash and shared.

The release id is the package version, a hash of everything that goes into the release (the
package sources and the hashed lock) and the target ABI, so changing a line of code makes a new
release, and rebuilding the same tree for the same ABI reuses the cached tarball. Targets install
from the tarball with `pip --no-index`: they never need PyPI.

Usage: build_wheelhouse.py SOURCE_DIR CACHE_DIR ABI [ABI ...]
Prints: {"version": "...", "targets": {ABI: {"release": "...", "tarball": "...", "built": bool}}}
Exit 3, with {"error": "...", "abi": ABI} on stdout, when an ABI cannot be served (no wheel of a
locked package for it): nothing is half-built, the message names the ABI and the package.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import tomllib
from pathlib import Path

ABI = re.compile(r"^cp(?P<major>3)(?P<minor>\d{1,2})-manylinux_2_(?P<glibc>\d+)_(?P<arch>\w+)$")
# Legacy manylinux names and the glibc each stands for (PEP 600): wheels still carry them.
LEGACY_MANYLINUX = {"manylinux1": 5, "manylinux2010": 12, "manylinux2014": 17}


class Unservable(Exception):
    """The ABI cannot be served from the lock; the message names why."""


def release_id(source: Path) -> tuple[str, str]:
    """Version from pyproject.toml and a short hash of every input file."""
    version = tomllib.loads((source / "pyproject.toml").read_text())["project"]["version"]
    digest = hashlib.sha256()
    inputs = [source / "pyproject.toml", source / "requirements.lock"]
    # Build debris (bytecode, the egg-info a wheel build leaves in src/) is not an input.
    inputs += sorted(
        p
        for p in (source / "src").rglob("*")
        if p.is_file()
        and not any(part == "__pycache__" or part.endswith(".egg-info") for part in p.parts)
    )
    for path in inputs:
        digest.update(str(path.relative_to(source)).encode() + b"\0" + path.read_bytes() + b"\0")
    return version, digest.hexdigest()[:12]


def check_python(source: Path, abi: str) -> None:
    """The target's Python must satisfy the package's requires-python (a ">=X.Y" floor)."""
    project = tomllib.loads((source / "pyproject.toml").read_text())["project"]
    floor = re.fullmatch(r">=\s*3\.(\d+)", project.get("requires-python", ">=3.0").strip())
    m = ABI.match(abi)
    if floor and m and int(m["minor"]) < int(floor[1]):
        raise Unservable(
            f"target ABI {abi}: wsnotify requires Python {project['requires-python']}, "
            f"that host has {m['major']}.{m['minor']}"
        )


def pip_target_args(abi: str) -> list[str]:
    """`pip download` options selecting wheels that a host of this ABI can install.

    pip matches --platform exactly, so every glibc the target's glibc is compatible with is
    listed (a wheel built for manylinux_2_17 runs on glibc 2.41), plus the legacy aliases.
    """
    m = ABI.match(abi)
    if m is None:
        raise Unservable(
            f"target ABI {abi!r} is not of the form cpXY-manylinux_2_N_ARCH (CPython on glibc): "
            "wsnotify is only built for CPython on glibc-based Debian"
        )
    arch, glibc = m["arch"], int(m["glibc"])
    platforms = [f"manylinux_2_{n}_{arch}" for n in range(glibc, 4, -1)]
    platforms += [f"{name}_{arch}" for name, n in LEGACY_MANYLINUX.items() if n <= glibc]
    python_tag = f"cp{m['major']}{m['minor']}"
    args = ["--only-binary=:all:", "--implementation", "cp"]
    args += ["--python-version", f"{m['major']}.{m['minor']}"]
    for abi_tag in (python_tag, "abi3", "none"):
        args += ["--abi", abi_tag]
    for platform in platforms:
        args += ["--platform", platform]
    return args


def _pip(*args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q", *args]
    return subprocess.run(cmd, capture_output=True, text=True, check=False)


def download_dependencies(source: Path, abi: str, out: Path) -> None:
    """The locked dependencies' wheels for ``abi``, every file checked against its lock hash."""
    lock = str(source / "requirements.lock")
    proc = _pip("download", "--require-hashes", "-r", lock, "-d", str(out), *pip_target_args(abi))
    if proc.returncode != 0:
        missing = re.findall(r"No matching distribution found for (\S+)", proc.stderr)
        if missing:
            raise Unservable(
                f"no wheel of {', '.join(missing)} (pinned in service/requirements.lock) for "
                f"target ABI {abi}: that host's Python or platform cannot run this release "
                "(pin versions that publish wheels for it, or deploy to a supported host)"
            )
        raise RuntimeError(f"pip download for {abi} failed: {proc.stderr.strip()[-2000:]}")


def service_wheel(source: Path, source_hash: str, cache: Path) -> Path:
    """The pure-Python wheel of the service itself, built once per source hash."""
    out = cache / f"service-{source_hash}"
    wheels = sorted(out.glob("wsnotify-*.whl"))
    if wheels:
        return wheels[0]
    work = Path(tempfile.mkdtemp(dir=cache, prefix="service-build-"))
    try:
        proc = _pip("wheel", "--no-deps", str(source), "-w", str(work))
        if proc.returncode != 0:
            raise RuntimeError(f"building the wsnotify wheel failed: {proc.stderr.strip()[-2000:]}")
        work.rename(out)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return sorted(out.glob("wsnotify-*.whl"))[0]


def build_tarball(source: Path, abi: str, wheel: Path, tarball: Path) -> None:
    """Download for ``abi`` and pack it with the service wheel; atomic (no partial tarball)."""
    check_python(source, abi)
    work = Path(tempfile.mkdtemp(dir=tarball.parent, prefix=f"build-{abi}-"))
    try:
        download_dependencies(source, abi, work)
        shutil.copy2(wheel, work / wheel.name)
        partial = tarball.with_suffix(".partial")
        with tarfile.open(partial, "w") as tar:
            for path in sorted(work.glob("*.whl")):
                tar.add(path, arcname=path.name)
        partial.rename(tarball)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str]) -> int:
    if len(argv) < 3:
        print(__doc__.split("\n\n")[-2], file=sys.stderr)
        return 2
    source, cache = Path(argv[0]).resolve(), Path(argv[1]).resolve()
    abis = sorted(set(argv[2:]))
    cache.mkdir(parents=True, exist_ok=True)
    version, source_hash = release_id(source)
    targets = {}
    # One build at a time per cache: plays running at once (two scenarios, two checkouts) would
    # otherwise build the same wheel and race to rename it into place. The second one waits,
    # then finds the first one's result.
    lock = (cache / ".build.lock").open("w")
    fcntl.flock(lock, fcntl.LOCK_EX)
    for abi in abis:
        release = f"{version}-{source_hash}-{abi}"
        tarball = cache / f"wsnotify-{release}.tar"
        built = False
        if not tarball.exists():
            try:
                build_tarball(source, abi, service_wheel(source, source_hash, cache), tarball)
            except Unservable as exc:
                print(json.dumps({"error": str(exc), "abi": abi}))
                return 3
            built = True
        targets[abi] = {"release": release, "tarball": str(tarball), "built": built}
    print(json.dumps({"version": version, "targets": targets}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
