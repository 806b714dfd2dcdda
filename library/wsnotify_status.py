#!/usr/bin/python
# Copyright: (c) 2026, wsnotify maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: wsnotify_status
short_description: Read the state of one host of the wsnotify stack, and name what is wrong
description:
  - Reads, without changing anything, what an operator looks at first - the service's unit
    (state, the READY/STATUS text, restarts) and its listening socket, its release and the
    release's age, its open connections and Redis subscription (C(/metrics)), Redis and
    PostgreSQL as the service sees them (C(/healthz)), its last errors in the journal, nginx's
    config test and the site's link, the certificate's days to expiry, and the last result of
    the self-check timer.
  - Returns them as fields, as C(lines) (a table for a person) and as C(problems) (one sentence
    each, naming what is wrong); it never fails because of what it finds, so a playbook shows
    every host before it fails on them.
  - Runs on the target with the Python standard library only.
version_added: "1.0.0"
author:
  - wsnotify maintainers
options:
  service:
    description: Whether the host runs the service (a WS node).
    type: bool
    default: true
  proxy:
    description: Whether the host runs nginx with the site (a proxy).
    type: bool
    default: true
  unit:
    description: The service's systemd unit.
    type: str
    default: wsnotify
  base_dir:
    description: The service's installation directory (C(current) links to the running release).
    type: path
    default: /opt/wsnotify
  service_url:
    description: The service's own HTTP base url, for C(/healthz) and C(/metrics).
    type: str
    default: http://127.0.0.1:3002
  site_link:
    description: The site's link in sites-enabled.
    type: path
    default: /etc/nginx/sites-enabled/wsnotify
  certificate:
    description: The site's certificate.
    type: path
    default: /etc/nginx/tls/wsnotify.crt
  certificate_warning_days:
    description: A certificate expiring within this many days is a problem.
    type: int
    default: 14
  selfcheck_state:
    description: The self-check's JSON state file (role selfcheck).
    type: path
    default: /var/lib/wsnotify-selfcheck/last.json
  selfcheck_max_age:
    description: Seconds after which the self-check's last run is stale (its timer stopped).
    type: int
    default: 120
  journal_lines:
    description: How many of the service's last error lines in the journal (this boot) to show.
    type: int
    default: 3
attributes:
  check_mode:
    support: full
    details: It only reads; C(changed) is always false.
  diff_mode:
    support: none
  platform:
    platforms: posix
"""

EXAMPLES = r"""
- name: Read this host's state
  wsnotify_status:
    proxy: "{{ inventory_hostname in groups['proxy'] }}"
    service: "{{ inventory_hostname in groups['ws_nodes'] }}"
  register: status

- name: Show it
  ansible.builtin.debug:
    msg: "{{ status.lines }}"
"""

RETURN = r"""
lines:
  description: The table, one line per row (label, value).
  returned: always
  type: list
  elements: str
problems:
  description: What is wrong, one sentence each; empty when all is well.
  returned: always
  type: list
  elements: str
unit:
  description: The unit's ActiveState, SubState, StatusText, NRestarts and when it became active.
  returned: when O(service)
  type: dict
socket:
  description: The ActiveState and SubState of the unit's socket (C(<unit>.socket)), which holds
    the port across restarts.
  returned: when O(service)
  type: dict
release:
  description: The running release id and its age in hours.
  returned: when O(service)
  type: dict
health:
  description: The service's C(/healthz) body (C(redis), C(postgres)), or the error reaching it.
  returned: when O(service)
  type: dict
metrics:
  description: Selected gauges and counters from C(/metrics).
  returned: when O(service)
  type: dict
certificate_days:
  description: Whole days until the site's certificate expires.
  returned: when O(proxy)
  type: int
selfcheck:
  description: The self-check's last state (per check ok and message) and its age in seconds.
  returned: when O(service) or O(proxy)
  type: dict
