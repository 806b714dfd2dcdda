"""``wsnotify status`` against a running service with real backends: a healthy table and exit 0,
JSON, the problems named with exit 1 when a backend is gone, and 69 naming the port when nothing
answers. Also its metrics parsing on the service's own exposition."""

from __future__ import annotations

import json
import re
import subprocess

from backends import free_port, start_redis
from wsnotify_harness import ServiceProcess, base_env, wsnotify_cmd

from wsnotify import status
from wsnotify.metrics import Metrics


def status_of(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        wsnotify_cmd("status", *args), env=env, capture_output=True, text=True, timeout=30
    )


def rows(table: str) -> dict[str, str]:
    """The table's lines by name (names and values are two or more spaces apart)."""
    return dict(re.split(r"\s{2,}", line, maxsplit=1) for line in table.splitlines())


def test_a_healthy_service_is_one_table_and_exit_0(service):
    result = status_of(service.env)
    assert result.returncode == 0, result.stderr
    table = rows(result.stdout)
    assert table["service"] == f"http://127.0.0.1:{service.port}"
    assert table["health"] == "ok"
    assert table["redis / postgresql"] == "ok / ok"
    assert table["redis subscription"] == "live"
    assert table["open files"].split(" of ")[0].isdigit()
    assert table["handshakes"].startswith("ok ")
    assert result.stderr == ""


def test_json_carries_the_same_report(service):
    result = status_of(service.env, "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["health"] == {"status": "ok", "redis": "ok", "postgres": "ok"}
    assert report["metrics"]["wsnotify_redis_subscribed"] == 1.0
    assert report["problems"] == []


def test_a_lost_backend_is_named_and_exits_1(postgres, workdir):
    redis = start_redis(workdir / "redis-status", free_port(), password="status-redis-pw-1")
    proc = ServiceProcess(base_env(postgres.url, redis.url), free_port(), workdir).start()
    try:
        redis.stop()
        result = status_of(proc.env)
    finally:
        proc.stop()
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "wsnotify: redis is " in result.stderr, result.stderr
    assert "status-redis-pw-1" not in result.stdout + result.stderr
    assert rows(result.stdout)["health"] == "error"


def test_nothing_listening_exits_69_naming_the_url_and_the_units(env):
    port = free_port()
    result = status_of({**env, "WSNOTIFY_PORT": str(port)})
    assert result.returncode == 69, (result.stdout, result.stderr)
    assert result.stderr.startswith(f"wsnotify: nothing answers on http://127.0.0.1:{port} ")
    assert "systemctl status wsnotify wsnotify.socket" in result.stderr
    assert result.stdout == ""


def test_metric_values_reads_the_services_own_exposition():
    metrics = Metrics()
    metrics.handshake_ok.inc(3)
    metrics.handshake_unauthorized.inc()
    metrics.redis_subscribed.set(1)
    metrics.published.labels("ok").inc(2)
    body, _ = metrics.render()
    values = status.metric_values(body.decode())
    assert values["wsnotify_handshakes_total{outcome=ok}"] == 3
    assert values["wsnotify_handshakes_total{outcome=unauthorized}"] == 1
    assert values["wsnotify_published_total{result=ok}"] == 2
    assert values["wsnotify_redis_subscribed"] == 1
    shown = status.render(status.Report("http://x", {"status": "ok"}, values))
    assert "ok 3, unauthorized 1, origin_rejected 0, over_limit 0, over_capacity 0" in shown


def test_base_url_reaches_a_wildcard_bind_over_loopback():
    assert status.base_url("0.0.0.0", 3002) == "http://127.0.0.1:3002"
    assert status.base_url("::", 3002) == "http://[::1]:3002"
    assert status.base_url("10.0.0.5", 3002) == "http://10.0.0.5:3002"
    assert status.base_url("fd00::5", 3002) == "http://[fd00::5]:3002"
