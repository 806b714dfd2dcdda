"""``wsnotify status``: the running service's own view of itself, read from its port.

It asks the process configured by the same environment (``WSNOTIFY_HOST``/``WSNOTIFY_PORT``)
for ``/healthz`` and ``/metrics`` and prints one table: health of Redis and PostgreSQL, the
Redis subscription, open connections and file descriptors, uptime, handshakes by outcome,
deliveries, slow-client drops, recoveries. The host-level view (unit, release, journal, nginx,
certificate, self-check) is ``make status`` (``library/wsnotify_status.py``), which runs on
every host of an inventory.

Exit codes: 0 healthy; 1 the service answers but something is wrong (each problem named on
stderr); 69 nothing answers on the port.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

EX_UNHEALTHY = 1  # (69, nothing answers, is the CLI's EX_UNAVAILABLE)
TIMEOUT = 5.0


@dataclass
class Report:
    """What the service said about itself, and what is wrong with it."""

    url: str
    health: dict[str, Any] = field(default_factory=dict)
    values: dict[str, float] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "health": self.health,
            "metrics": self.values,
            "problems": self.problems,
        }


def base_url(host: str, port: int) -> str:
    """Where to reach the service from this host: a wildcard address means loopback."""
    if host in ("0.0.0.0", ""):  # noqa: S104 - only read here, never bound
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _get(url: str) -> tuple[int, str]:
    """Status and body; an HTTP error status is an answer too (``/healthz`` says 503)."""
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT) as response:  # noqa: S310 - our port
            return response.status, response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode("utf-8", "replace")


def metric_values(text: str) -> dict[str, float]:
    """Samples by name, labelled ones as ``name{label=value}``: what the table shows."""
    values: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name.endswith(("_bucket", "_created")):
                continue
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            values[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return values


def collect(url: str) -> Report:
    """Ask the service; raises OSError when nothing answers on its port."""
    report = Report(url)
    status, body = _get(url + "/healthz")
    try:
        report.health = json.loads(body)
    except ValueError:
        report.health = {}
    if status != 200 or report.health.get("status") != "ok":
        for backend in ("redis", "postgres"):
            state = report.health.get(backend)
            if state != "ok":
                report.problems.append(f"{backend} is {state or 'unknown'} (/healthz: {status})")
        if not report.problems:
            report.problems.append(f"/healthz answered {status}: {body[:200]}")
    status, body = _get(url + "/metrics")
    if status != 200:
        report.problems.append(f"/metrics answered {status}")
        return report
    report.values = metric_values(body)
    if report.values.get("wsnotify_redis_subscribed") == 0.0:
        report.problems.append(
            "no live Redis subscription: notifications published on other nodes do not arrive"
        )
    return report


def _count(values: dict[str, float], name: str, label: str, *outcomes: str) -> str:
    return ", ".join(
        f"{outcome} {values.get(f'{name}{{{label}={outcome}}}', 0):.0f}" for outcome in outcomes
    )


def _uptime(values: dict[str, float]) -> str:
    started = values.get("process_start_time_seconds")
    if started is None:
        return "-"
    seconds = int(time.time() - started)
    days, rest = divmod(seconds, 86400)
    return (f"{days} d " if days else "") + time.strftime("%H:%M:%S", time.gmtime(rest))


def render(report: Report) -> str:
    """The table an operator reads."""
    v, health = report.values, report.health
    fds = v.get("process_open_fds")
    rows = [
        ("service", report.url),
        ("health", health.get("status", "-")),
        ("redis / postgresql", f"{health.get('redis', '-')} / {health.get('postgres', '-')}"),
        (
            "redis subscription",
            {1.0: "live", 0.0: "DOWN"}.get(v.get("wsnotify_redis_subscribed", -1), "-"),
        ),
        ("uptime", _uptime(v)),
        ("open connections", f"{v.get('wsnotify_connections', 0):.0f}"),
        (
            "open files",
            "-" if fds is None else f"{fds:.0f} of {v.get('process_max_fds', 0):.0f}",
        ),
        (
            "handshakes",
            _count(
                v,
                "wsnotify_handshakes_total",
                "outcome",
                "ok",
                "unauthorized",
                "origin_rejected",
                "over_limit",
                "over_capacity",
            ),
        ),
        ("deliveries", f"{v.get('wsnotify_deliveries_total', 0):.0f}"),
        ("slow-client drops", f"{v.get('wsnotify_slow_client_drops_total', 0):.0f}"),
        ("published here", _count(v, "wsnotify_published_total", "result", "ok", "failed")),
        ("redis reconnects", f"{v.get('wsnotify_redis_reconnects_total', 0):.0f}"),
        (
            "recoveries",
            _count(v, "wsnotify_recoveries_total", "outcome", "complete", "partial", "failed"),
        ),
    ]
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)