"""

import json
import os
import re
import subprocess
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.ws_diagnosis import CheckFailed, diagnose

METRICS = (
    "wsnotify_connections",
    "wsnotify_redis_subscribed",
    "wsnotify_slow_client_drops_total",
    "wsnotify_redis_reconnects_total",
)


def run(argv: list[str]) -> tuple[int, str]:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return 127, str(exc)
    return done.returncode, (done.stdout + done.stderr).strip()


def http_get(url: str) -> tuple[int | None, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 (our own url)
            return response.status, response.read(200_000).decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(4096).decode("utf-8", "replace")
    except (OSError, ValueError) as exc:
        return None, str(getattr(exc, "reason", exc))


def unit_state(unit: str) -> dict:
    props = "ActiveState,SubState,StatusText,NRestarts,ActiveEnterTimestamp,Result"
    rc, out = run(["systemctl", "show", unit, f"--property={props}"])
    state = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    state["rc"] = rc
    return state


def release(base_dir: str) -> dict:
    current = os.path.join(base_dir, "current")
    try:
        target = os.path.realpath(current, strict=True)
    except OSError:
        return {"id": None}
    try:
        installed = os.stat(os.path.join(target, "venv", ".installed")).st_mtime
    except OSError:
        installed = os.stat(target).st_mtime
    return {"id": os.path.basename(target), "age_hours": round((time.time() - installed) / 3600, 1)}


def parse_metrics(text: str) -> dict:
    values: dict = {}
    for line in text.splitlines():
        match = re.match(r"^([a-z_]+)(?:\{[^}]*\})?\s+([-+0-9.eE]+|NaN)$", line)
        if match and match.group(1) in METRICS:
            values[match.group(1)] = values.get(match.group(1), 0.0) + float(match.group(2))
    return values


def certificate_days(path: str) -> tuple[int | None, str]:
    rc, out = run(["openssl", "x509", "-noout", "-enddate", "-in", path])
    if rc != 0 or "notAfter=" not in out:
        return None, out
    stamp = out.split("notAfter=", 1)[1].strip()
    expires = datetime.strptime(stamp, "%b %d %H:%M:%S %Y %Z").replace(tzinfo=UTC)
    return int((expires - datetime.now(UTC)).total_seconds() // 86400), stamp


def selfcheck(path: str) -> dict:
    try:
        with open(path) as f:
            state = json.load(f)
    except (OSError, ValueError) as exc:
        return {"error": f"no self-check state at {path} ({exc})"}
    state["age_seconds"] = round(time.time() - state.get("time", 0))
    return state


def service_part(p: dict, result: dict, rows: list, problems: list) -> None:
    unit = unit_state(p["unit"])
    result["unit"] = unit
    active = f"{unit.get('ActiveState')}/{unit.get('SubState')}"
    rows.append(("unit", f"{p['unit']} {active} since {unit.get('ActiveEnterTimestamp') or '-'}"))
    rows.append(("READY/STATUS", unit.get("StatusText") or "-"))
    rows.append(("restarts since boot", unit.get("NRestarts", "-")))
    # The port is the socket's (socket activation): without it, a restart refuses clients.
    socket = unit_state(f"{p['unit']}.socket")
    result["socket"] = {k: socket.get(k) for k in ("ActiveState", "SubState")}
    listening = f"{socket.get('ActiveState')}/{socket.get('SubState')}"
    rows.append(("listening socket", f"{p['unit']}.socket {listening}"))
    # active/running while the service holds the socket, active/listening while it waits for one
    # (a cluster test found the first: the second alone was taken for the healthy state).
    if listening not in ("active/running", "active/listening"):
        problems.append(
            f"{p['unit']}.socket is {listening}, not active: nothing holds the port across a "
            f"restart; `systemctl start {p['unit']}.socket` (site.yml does)"
        )
    if active != "active/running":
        problems.append(
            f"{p['unit']} is {active} (result {unit.get('Result')}), not active/running: "
            f"see `systemctl status {p['unit']}` and `journalctl -u {p['unit']} -n 50`"
        )

    rel = release(p["base_dir"])
    result["release"] = rel
    if rel["id"] is None:
        rows.append(("release", "none"))
        problems.append(f"{p['base_dir']}/current links to no release: deploy with site.yml")
    else:
        rows.append(("release", f"{rel['id']} ({rel['age_hours']} h old)"))

    status, body = http_get(p["service_url"] + "/healthz")
    try:
        health = json.loads(body) if status is not None else {"error": body}
    except ValueError:
        health = {"error": f"HTTP {status}: {body[:200]}"}
    result["health"] = health
    if "error" in health and "redis" not in health:
        rows.append(("redis / postgresql", f"unknown: /healthz: {health['error']}"))
        problems.append(f"the service's /healthz does not answer: {health['error']}")
    else:
        rows.append(("redis / postgresql", f"{health.get('redis')} / {health.get('postgres')}"))
        for backend in ("redis", "postgres"):
            if health.get(backend) != "ok":
                problems.append(f"the service reports {backend} as {health.get(backend)!r}")

    status, body = http_get(p["service_url"] + "/metrics")
    metrics = parse_metrics(body) if status == 200 else {}
    result["metrics"] = metrics
    if metrics:
        rows.append(("open connections", f"{metrics.get('wsnotify_connections', 0):.0f}"))
        subscribed = metrics.get("wsnotify_redis_subscribed")
        rows.append(("redis subscription", {1.0: "live", 0.0: "DOWN"}.get(subscribed, "-")))
        drops = metrics.get("wsnotify_slow_client_drops_total", 0)
        rows.append(("slow-client drops", f"{drops:.0f}"))
        if subscribed == 0.0:
            problems.append("the service has no live Redis subscription: nothing is delivered")
    else:
        rows.append(("open connections", f"unknown: /metrics: {status} {body[:100]}"))

    count = str(p["journal_lines"])
    _, errors = run(
        ["journalctl", "-u", p["unit"], "-b", "-p", "err", "-n", count, "-o", "cat", "--no-pager"]
    )
    lines = [line[:160] for line in errors.splitlines() if line.strip()]
    result["journal_errors"] = lines
    rows.append(("last journal errors", lines[0] if lines else "none"))
    rows.extend(("", line) for line in lines[1:])


def selfcheck_part(p: dict, result: dict, rows: list, problems: list) -> None:
    """The self-check timer's last run: every WS node and proxy has one (role selfcheck)."""
    check = selfcheck(p["selfcheck_state"])
    result["selfcheck"] = check
    if "error" in check:
        rows.append(("self-check", check["error"]))
        problems.append(f"the self-check has not run: {check['error']}")
        return
    failing = {name: c["message"] for name, c in check.get("checks", {}).items() if not c["ok"]}
    verdict = "ok" if not failing else f"FAILED: {', '.join(failing)}"
    rows.append(("self-check", f"{verdict} ({check['age_seconds']} s ago)"))
    for name, message in failing.items():
        rows.append(("", f"{name}: {message[:200]}"))
        problems.append(f"self-check {name} fails: {message}")
    if check["age_seconds"] > p["selfcheck_max_age"]:
        problems.append(
            f"the self-check last ran {check['age_seconds']} s ago: its timer is not running "
            "(`systemctl status wsnotify-selfcheck.timer`)"
        )


