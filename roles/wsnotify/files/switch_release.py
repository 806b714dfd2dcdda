#!/usr/bin/env python3
"""Point the service's `current` link at a release, keeping the one it replaces as `previous`.

Run on the host by ansible.builtin.script (tasks/service.yml, tasks/rollback.yml); every path
comes from the role's vars/main.yml. Standard library only.

    switch_release.py activate --current C --previous P --releases R --release ID --keep N [--check]
    switch_release.py rollback --current C --previous P [--releases R --to ID] [--check]

A link is replaced by renaming a new link over it (rename(2) is atomic), so a reader (systemd
starting ExecStart) sees the old target or the new one, never no link. Links are relative
(`releases/<id>`), so the base directory can be moved. `activate` also removes releases beyond
the newest N (by modification time), never the current or previous one. `rollback` goes back
to the previous release, or with `--to` to any installed one (a wrong id is refused with the list
of installed releases); the release it leaves becomes previous.

Prints one JSON object (changed, current, previous, removed, msg; rollback adds to_previous:
whether the release rolled back to was the previous one). Exit 2: bad input (a release that is
not installed, a path that is not a link); 3: nothing to roll back to.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path


class Refused(Exception):
    def __init__(self, code: int, msg: str) -> None:
        super().__init__(msg)
        self.code = code


def read_link(path: Path) -> str | None:
    """The link's target as written, None when there is no link; anything else is refused."""
    if path.is_symlink():
        return os.readlink(path)
    if path.exists():
        raise Refused(2, f"{path} exists but is not a symlink: move it away, then run again")
    return None


def set_link(path: Path, target: str) -> None:
    tmp = path.with_name(path.name + ".new")
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    os.symlink(target, tmp)
    os.replace(tmp, path)


def prune(releases: Path, keep: int, protected: set[Path], check: bool) -> list[str]:
    """Remove all but the newest `keep` releases, never a protected one; returns their paths."""
    if keep < 1:
        raise Refused(2, f"--keep must be at least 1, got {keep}")
    by_age = sorted(releases.iterdir(), key=lambda p: p.lstat().st_mtime, reverse=True)
    removed = [p for p in by_age[keep:] if p.resolve() not in protected]
    for path in removed if not check else []:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
    return [str(p) for p in removed]


def activate(args: argparse.Namespace) -> dict:
    release = args.releases / args.release
    target = os.path.relpath(release, args.current.parent)
    installed = release.is_dir()
    if not installed and not args.check:  # in check mode the install before this was skipped
        raise Refused(2, f"release {release} is not installed: nothing to activate")
    current = read_link(args.current)
    previous = read_link(args.previous)
    changed = current != target
    if changed and not args.check:
        if current is not None:
            set_link(args.previous, current)
            previous = current
        set_link(args.current, target)
    kept = {p.resolve() for p in (args.current, args.previous) if p.is_symlink()} | {
        release.resolve()
    }
    removed = prune(args.releases, args.keep, kept, args.check) if args.releases.is_dir() else []
    return {
        "changed": changed or bool(removed),
        "current": target if changed else current,
        "previous": previous,
        "removed": removed,
        "msg": f"switched from {current} to {target}" if changed else f"{target} is current",
    }


def installed(releases: Path, current: str | None, previous: str | None) -> str:
    """The installed releases, newest first, current and previous marked (for an operator)."""
    marks = {
        Path(link).name: f" ({mark})"
        for link, mark in ((current, "current"), (previous, "previous"))
        if link is not None
    }
    by_age = sorted(releases.iterdir(), key=lambda p: p.lstat().st_mtime, reverse=True)
    listed = [p.name + marks.get(p.name, "") for p in by_age if p.is_dir()]
    return ", ".join(listed) or "none"


def rollback(args: argparse.Namespace) -> dict:
    previous = read_link(args.previous)
    current = read_link(args.current)
    if args.to is not None:
        release = args.releases / args.to
        # A name, not a path: only an entry of the releases directory is accepted.
        if "/" in args.to or args.to in ("", ".", "..") or not release.is_dir():
            raise Refused(
                2,
                f"release {args.to} is not installed in {args.releases}; installed: "
                f"{installed(args.releases, current, previous)}",
            )
        target = os.path.relpath(release, args.current.parent)
    elif previous is None:
        raise Refused(3, "no previous release to roll back to")
    elif not (args.previous.parent / previous).is_dir():
        raise Refused(3, f"the previous release {previous} is no longer installed")
    else:
        target = previous
    if target == current:
        return {
            "changed": False,
            "current": current,
            "previous": previous,
            "removed": [],
            "to_previous": False,
            "msg": f"{current} is already current",
        }
    if not args.check:
        set_link(args.current, target)
        if current is not None:
            set_link(args.previous, current)
    return {
        "changed": True,
        "current": target,
        "previous": current,
        "removed": [],
        "to_previous": target == previous,
        "msg": f"rolled back from {current} to {target}",
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="action", required=True)
    for name in ("activate", "rollback"):
        p = sub.add_parser(name)
        p.add_argument("--current", type=Path, required=True)
        p.add_argument("--previous", type=Path, required=True)
        p.add_argument(
            "--check", action="store_true", help="report what would change, change nothing"
        )
    sub.choices["activate"].add_argument("--releases", type=Path, required=True)
    sub.choices["activate"].add_argument("--release", required=True)
    sub.choices["activate"].add_argument("--keep", type=int, required=True)
    sub.choices["rollback"].add_argument("--releases", type=Path)
    sub.choices["rollback"].add_argument(
        "--to", help="a release id (default: the previous release)"
    )
    args = parser.parse_args(argv)
    if args.action == "rollback" and (args.to is None) != (args.releases is None):
        parser.error("rollback: --to and --releases go together")
    try:
        result = activate(args) if args.action == "activate" else rollback(args)
    except Refused as exc:
        print(json.dumps({"changed": False, "msg": str(exc)}))
        return exc.code
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
