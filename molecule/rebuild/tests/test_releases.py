"""Releases on the deployed container: two more releases, a rollback to one two steps back by its
id, a wrong id refused with the installed ones listed, and pruning that keeps current and
previous whatever their age. Tests run in file order; the last leaves the repository's release
current."""

import shutil
import tempfile
from pathlib import Path

import pytest
from conftest import HOST, ROOT, main_pid, playbook, report

testinfra_hosts = [f"podman://{HOST}"]
RELEASES = "/opt/wsnotify/releases"


def current(host) -> str:
    return Path(host.file("/opt/wsnotify/current").linked_to).name


def previous(host) -> str:
    return Path(host.file("/opt/wsnotify/previous").linked_to).name


def installed(host) -> set[str]:
    return set(host.check_output(f"ls {RELEASES}").split())


def deploy_variant(tag: str, *extra: str):
    """site.yml with the service's source changed by one comment line: a new release id."""
    tree = Path(tempfile.mkdtemp()) / "service"
    shutil.copytree(ROOT / "service", tree, ignore=shutil.ignore_patterns("__pycache__", "tests"))
    init = tree / "src/wsnotify/__init__.py"
    init.write_text(init.read_text() + f"# release variant {tag}\n")
    try:
        return playbook("site.yml", "-e", f"wsnotify_source_dir={tree}", *extra)
    finally:
        shutil.rmtree(tree.parent)


@pytest.fixture(scope="module")
def ids(host) -> dict[str, str]:
    """The converged release (a), then two variants (b, c) deployed over it."""
    out = {"a": current(host)}
    for tag in ("b", "c"):
        run = deploy_variant(tag)
        assert run.rc == 0, run
        out[tag] = current(host)
    assert len(set(out.values())) == 3, out
    return out


def test_each_deploy_keeps_the_one_it_replaced_as_previous(host, ids):
    assert current(host) == ids["c"] and previous(host) == ids["b"]
    assert installed(host) == set(ids.values())  # 3 = wsnotify_keep_releases' default


def test_rollback_to_a_named_release_two_steps_back(host, ids):
    pid = main_pid()
    run = playbook("rollback.yml", "-e", f"wsnotify_rollback_to={ids['a']}")
    assert run.rc == 0, run
    assert current(host) == ids["a"] and previous(host) == ids["c"]
    assert main_pid() != pid  # restarted on it; rollback.yml verified it afterwards
    report(
        f"rollback.yml -e wsnotify_rollback_to={ids['a']}: rc=0, current {ids['a']}, previous "
        f"{ids['c']}, new MainPID, verified"
    )


def test_a_wrong_release_id_lists_the_installed_ones_and_changes_nothing(host, ids):
    pid = main_pid()
    run = playbook("rollback.yml", "-e", "wsnotify_rollback_to=1.0.0-nosuch")
    assert run.rc != 0, run
    expected = (
        f"Cannot roll back wsnotify: release 1.0.0-nosuch is not installed in {RELEASES}; "
        f"installed: {ids['c']} (previous), {ids['b']}, {ids['a']} (current)."
    )
    assert expected in " ".join(run.out.split()), run
    assert "The service was left on its current release." in run.out, run
    assert current(host) == ids["a"] and main_pid() == pid
    report(f"wrong release id: {expected} The service was left on its current release.")


def test_pruning_keeps_the_newest_and_never_current_or_previous(host, ids):
    # a is current (and the oldest), c previous: with one release to keep, only b can go.
    run = playbook("site.yml", "-e", "wsnotify_keep_releases=1")
    assert run.rc == 0, run
    assert current(host) == ids["a"] and previous(host) == ids["c"]
    assert installed(host) == {ids["a"], ids["c"]}
