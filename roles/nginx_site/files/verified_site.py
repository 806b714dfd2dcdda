#!/usr/bin/env python3
"""Keep the last verified nginx site, and bring it back when a deploy fails verification.

Run on the host by ansible.builtin.script (tasks/remember.yml, tasks/rollback.yml); every path
comes from the role's vars/main.yml. Standard library only.

    verified_site.py remember --site S --kept K [--check]
    verified_site.py restore --site S --link L --kept K [--nginx N] [--systemctl S] [--check]

remember: copy the site file (sites-available) to the kept copy when they differ.
restore: put the kept copy back as the site and its sites-enabled link, then `nginx -t` of the
whole configuration: accepted, nginx is reloaded; rejected, the site file and link are put back
as they were (nginx was not reloaded, so it keeps serving what it served) and the exit is 4 with
nginx's message. With no kept copy yet there is nothing to restore: the site stays as it is.

Files are written beside their destination and renamed over it, links likewise (atomic).
Prints one JSON object (changed, msg).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path


class Failed(Exception):
    """The restore could not complete; exit code and what was left."""

    def __init__(self, code: int, msg: str, changed: bool) -> None:
        super().__init__(msg)
        self.code, self.changed = code, changed


def install(src: Path, dest: Path) -> None:
    """Copy src over dest atomically, with src's mode, owner and times (as cp -p)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".new")
    shutil.copy2(src, tmp)
    st = src.stat()
    os.chown(tmp, st.st_uid, st.st_gid)
    os.replace(tmp, dest)


def set_link(path: Path, target: str | None) -> None:
    """Point path at target atomically (a new link renamed over it); None removes the link."""
    tmp = path.with_name(path.name + ".new")
    for stale in (tmp, path) if target is None else (tmp,):
        if stale.is_symlink():
            stale.unlink()
    if target is not None:
        os.symlink(target, tmp)
        os.replace(tmp, path)


def same(a: Path, b: Path) -> bool:
    return a.is_file() and b.is_file() and a.read_bytes() == b.read_bytes()


def remember(args: argparse.Namespace) -> dict:
    if not args.site.is_file():
        return {"changed": False, "msg": f"no site {args.site} to keep"}
    if same(args.site, args.kept):
        return {"changed": False, "msg": f"{args.kept} is already this site"}
    if not args.check:
        install(args.site, args.kept)
    return {"changed": True, "msg": f"kept {args.site} as {args.kept}"}


def restore(args: argparse.Namespace) -> dict:
    if not args.kept.is_file():
        return {"changed": False, "msg": "no verified site kept yet: the site stays as it is"}
    link_before = os.readlink(args.link) if args.link.is_symlink() else None
    if same(args.kept, args.site) and link_before == str(args.site):
        return {"changed": False, "msg": f"{args.site} is already the verified site"}
    if args.check:
        return {"changed": True, "msg": f"would restore {args.kept} as {args.site}"}
    failed = args.site.with_name(args.site.name + ".failed")
    had_site = args.site.is_file()
    if had_site:
        install(args.site, failed)
    install(args.kept, args.site)
    set_link(args.link, str(args.site))
    test = subprocess.run([args.nginx, "-t"], capture_output=True, text=True, check=False)
    if test.returncode != 0:
        if had_site:
            os.replace(failed, args.site)
        else:
            args.site.unlink()
        set_link(args.link, link_before)
        said = (test.stderr + test.stdout).strip()
        raise Failed(4, f"the verified site no longer passes nginx -t: {said}", changed=False)
    if had_site:
        failed.unlink()
    reload = subprocess.run(
        [args.systemctl, "reload", "nginx"], capture_output=True, text=True, check=False
    )
    if reload.returncode != 0:
        said = (reload.stderr + reload.stdout).strip()
        raise Failed(5, f"restored, but nginx did not reload: {said}", changed=True)
    return {"changed": True, "msg": f"restored {args.kept} as {args.site} and reloaded nginx"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["remember", "restore"])
    parser.add_argument("--site", type=Path, required=True, help="the file in sites-available")
    parser.add_argument("--kept", type=Path, required=True, help="the verified copy")
    parser.add_argument("--link", type=Path, help="the sites-enabled link (restore)")
    parser.add_argument("--nginx", default="nginx", help="nginx binary (tests use a stand-in)")
    parser.add_argument("--systemctl", default="systemctl", help="systemctl binary (likewise)")
    parser.add_argument("--check", action="store_true", help="report, change nothing")
    args = parser.parse_args(argv)
    if args.action == "restore" and args.link is None:
        parser.error("restore needs --link")
    try:
        result = restore(args) if args.action == "restore" else remember(args)
    except Failed as exc:
        result = {"changed": exc.changed, "msg": str(exc), "rc": exc.code}
    print(json.dumps(result))
    return result.get("rc", 0)


if __name__ == "__main__":
    sys.exit(main())
