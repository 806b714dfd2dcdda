"""Build the wheel of module_utils/ as the package ``wsnotify_checks`` (runs on the controller).

    build_checks_wheel.py MODULE_UTILS_DIR OUT_DIR   -> {"wheel": PATH, "version": V, "built": B}

The self-check on each host imports the modules' own code from an installed package instead of
copies of files. The version carries a hash of the sources (1.0+<hash>), so a changed file is a
new wheel and an unchanged tree is the same file: the role installs only what changed. A plain
zip per PEP 427, standard library only, reproducible (fixed timestamps, sorted entries).
"""

from __future__ import annotations

import base64
import hashlib
import json
import sys
import zipfile
from pathlib import Path

PACKAGE = "wsnotify_checks"
ENTRY_POINT = "wsnotify-selfcheck = wsnotify_checks.ws_selfcheck:main"


def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"sha256={digest}"


def build(source: Path, out_dir: Path) -> dict:
    modules = sorted(p for p in source.glob("*.py") if p.name != "__init__.py")
    if not any(p.name == "ws_selfcheck.py" for p in modules):
        raise SystemExit(f"{source} holds no ws_selfcheck.py: give the project's module_utils/")
    files = {f"{PACKAGE}/__init__.py": b'"""module_utils/ of wsnotify-deploy, as a package."""\n'}
    files.update({f"{PACKAGE}/{p.name}": p.read_bytes() for p in modules})
    tree = hashlib.sha256()
    for name, data in sorted(files.items()):
        tree.update(name.encode() + b"\0" + data + b"\0")
    version = f"1.0+{tree.hexdigest()[:12]}"
    info = f"{PACKAGE}-{version}.dist-info"
    files[f"{info}/METADATA"] = (
        f"Metadata-Version: 2.1\nName: {PACKAGE}\nVersion: {version}\n"
        "Summary: wsnotify-deploy's WebSocket checks (module_utils/) and the host self-check\n"
        "Requires-Python: >=3.11\n"
    ).encode()
    files[f"{info}/WHEEL"] = (
        b"Wheel-Version: 1.0\nGenerator: build_checks_wheel\nRoot-Is-Purelib: true\n"
        b"Tag: py3-none-any\n"
    )
    files[f"{info}/entry_points.txt"] = f"[console_scripts]\n{ENTRY_POINT}\n".encode()
    record = [f"{name},{_record_hash(data)},{len(data)}" for name, data in files.items()]
    record.append(f"{info}/RECORD,,")
    files[f"{info}/RECORD"] = ("\n".join(record) + "\n").encode()

    out_dir.mkdir(parents=True, exist_ok=True)
    wheel = out_dir / f"{PACKAGE}-{version}-py3-none-any.whl"
    built = not wheel.exists()
    if built:
        tmp = wheel.with_suffix(".tmp")
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
            for name, data in files.items():
                entry = zipfile.ZipInfo(name, date_time=(2026, 1, 1, 0, 0, 0))
                entry.external_attr = 0o644 << 16
                zf.writestr(entry, data, zipfile.ZIP_DEFLATED)
        tmp.replace(wheel)
    return {"wheel": str(wheel), "version": version, "built": built}


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit(f"usage: {sys.argv[0]} MODULE_UTILS_DIR OUT_DIR")
    print(json.dumps(build(Path(sys.argv[1]), Path(sys.argv[2]))))