def proxy_part(p: dict, result: dict, rows: list, problems: list) -> None:
    rc, out = run(["nginx", "-t"])
    result["nginx_test"] = {"rc": rc, "output": out}
    rows.append(("nginx -t", "ok" if rc == 0 else f"FAILED: {out.splitlines()[-1] if out else rc}"))
    if rc != 0:
        problems.append(f"nginx -t fails: {out}")
    linked = os.path.islink(p["site_link"])
    result["site_linked"] = linked
    rows.append(("site link", f"{p['site_link']} {'present' if linked else 'MISSING'}"))
    if not linked:
        problems.append(
            diagnose(CheckFailed("site_not_linked", "", path=p["site_link"]), "", 0, True)
        )
    days, detail = certificate_days(p["certificate"])
    result["certificate_days"] = days
    if days is None:
        rows.append(("certificate", f"unreadable: {detail[:100]}"))
        problems.append(f"cannot read the certificate {p['certificate']}: {detail}")
        return
    rows.append(("certificate", f"expires in {days} days ({detail})"))
    if days < p["certificate_warning_days"]:
        problems.append(f"the certificate {p['certificate']} expires in {days} days: renew it")


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            service=dict(type="bool", default=True),
            proxy=dict(type="bool", default=True),
            unit=dict(type="str", default="wsnotify"),
            base_dir=dict(type="path", default="/opt/wsnotify"),
            service_url=dict(type="str", default="http://127.0.0.1:3002"),
            site_link=dict(type="path", default="/etc/nginx/sites-enabled/wsnotify"),
            certificate=dict(type="path", default="/etc/nginx/tls/wsnotify.crt"),
            certificate_warning_days=dict(type="int", default=14),
            selfcheck_state=dict(type="path", default="/var/lib/wsnotify-selfcheck/last.json"),
            selfcheck_max_age=dict(type="int", default=120),
            journal_lines=dict(type="int", default=3),
        ),
        supports_check_mode=True,
    )
    p = module.params
    result: dict = {"changed": False}
    rows: list = []
    problems: list = []
    if p["service"]:
        service_part(p, result, rows, problems)
    if p["proxy"]:
        proxy_part(p, result, rows, problems)
    if p["service"] or p["proxy"]:
        selfcheck_part(p, result, rows, problems)
    width = max((len(label) for label, _ in rows), default=0)
    result["lines"] = [f"{label:<{width}}  {value}" for label, value in rows]
    result["problems"] = problems
    module.exit_json(**result)


if __name__ == "__main__":
    main()
