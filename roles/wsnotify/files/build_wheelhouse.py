#!/usr/bin/env python3
"""Build the offline wheelhouse of one wsnotify release on the controller; print it as JSON.

The release id is the package version plus a hash of everything that goes into the release
(the package sources and the hashed lock), so changing a line of code makes a new release and
rebuilding the same tree reuses the cached one. Targets install from the tarball with
`pip --no-index`: they never need PyPI.

Usage: build_wheelhouse.py SOURCE_DIR CACHE_DIR
Prints: {"release": "...", "tarball": "...", "version": "...", "built": true|false}
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import tarfile
import tomllib
from pathlib import Path


def release_id(source: Path) -> tuple[str, str]:
    """Version from pyproject.toml and a short hash of every input file."""
    version = tomllib.loads((source / "pyproject.toml").read_text())["project"]["version"]
    digest = hashlib.sha256()
    inputs = [source / "pyproject.toml", source / "requirements.lock"]
    inputs += sorted(
        p for p in (source / "src").rglob("*") if p.is_file() and "__pycache__" not in p.parts
    )
    for path in inputs:
        digest.update(str(path.relative_to(source)).encode() + b"\0" + path.read_bytes() + b"\0")
    return version, f"{version}-{digest.hexdigest()[:12]}"


def build(source: Path, out: Path) -> None:
    """Wheels of the locked dependencies (hash-checked) and of the package itself."""
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    run = lambda *args: subprocess.run([*pip, *args], check=True, stdout=sys.stderr)  # noqa: E731
    run("wheel", "--require-hashes", "-r", str(source / "requirements.lock"), "-w", str(out))
    run("wheel", "--no-deps", str(source), "-w", str(out))


def main() -> int:
    source, cache = Path(sys.argv[1]).resolve(), Path(sys.argv[2]).resolve()
    version, release = release_id(source)
    tarball = cache / f"wsnotify-{release}.tar"
    built = False
    if not tarball.exists():
        work = cache / f"build-{release}"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        build(source, work)
        partial = tarball.with_suffix(".partial")
        with tarfile.open(partial, "w") as tar:
            for wheel in sorted(work.glob("*.whl")):
                tar.add(wheel, arcname=wheel.name)
        partial.rename(tarball)
        shutil.rmtree(work)
        built = True
    print(
        json.dumps(
            {"release": release, "tarball": str(tarball), "version": version, "built": built}
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
