# Copyright: (c) 2026, wsnotify maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The self-check every host runs on a systemd timer: verify's checks, from the host itself.

Installed on the host as the package ``wsnotify_checks`` (this directory, built into a wheel by
roles/selfcheck/files/build_checks_wheel.py), so it runs the very code the Ansible modules
run: ``Connection`` for the url, TLS and the token, ``diagnose()`` for the operator's message.
Per target (``direct`` = the service's port on a WS node, ``nginx`` = the site over TLS on a
proxy; a host that is both checks both):

- ``refused``: a client with an invalid token is closed with 4401;
- ``welcome``: a client with a valid token (minted from JWT_SECRET) is upgraded and welcomed;
- ``roundtrip``: a notification published to that client (PUBLISH_TOKEN) arrives on its socket;

``nginx_site_linked``: the site's link in sites-enabled is there (verify's check beside it);
and ``config``: the service's own ``check-config`` accepts the live EnvironmentFile (a blanked
file is found before the next restart fails on it). The secrets come from the environment,
which is the service's EnvironmentFile read by systemd (never a command line); on a proxy without
the service, the self-check's own file with the same names (role selfcheck).

Each result is one journal line (failures at priority err), a JSON state file (``status`` reads
it) and a Prometheus textfile (node_exporter's textfile collector): per-check status, latency
and the last success time. Exit status 1 when any check failed. Standard library only.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import ssl
import subprocess
import sys
import time
import uuid
from datetime import datetime
from pathlib import Path

from .websocket import tcp_error, tls_failure
from .ws_diagnosis import CheckFailed, diagnose
from .ws_protocol import ConnectionClosed, WebSocketError
from .wsnotify_connection import CONNECTION_ARGUMENT_SPEC, Connection

STATE_FILE = "last.json"
TEXTFILE = "wsnotify_selfcheck.prom"
PROBE_USER = "selfcheck-probe"


class Failed(Exception):
    """A check failed: ``message`` is what the operator reads (diagnose's hint when it applies)."""


def endpoint(url: str, ca_path: str | None, timeout: float, unit: str, **token) -> Connection:
    """A Connection with the modules' option defaults (CONNECTION_ARGUMENT_SPEC) and ``token``
    (token=... or jwt_secret=..., user_id=..., jwt_audience/issuer=...)."""
    params = {name: option.get("default") for name, option in CONNECTION_ARGUMENT_SPEC.items()}
    params.update(headers={}, url=url, ca_path=ca_path or None, timeout=timeout, unit=unit)
    params.update(token)
    return Connection(params)


def _open(conn: Connection):
    try:
        ws = conn.open()
        conn.authenticate(ws)
        return ws
    except WebSocketError as exc:
        raise Failed(conn.hint(exc)) from None


def _next(ws, conn: Connection, deadline: float):
    """The next decoded text message, or None at the deadline; a close fails with its hint."""
    try:
        msg = ws.recv(max(deadline - time.monotonic(), 0.001))
    except WebSocketError as exc:
        raise Failed(conn.hint(exc)) from None
    if msg is None:
        return None
    if msg.kind == "close":
        raise Failed(conn.hint(ConnectionClosed(msg.code, msg.reason)))
    try:
        return json.loads(msg.text)
    except ValueError:
        return msg.text[:200]


def check_refused(url: str, ca_path: str | None, timeout: float, unit: str) -> float:
    """An invalid token is closed with 4401 (verify's first check). Returns milliseconds."""
    conn = endpoint(url, ca_path, timeout, unit, token="not-a-valid-token")
    start = time.monotonic()
    ws = _open(conn)
    try:
        deadline = start + timeout
        while time.monotonic() < deadline:
            try:
                _next(ws, conn, deadline)
            except Failed:
                if ws.close_code == 4401:
                    return (time.monotonic() - start) * 1000
                raise
        raise Failed(conn.hint(CheckFailed("not_enforced", "the connection stayed open")))
    finally:
        ws.close(1000, "", timeout=1.0)


def publish(url: str, token: str, payload: dict, timeout: float, ctx, conn: Connection) -> None:
    """POST the probe to the publisher endpoint beside ``url``; failures get diagnose's hint."""
    secure = conn.target.secure
    host, port = conn.target.host, conn.target.port
    client_class = http.client.HTTPSConnection if secure else http.client.HTTPConnection
    extra = {"context": ctx} if secure else {}
    client = client_class(host, port, timeout=timeout, **extra)
    path = "/api/notifications"
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    try:
        client.request("POST", path, body=json.dumps(payload), headers=headers)
        response = client.getresponse()
        status, body = response.status, response.read(4096).decode("utf-8", "replace")
    except ssl.SSLError as exc:
        raise Failed(conn.hint(tls_failure(exc, host, port, timeout))) from None
    except OSError as exc:
        raise Failed(conn.hint(tcp_error(exc, host, port))) from None
    except http.client.HTTPException as exc:
        raise Failed(conn.hint(CheckFailed("publish_invalid", "", detail=repr(exc)))) from None
    finally:
        client.close()
    if not 200 <= status < 300:
        refused = CheckFailed("publish_status", "", status=status, body=body, path=path)
        raise Failed(conn.hint(refused))


def check_welcome_and_roundtrip(
    url: str, ca_path: str | None, timeout: float, unit: str, secrets: dict
) -> tuple[float, float, dict | None]:
    """A valid token is welcomed (handshake ms), then a published notification arrives on
    that socket (round trip ms, from the publish request to the frame); with the TLS details
    (the certificate's expiry) for wss."""
    if not secrets.get("jwt_secret") or not secrets.get("publish_token"):
        raise Failed(
            "JWT_SECRET or PUBLISH_TOKEN is not in the service's EnvironmentFile (read by this "
            "unit's EnvironmentFile=): no token can be minted; see the config check"
        )
    conn = endpoint(
        url,
        ca_path,
        timeout,
        unit,
        jwt_secret=secrets["jwt_secret"],
        user_id=PROBE_USER,
        jwt_audience=secrets.get("jwt_audience") or None,
        jwt_issuer=secrets.get("jwt_issuer") or None,
    )
    start = time.monotonic()
    ws = _open(conn)
    try:
        deadline = start + timeout
        while True:
            value = _next(ws, conn, deadline)
            if value is None:
                missing = CheckFailed("no_message", "", message_type="welcome", timeout=timeout)
                raise Failed(conn.hint(missing))
            if isinstance(value, dict) and value.get("type") == "welcome":
                break
        handshake_ms = (time.monotonic() - start) * 1000
        marker = f"selfcheck-{uuid.uuid4().hex}"
        payload = {
            "user_id": str(value.get("user_id") or PROBE_USER),
            "title": "wsnotify self-check",
            "body": f"self-check probe {marker}",
            "data": {"marker": marker, "source": "selfcheck"},
        }
        sent = time.monotonic()
        publish(url, secrets["publish_token"], payload, timeout, conn.ssl_context, conn)
        deadline = time.monotonic() + timeout
        received: list = []
        while (value := _next(ws, conn, deadline)) is not None:
            data = value.get("data") if isinstance(value, dict) else None
            if isinstance(data, dict) and data.get("marker") == marker:
                if isinstance(value.get("id"), int):  # read, so it leaves no unread trace
                    ws.send_text(json.dumps({"type": "ack", "ids": [value["id"]]}), timeout)
                return handshake_ms, (time.monotonic() - sent) * 1000, ws.tls
            received.append(value)
        raise Failed(conn.hint(CheckFailed("not_delivered", "", received=received)))
    finally:
        ws.close(1000, "", timeout=1.0)


def check_config(command: str, timeout: float) -> float:
    """The service's own ``check-config`` on the environment this unit got from systemd (an
    interpreter start and the service's imports: a few timeouts on a loaded host)."""
    start = time.monotonic()
    try:
        run = subprocess.run(
            [command, "check-config"], capture_output=True, text=True, timeout=timeout
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise Failed(f"cannot run {command} check-config: {exc}") from None
    if run.returncode != 0:
        lines = (run.stderr or run.stdout).strip().splitlines()
        raise Failed("the EnvironmentFile fails check-config: " + "; ".join(lines))
    return (time.monotonic() - start) * 1000


def check_site_link(path: str) -> float:
    """The site's link in sites-enabled is there (verify's first check through nginx)."""
    start = time.monotonic()
    if not os.path.islink(path):
        missing = CheckFailed("site_not_linked", "", path=path)
        raise Failed(diagnose(missing, "", 0, True, "nginx"))
    return (time.monotonic() - start) * 1000


def secrets_from_environment(env=os.environ) -> dict:
    """What the checks need from the service's EnvironmentFile (the service's names for them)."""
    return {
        "jwt_secret": env.get("JWT_SECRET") or env.get("NEXTAUTH_SECRET"),
        "publish_token": env.get("PUBLISH_TOKEN"),
        "jwt_audience": env.get("JWT_AUDIENCE"),
        "jwt_issuer": env.get("JWT_ISSUER"),
    }


def run_checks(args: argparse.Namespace, secrets: dict) -> tuple[dict, dict]:
    """Every check once: {name: (ok, message, latency_ms)}, and {target: the expiry (ISO 8601)
    of the certificate its wss connection presented}."""
    results: dict = {}
    certificates: dict = {}

    def record(name: str, check, *check_args) -> float | tuple | None:
        try:
            value = check(*check_args)
        except Failed as exc:
            results[name] = (False, str(exc), None)
            return None
        except ValueError as exc:  # a bad url or ca_path: the unit's arguments
            results[name] = (False, f"invalid self-check setting: {exc}", None)
            return None
        first = value[0] if isinstance(value, tuple) else value
        results[name] = (True, "ok", round(first, 1))
        return value

    if args.check_config_command:
        record("config", check_config, args.check_config_command, args.timeout * 4)
    targets = [("direct", args.direct_url, None, args.unit)] if args.direct_url else []
    if args.nginx_url:
        targets.append(("nginx", args.nginx_url, args.ca_path, "nginx"))
    if args.site_link:
        record("nginx_site_linked", check_site_link, args.site_link)
    for target, url, ca_path, unit in targets:
        record(f"{target}_refused", check_refused, url, ca_path, args.timeout, unit)
        both = record(
            f"{target}_welcome",
            check_welcome_and_roundtrip,
            url,
            ca_path,
            args.timeout,
            unit,
            secrets,
        )
        if both is None:
            results[f"{target}_roundtrip"] = (False, results[f"{target}_welcome"][1], None)
        else:
            results[f"{target}_roundtrip"] = (True, "ok", round(both[1], 1))
            if both[2] and both[2].get("not_after"):
                certificates[target] = both[2]["not_after"]
    return results, certificates


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ")


def write_state(state_dir: Path, results: dict, certificates: dict, now: float) -> dict:
    """The JSON state (with each check's last success carried over) and the textfile, each
    replaced atomically, so a reader never sees half a file."""
    path = state_dir / STATE_FILE
    try:
        previous = json.loads(path.read_text())["checks"]
    except (OSError, ValueError, KeyError):
        previous = {}
    checks = {}
    for name, (ok, message, latency) in results.items():
        last = now if ok else previous.get(name, {}).get("last_success")
        checks[name] = {"ok": ok, "message": message, "latency_ms": latency, "last_success": last}
    state = {"time": now, "ok": all(c["ok"] for c in checks.values()), "checks": checks}
    state["certificates"] = certificates

    def expiry(iso: str) -> float:
        return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()

    # (metric, help, label, {label value: value}); a None value is left out.
    metrics = [
        (
            "up",
            "Whether the check passed in the last self-check run.",
            "check",
            {n: int(c["ok"]) for n, c in checks.items()},
        ),
        (
            "latency_seconds",
            "How long the check took when it passed.",
            "check",
            {n: c["latency_ms"] and c["latency_ms"] / 1000 for n, c in checks.items()},
        ),
        (
            "last_success_timestamp_seconds",
            "When the check last passed.",
            "check",
            {n: c["last_success"] for n, c in checks.items()},
        ),
        (
            "certificate_expiry_timestamp_seconds",
            "When the target's certificate expires.",
            "target",
            {t: expiry(iso) for t, iso in certificates.items()},
        ),
        ("last_run_timestamp_seconds", "When the self-check last ran.", None, {None: now}),
    ]
    lines = []
    for metric, text, label, values in metrics:
        name = f"wsnotify_selfcheck_{metric}"
        lines += [f"# HELP {name} {text}", f"# TYPE {name} gauge"]
        for key, value in values.items():
            if value is not None:
                labels = f'{{{label}="{key}"}}' if label else ""
                lines.append(f"{name}{labels} {value:.4f}".rstrip("0").rstrip("."))
    for name, text in ((STATE_FILE, json.dumps(state, indent=1)), (TEXTFILE, "\n".join(lines))):
        tmp = state_dir / f".{name}.tmp"
        tmp.write_text(text + "\n")
        tmp.replace(state_dir / name)
    return state


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="wsnotify-selfcheck",
        description="verify's checks from this host; secrets come from the environment only",
    )
    parser.add_argument(
        "--direct-url", default="", help="the service's port, ws://HOST:PORT/ws (not on a proxy)"
    )
    parser.add_argument("--nginx-url", default="", help="the site, wss://HOST:PORT/ws (optional)")
    parser.add_argument("--ca-path", default="", help="CA or certificate for --nginx-url")
    parser.add_argument("--site-link", default="", help="the site's link in sites-enabled")
    parser.add_argument("--unit", default="wsnotify", help="the service's systemd unit")
    parser.add_argument("--check-config-command", default="", help="the service's wsnotify")
    parser.add_argument("--state-dir", type=Path, required=True)
    parser.add_argument("--timeout", type=float, default=5.0)
    args = parser.parse_args(argv)
    if not args.direct_url and not args.nginx_url:
        parser.error("nothing to check: give --direct-url (WS node), --nginx-url (proxy) or both")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    results, certificates = run_checks(args, secrets_from_environment())
    state = write_state(args.state_dir, results, certificates, time.time())
    for name, check in state["checks"].items():
        if check["ok"]:
            print(f"<6>{name} ok {check['latency_ms']} ms", flush=True)
        else:
            # <3>: priority err in the journal (SyslogLevelPrefix), so `journalctl -p err` has it.
            print(f"<3>{name} FAILED: {_escape(check['message'])}", flush=True)
    return 0 if state["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
