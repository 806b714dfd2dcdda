"""The roles' state switches (roles/*/files/*.py), run as the hosts run them, on a temp directory.

Each script is what ansible.builtin.script executes on a host: the release links
(switch_release.py), the EnvironmentFile swap (swap_envfile.py) and the verified nginx site
(verified_site.py). nginx and systemctl are stand-ins that record how they were called.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PYTHON = os.environ.get("TEST_TARGET_PYTHON", "/usr/bin/python3")
SWITCH = ROOT / "roles/wsnotify/files/switch_release.py"
SWAP = ROOT / "roles/wsnotify/files/swap_envfile.py"
SITE = ROOT / "roles/nginx_site/files/verified_site.py"


class Result:
    def __init__(self, proc: subprocess.CompletedProcess[str]) -> None:
        self.rc, self.stdout, self.stderr = proc.returncode, proc.stdout, proc.stderr
        self.json = json.loads(proc.stdout) if proc.stdout.strip() else {}

    def __repr__(self) -> str:
        return f"rc={self.rc} stdout={self.stdout!r} stderr={self.stderr!r}"


def run(script: Path, *args: str | Path) -> Result:
    proc = subprocess.run(
        [PYTHON, str(script), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    return Result(proc)


# --- switch_release.py -------------------------------------------------------------------


@pytest.fixture
def base(tmp_path: Path) -> Path:
    for i, release in enumerate(["1.0-a", "1.0-b", "1.0-c", "1.0-d"]):
        (tmp_path / "releases" / release / "venv").mkdir(parents=True)
        os.utime(tmp_path / "releases" / release, (1_000_000 + i, 1_000_000 + i))
    return tmp_path


def links(base: Path) -> tuple[str | None, str | None]:
    return tuple(
        os.readlink(base / n) if (base / n).is_symlink() else None for n in ("current", "previous")
    )


def activate(base: Path, release: str, *extra: str, keep: int = 10) -> Result:
    return run(
        SWITCH,
        "activate",
        *("--current", base / "current", "--previous", base / "previous"),
        *("--releases", base / "releases", "--release", release, "--keep", str(keep)),
        *extra,
    )


def rollback(base: Path, *extra: str) -> Result:
    return run(
        SWITCH, "rollback", "--current", base / "current", "--previous", base / "previous", *extra
    )


def test_first_activation_links_current_only(base):
    r = activate(base, "1.0-a")
    assert r.rc == 0 and r.json["changed"] is True, r
    assert links(base) == ("releases/1.0-a", None)
    assert not (base / "current.new").exists()


def test_same_release_again_changes_nothing(base):
    activate(base, "1.0-a")
    r = activate(base, "1.0-a")
    assert r.rc == 0 and r.json["changed"] is False, r
    assert links(base) == ("releases/1.0-a", None)


def test_new_release_keeps_the_replaced_one_as_previous(base):
    activate(base, "1.0-a")
    r = activate(base, "1.0-b")
    assert r.json["changed"] is True, r
    assert links(base) == ("releases/1.0-b", "releases/1.0-a")


def test_a_release_that_is_not_installed_is_refused_and_links_stay(base):
    activate(base, "1.0-a")
    r = activate(base, "2.0-missing")
    assert r.rc == 2, r
    assert "not installed" in r.json["msg"]
    assert links(base) == ("releases/1.0-a", None)


def test_check_mode_reports_the_switch_and_changes_nothing(base):
    activate(base, "1.0-a")
    r = activate(base, "1.0-b", "--check")
    assert r.rc == 0 and r.json["changed"] is True, r
    assert links(base) == ("releases/1.0-a", None)
    # In check mode the install before the switch did not run: not an error, a change to come.
    r = activate(base, "2.0-not-yet-installed", "--check")
    assert r.rc == 0 and r.json["changed"] is True, r


def test_only_the_newest_releases_are_kept_never_current_or_previous(base):
    activate(base, "1.0-a")
    activate(base, "1.0-b")
    rollback(base)  # current is now the oldest release, 1.0-a; previous 1.0-b
    r = activate(base, "1.0-d", keep=1)
    assert r.rc == 0, r
    # 1.0-d is current, 1.0-a (the one it replaced) previous; 1.0-b and 1.0-c go.
    assert links(base) == ("releases/1.0-d", "releases/1.0-a")
    assert sorted(p.name for p in (base / "releases").iterdir()) == ["1.0-a", "1.0-d"]
    assert sorted(Path(p).name for p in r.json["removed"]) == ["1.0-b", "1.0-c"]


def test_pruning_in_check_mode_removes_nothing(base):
    activate(base, "1.0-a")
    r = activate(base, "1.0-a", "--check", keep=1)
    # 1.0-d is the newest, 1.0-a current: 1.0-b and 1.0-c would go.
    assert r.json["changed"] is True, r
    assert sorted(Path(p).name for p in r.json["removed"]) == ["1.0-b", "1.0-c"]
    assert len(list((base / "releases").iterdir())) == 4


def test_rollback_swaps_current_and_previous_and_a_second_one_undoes_it(base):
    activate(base, "1.0-a")
    activate(base, "1.0-b")
    r = rollback(base)
    assert r.rc == 0 and r.json["changed"] is True, r
    assert "from releases/1.0-b to releases/1.0-a" in r.json["msg"]
    assert links(base) == ("releases/1.0-a", "releases/1.0-b")
    rollback(base)
    assert links(base) == ("releases/1.0-b", "releases/1.0-a")


def test_rollback_without_a_previous_release_is_refused(base):
    activate(base, "1.0-a")
    r = rollback(base)
    assert r.rc == 3, r
    assert r.json["msg"] == "no previous release to roll back to"
    assert links(base) == ("releases/1.0-a", None)


def test_rollback_to_a_removed_release_is_refused(base):
    activate(base, "1.0-a")
    activate(base, "1.0-b")
    (base / "releases/1.0-a/venv").rmdir()
    (base / "releases/1.0-a").rmdir()
    r = rollback(base)
    assert r.rc == 3 and "no longer installed" in r.json["msg"], r
    assert links(base) == ("releases/1.0-b", "releases/1.0-a")


def rollback_to(base: Path, release: str, *extra: str) -> Result:
    return rollback(base, "--releases", base / "releases", "--to", release, *extra)


@pytest.mark.parametrize("to", [(), ("--releases", "RELEASES", "--to", "1.0-d")])
def test_release_rollback_in_check_mode_changes_nothing(base, to):
    activate(base, "1.0-a")
    activate(base, "1.0-b")
    r = rollback(base, "--check", *(str(base / "releases") if a == "RELEASES" else a for a in to))
    assert r.rc == 0 and r.json["changed"] is True, r
    assert links(base) == ("releases/1.0-b", "releases/1.0-a")


def test_rollback_to_a_named_release_makes_the_left_one_previous(base):
    activate(base, "1.0-a")
    activate(base, "1.0-b")
    activate(base, "1.0-c")
    r = rollback_to(base, "1.0-a")  # neither current nor previous: two releases back
    assert r.rc == 0 and r.json["changed"] is True and r.json["to_previous"] is False, r
    assert links(base) == ("releases/1.0-a", "releases/1.0-c")
    r = rollback_to(base, "1.0-c")  # the previous one, named
    assert r.json["to_previous"] is True, r
    assert links(base) == ("releases/1.0-c", "releases/1.0-a")


def test_rollback_to_the_current_release_changes_nothing(base):
    activate(base, "1.0-a")
    activate(base, "1.0-b")
    r = rollback_to(base, "1.0-b")
    assert r.rc == 0 and r.json["changed"] is False, r
    assert r.json["msg"] == "releases/1.0-b is already current"
    assert links(base) == ("releases/1.0-b", "releases/1.0-a")


@pytest.mark.parametrize("wrong", ["1.0-z", "../releases/1.0-c", "..", ""])
def test_rollback_to_a_wrong_id_lists_the_installed_releases(base, wrong):
    activate(base, "1.0-a")
    activate(base, "1.0-b")
    r = rollback_to(base, wrong)
    assert r.rc == 2, r
    assert r.json["msg"] == (
        f"release {wrong} is not installed in {base / 'releases'}; installed: "
        "1.0-d, 1.0-c, 1.0-b (current), 1.0-a (previous)"
    )
    assert links(base) == ("releases/1.0-b", "releases/1.0-a")


def test_a_current_that_is_not_a_link_is_refused_untouched(base):
    (base / "current").mkdir()
    r = activate(base, "1.0-a")
    assert r.rc == 2 and "not a symlink" in r.json["msg"], r
    assert (base / "current").is_dir() and not (base / "current").is_symlink()


def test_a_link_left_over_by_an_interrupted_switch_is_replaced(base):
    os.symlink("releases/1.0-c", base / "current.new")
    r = activate(base, "1.0-a")
    assert r.rc == 0, r
    assert links(base) == ("releases/1.0-a", None)
    assert not (base / "current.new").is_symlink()


# --- swap_envfile.py ---------------------------------------------------------------------

SECRET = "JWT_SECRET=never-print-me-0123456789"


@pytest.fixture
def etc(tmp_path: Path) -> Path:
    return tmp_path


def write(path: Path, text: str, mode: int = 0o640) -> None:
    path.write_text(text)
    path.chmod(mode)


def swap(etc: Path, action: str, *extra: str) -> Result:
    r = run(
        SWAP,
        action,
        *("--live", etc / "wsnotify.env", "--candidate", etc / "wsnotify.env.candidate"),
        *("--previous", etc / "wsnotify.env.previous", *extra),
    )
    assert SECRET not in r.stdout + r.stderr  # the files hold secrets: never printed
    return r


def files(etc: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted(etc.iterdir())}


def envfiles(live: str, candidate: str, previous: str) -> dict[str, str]:
    """What files() should find: the three files with these contents."""
    return {
        "wsnotify.env": live,
        "wsnotify.env.candidate": candidate,
        "wsnotify.env.previous": previous,
    }


def test_first_activation_makes_the_candidate_live_with_its_mode(etc):
    write(etc / "wsnotify.env.candidate", f"A=1\n{SECRET}\n")
    r = swap(etc, "activate")
    assert r.rc == 0 and r.json["changed"] is True, r
    assert files(etc) == {
        "wsnotify.env": f"A=1\n{SECRET}\n",
        "wsnotify.env.candidate": f"A=1\n{SECRET}\n",
    }
    assert stat.S_IMODE((etc / "wsnotify.env").stat().st_mode) == 0o640


def test_an_unchanged_candidate_changes_nothing(etc):
    write(etc / "wsnotify.env.candidate", "A=1\n")
    swap(etc, "activate")
    before = (etc / "wsnotify.env").stat().st_ino
    r = swap(etc, "activate")
    assert r.json["changed"] is False, r
    assert (etc / "wsnotify.env").stat().st_ino == before


def test_a_new_candidate_goes_live_and_rollbacks_swap_it_with_the_previous(etc):
    write(etc / "wsnotify.env", "A=old\n")
    write(etc / "wsnotify.env.candidate", "A=new\n")
    r = swap(etc, "activate")
    assert r.json["changed"] is True, r
    assert files(etc) == envfiles("A=new\n", "A=new\n", "A=old\n")
    assert stat.S_IMODE((etc / "wsnotify.env.previous").stat().st_mode) == 0o640
    r = swap(etc, "rollback")
    assert r.json["changed"] is True, r
    # The candidate describes what is live again, so the next deploy compares against it.
    assert files(etc) == envfiles("A=old\n", "A=old\n", "A=new\n")
    swap(etc, "rollback")
    assert (etc / "wsnotify.env").read_text() == "A=new\n"


def test_activation_without_a_candidate_fails_and_keeps_the_live_file(etc):
    write(etc / "wsnotify.env", "A=old\n")
    r = swap(etc, "activate")
    assert r.rc == 2 and "no candidate" in r.json["msg"], r
    assert files(etc) == {"wsnotify.env": "A=old\n"}


@pytest.mark.parametrize(("action", "other"), [("activate", "candidate"), ("rollback", "previous")])
def test_envfile_switch_in_check_mode_reports_and_changes_nothing(etc, action, other):
    before = {"wsnotify.env": "A=live\n", f"wsnotify.env.{other}": "A=other\n"}
    for name, text in before.items():
        write(etc / name, text)
    r = swap(etc, action, "--check")
    assert r.json["changed"] is True, r
    assert files(etc) == before


def test_rollback_without_a_previous_file_keeps_the_live_one(etc):
    write(etc / "wsnotify.env", "A=only\n")
    r = swap(etc, "rollback")
    assert r.rc == 0 and r.json["changed"] is False, r
    assert "stays as it is" in r.json["msg"]
    assert files(etc) == {"wsnotify.env": "A=only\n"}


# --- verified_site.py --------------------------------------------------------------------


@pytest.fixture
def nginx(tmp_path: Path) -> Path:
    """/etc/nginx-like tree, plus nginx and systemctl stand-ins logging their arguments."""
    (tmp_path / "sites-available").mkdir()
    (tmp_path / "sites-enabled").mkdir()
    (tmp_path / "kept").mkdir()
    for tool in ("nginx", "systemctl"):
        path = tmp_path / tool
        path.write_text(
            "#!/bin/sh\n"
            f'echo "$*" >> {tmp_path}/{tool}.log\n'
            f"[ -f {tmp_path}/{tool}.fails ] || exit 0\n"
            'echo "[emerg] unknown directive \\"bogus\\"" >&2; exit 1\n'
        )
        path.chmod(0o755)
    return tmp_path


def calls(nginx: Path, tool: str) -> list[str]:
    log = nginx / f"{tool}.log"
    return log.read_text().splitlines() if log.exists() else []


def site(nginx: Path, action: str, *extra: str) -> Result:
    args = [
        "--site",
        nginx / "sites-available/wsnotify",
        "--kept",
        nginx / "kept/wsnotify.verified",
    ]
    if action == "restore":
        args += ["--link", nginx / "sites-enabled/wsnotify"]
        args += ["--nginx", nginx / "nginx", "--systemctl", nginx / "systemctl"]
    return run(SITE, action, *args, *extra)


def test_remember_keeps_a_copy_once(nginx):
    write(nginx / "sites-available/wsnotify", "server {}\n", 0o644)
    r = site(nginx, "remember")
    assert r.json["changed"] is True, r
    assert (nginx / "kept/wsnotify.verified").read_text() == "server {}\n"
    assert site(nginx, "remember").json["changed"] is False
    write(nginx / "sites-available/wsnotify", "server { changed }\n", 0o644)
    r = site(nginx, "remember", "--check")
    assert r.json["changed"] is True, r
    assert (nginx / "kept/wsnotify.verified").read_text() == "server {}\n"


def test_restore_without_a_kept_copy_leaves_the_site_as_it_is(nginx):
    write(nginx / "sites-available/wsnotify", "server { new }\n", 0o644)
    r = site(nginx, "restore")
    assert r.rc == 0 and r.json["changed"] is False, r
    assert r.json["msg"] == "no verified site kept yet: the site stays as it is"
    assert calls(nginx, "nginx") == [] and calls(nginx, "systemctl") == []


def test_restore_of_the_same_linked_site_changes_nothing(nginx):
    write(nginx / "sites-available/wsnotify", "server {}\n", 0o644)
    os.symlink(nginx / "sites-available/wsnotify", nginx / "sites-enabled/wsnotify")
    site(nginx, "remember")
    r = site(nginx, "restore")
    assert r.json["changed"] is False, r
    assert calls(nginx, "systemctl") == []


def test_restore_puts_back_the_verified_site_and_link_then_reloads(nginx):
    write(nginx / "sites-available/wsnotify", "server { good }\n", 0o644)
    site(nginx, "remember")
    write(nginx / "sites-available/wsnotify", "server { failing }\n", 0o644)
    r = site(nginx, "restore")
    assert r.rc == 0 and r.json["changed"] is True, r
    assert (nginx / "sites-available/wsnotify").read_text() == "server { good }\n"
    link = nginx / "sites-enabled/wsnotify"
    assert os.readlink(link) == str(nginx / "sites-available/wsnotify")
    assert calls(nginx, "nginx") == ["-t"]
    assert calls(nginx, "systemctl") == ["reload nginx"]
    assert sorted(p.name for p in (nginx / "sites-available").iterdir()) == ["wsnotify"]


def test_restore_rejected_by_nginx_puts_the_site_and_link_back_and_never_reloads(nginx):
    write(nginx / "sites-available/wsnotify", "server { good }\n", 0o644)
    site(nginx, "remember")
    write(nginx / "sites-available/wsnotify", "server { failing }\n", 0o644)
    (nginx / "nginx.fails").touch()
    r = site(nginx, "restore")
    assert r.rc == 4, r
    assert "no longer passes nginx -t" in r.json["msg"]
    assert 'unknown directive "bogus"' in r.json["msg"]
    assert (nginx / "sites-available/wsnotify").read_text() == "server { failing }\n"
    assert not (nginx / "sites-enabled/wsnotify").is_symlink()  # it was not linked before
    assert calls(nginx, "systemctl") == []
    assert sorted(p.name for p in (nginx / "sites-available").iterdir()) == ["wsnotify"]


def test_restore_in_check_mode_changes_nothing(nginx):
    write(nginx / "sites-available/wsnotify", "server { good }\n", 0o644)
    site(nginx, "remember")
    write(nginx / "sites-available/wsnotify", "server { failing }\n", 0o644)
    r = site(nginx, "restore", "--check")
    assert r.json["changed"] is True, r
    assert (nginx / "sites-available/wsnotify").read_text() == "server { failing }\n"
    assert calls(nginx, "nginx") == []
