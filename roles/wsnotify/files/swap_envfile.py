#!/usr/bin/env python3
"""Make a checked EnvironmentFile the live one, keeping the one it replaces as the previous.

Run on the host by ansible.builtin.script (tasks/config.yml, tasks/rollback.yml); every path
comes from the role's vars/main.yml. Standard library only.

    swap_envfile.py activate --live L --candidate C --previous P [--check]
    swap_envfile.py rollback --live L --candidate C --previous P [--check]

activate: when the candidate (already checked by `wsnotify check-config`) differs from the live
file, the live file is kept as the previous one and the candidate becomes live. rollback: the
previous file becomes live and the live one becomes the previous (a second rollback undoes the
first); the candidate is set to the restored file so it describes what is live.

Each file is written beside its destination, with the source's mode and owner, and renamed over
it (atomic): systemd reading the EnvironmentFile sees the old file or the new one, never a
partial one. The files hold secrets: nothing of their content is ever printed.

Prints one JSON object (changed, msg). Exit 2: no candidate to activate.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path


def install(content: bytes, like: os.stat_result, dest: Path) -> None:
    """Write content to dest atomically, with the mode and owner of `like`."""
    tmp = dest.with_name(dest.name + ".new")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchown(fd, like.st_uid, like.st_gid)
        os.fchmod(fd, like.st_mode & 0o7777)
        os.write(fd, content)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, dest)


def activate(args: argparse.Namespace) -> dict:
    if not args.candidate.is_file():
        print(json.dumps({"changed": False, "msg": f"no candidate file {args.candidate}"}))
        sys.exit(2)
    new = args.candidate.read_bytes()
    old = args.live.read_bytes() if args.live.is_file() else None
    if new == old:
        return {"changed": False, "msg": f"{args.live} is already the checked file"}
    if not args.check:
        if old is not None:
            install(old, args.live.stat(), args.previous)
        install(new, args.candidate.stat(), args.live)
    kept = f", the old one kept as {args.previous}" if old is not None else ""
    return {"changed": True, "msg": f"{args.candidate} is now {args.live}{kept}"}


def rollback(args: argparse.Namespace) -> dict:
    if not args.previous.is_file():
        return {"changed": False, "msg": f"no {args.previous}: {args.live} stays as it is"}
    back = args.previous.read_bytes()
    old = args.live.read_bytes() if args.live.is_file() else None
    if back == old:
        return {"changed": False, "msg": f"{args.live} is already the previous file"}
    if not args.check:
        back_stat = args.previous.stat()
        if old is not None:
            install(old, args.live.stat(), args.previous)
        install(back, back_stat, args.live)
        install(back, back_stat, args.candidate)
    return {"changed": True, "msg": f"{args.previous} is now {args.live} (and the other way round)"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["activate", "rollback"])
    parser.add_argument("--live", type=Path, required=True)
    parser.add_argument("--candidate", type=Path, required=True)
    parser.add_argument("--previous", type=Path, required=True)
    parser.add_argument(
        "--check", action="store_true", help="report what would change, change nothing"
    )
    args = parser.parse_args(argv)
    result = activate(args) if args.action == "activate" else rollback(args)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
