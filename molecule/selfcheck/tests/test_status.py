"""playbooks/status.yml (make status) on the deployed host: a healthy table and exit 0, then
with the site unlinked a non-zero exit naming the link. The tables go to .cache/status-*.txt."""

import re

from conftest import HOST, ROOT, playbook

testinfra_hosts = [f"podman://{HOST}"]

ROWS = (
    "unit",
    "READY/STATUS",
    "restarts since boot",
    "listening socket",
    "release",
    "redis / postgresql",
    "open connections",
    "redis subscription",
    "last journal errors",
    "self-check",
    "nginx -t",
    "site link",
    "certificate",
)


def table(out: str) -> str:
    """The debug task's lines, as printed (YAML list under msg:)."""
    block = out.split("TASK [Show the host's table]", 1)[1].split("TASK [", 1)[0]
    return "\n".join(re.sub(r"^\s*- ", "", line) for line in block.splitlines() if line.strip())


def save(name: str, text: str) -> None:
    (ROOT / ".cache" / f"status-{name}.txt").write_text(text + "\n")


def test_status_of_a_healthy_host_is_one_table_and_exit_0():
    run = playbook("status.yml")
    shown = table(run.out)
    save("healthy", shown)
    assert run.rc == 0, run
    for row in ROWS:
        assert re.search(rf"^{re.escape(row)}\s", shown, re.M), (row, shown)
    assert "wsnotify active/running" in shown
    assert "wsnotify.socket active/running" in shown  # the service has taken the socket
    assert "ok / ok" in shown
    assert "site link" in shown and "present" in shown


def test_status_with_the_site_unlinked_fails_naming_the_link(host):
    host.check_output("rm /etc/nginx/sites-enabled/wsnotify && systemctl reload nginx")
    try:
        run = playbook("status.yml")
    finally:
        host.check_output(
            "ln -s /etc/nginx/sites-available/wsnotify /etc/nginx/sites-enabled/wsnotify"
            " && systemctl reload nginx"
        )
    save(
        "site-unlinked",
        table(run.out)
        + "\n\n"
        + "\n".join(line for line in run.out.splitlines() if "fatal:" in line or "msg:" in line),
    )
    assert run.rc != 0, run
    assert "/etc/nginx/sites-enabled/wsnotify is missing (or not a link)" in run.out, run
    assert "MISSING" in table(run.out)
