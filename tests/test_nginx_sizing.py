"""nginx's main context as the nginx_site role derives it from nginx_site_max_clients and a host.

The derivation (roles/nginx_site/vars/main.yml, __nginx_site_sizing) evaluated by Ansible itself
for hosts this project meets: the 2-core machine whose containers cap a process at 20,000 open
files, a normal host (fs.nr_open), and a capacity no split can hold.
"""

from __future__ import annotations

import pytest
from helpers.ansible_run import ROOT, ok, run_tasks, task

CASES = {
    "15k on 2 cores, 20k files": (15000, 2, 20000),
    "20k on 2 cores, 20k files": (20000, 2, 20000),
    "15k on 2 cores, nr_open": (15000, 2, 1048576),
    "100 on 8 cores, 20k files": (100, 8, 20000),
    "10M on 2 cores, 20k files": (10_000_000, 2, 20000),
}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tasks = [
        task(
            "role vars",
            "ansible.builtin.include_vars",
            {"file": str(ROOT / "roles/nginx_site/vars/main.yml")},
        )
    ]
    for name, (clients, cores, ceiling) in CASES.items():
        tasks.append(
            task(
                name,
                "ansible.builtin.debug",
                {"msg": "{{ __nginx_site_sizing }}"},
                vars={
                    "nginx_site_name": "wsnotify",
                    "nginx_site_max_clients": clients,
                    "__nginx_site_host": {"cores": cores, "nofile_ceiling": ceiling},
                },
            )
        )
    return (run_tasks(tasks, tmp_path_factory.mktemp("sizing")),)


@pytest.mark.parametrize("name", [n for n in CASES if not n.startswith("10M")])
def test_every_client_fits_two_connections_within_the_ceiling(run, name):
    clients, cores, ceiling = CASES[name]
    sizing = ok(run, name)["msg"]
    assert sizing["workers"] >= cores
    assert sizing["nofile"] == sizing["connections"] + 128 <= ceiling
    # Two connections per client, whatever worker reuseport hands it to, and 256 for the API.
    assert (sizing["connections"] - 256) * sizing["workers"] >= 2 * clients


def test_the_goal_fits_two_workers_in_a_container_and_more_need_a_third(run):
    assert ok(run, "15k on 2 cores, 20k files")["msg"]["workers"] == 2
    assert ok(run, "20k on 2 cores, 20k files")["msg"]["workers"] == 3
    assert ok(run, "15k on 2 cores, nr_open")["msg"]["workers"] == 2


def test_a_capacity_no_split_can_hold_yields_nothing_for_the_role_to_refuse(run):
    # roles/nginx_site/tasks/capacity.yml asserts on this before any file changes.
    assert ok(run, "10M on 2 cores, 20k files")["msg"] == {}
