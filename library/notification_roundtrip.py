#!/usr/bin/python
# Copyright: (c) 2026, wsnotify maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: notification_roundtrip
short_description: Publish a notification through wsnotify and receive it over the WebSocket
description:
  - Connects to the wsnotify WebSocket O(url) as a user, waits for the C(welcome) message,
    publishes a notification carrying a unique marker through the publisher endpoint
    (C(POST /api/notifications), authenticated with the bearer O(publish_token)), and waits for
    that notification on the socket.
  - Returns the end-to-end latency, from sending the publish request to receiving the
    notification frame, which proves the whole path (publisher API, PostgreSQL, Redis fan-out,
    WebSocket delivery, and any proxy in front).
  - When the notification does not arrive, fails with what was received instead and a hint.
  - The token is given with O(token), or minted from the service's JWT secret (O(jwt_secret))
    with the Python standard library (HS256, claims C(sub), C(iat), C(exp), optional C(aud)/C(iss)).
version_added: "1.0.0"
author:
  - wsnotify maintainers
options:
  url:
    description:
      - The wsnotify WebSocket URL, V(ws://127.0.0.1:3002/ws) or V(wss://host/ws).
    type: str
    required: true
  token:
    description:
      - JWT of the user to connect as. Mutually exclusive with O(jwt_secret).
    type: str
  jwt_secret:
    description:
      - The service's C(JWT_SECRET); the module mints a short-lived token for O(user_id) with it.
    type: str
  user_id:
    description:
      - User to connect as and to notify (the JWT C(sub)). Required with O(jwt_secret); with
        O(token) the user named by the server's C(welcome) is used.
    type: str
  jwt_ttl:
    description:
      - Lifetime in seconds of a minted token.
    type: int
    default: 300
  jwt_audience:
    description:
      - C(aud) claim of a minted token, when the service sets C(JWT_AUDIENCE).
    type: str
  jwt_issuer:
    description:
      - C(iss) claim of a minted token, when the service sets C(JWT_ISSUER).
    type: str
  token_location:
    description:
      - How the token is sent, see the M(websocket_handshake) option of the same name.
    type: str
    choices: [header, query, message]
    default: header
  publish_url:
    description:
      - The publisher endpoint. Defaults to O(url) with V(ws)/V(wss) changed to
        V(http)/V(https) and the path V(/api/notifications).
    type: str
  publish_token:
    description:
      - The service's C(PUBLISH_TOKEN), sent as a bearer token to the publisher endpoint.
    type: str
    required: true
  broadcast:
    description:
      - Publish a broadcast (to every connected user) instead of a notification to the user.
    type: bool
    default: false
  title:
    description:
      - Title of the probe notification; its body and C(data.marker) carry the unique marker.
    type: str
    default: wsnotify round trip
  ack:
    description:
      - Acknowledge the probe notification once received, so it does not stay unread for the user.
    type: bool
    default: true
  headers:
    description:
      - Extra headers for the WebSocket upgrade request.
    type: dict
    default: {}
  origin:
    description:
      - C(Origin) header of the upgrade request.
    type: str
  validate_certs:
    description:
      - Verify certificates of V(wss://) and V(https://) endpoints.
    type: bool
    default: true
  ca_path:
    description:
      - CA bundle file (or hashed directory) to trust for both endpoints.
    type: path
  timeout:
    description:
      - Seconds allowed for each step - connecting, the welcome, the publish request, and
        the delivery.
    type: float
    default: 10
  unit:
    description:
      - The systemd unit of the service, named in hints.
    type: str
    default: wsnotify
notes:
  - Supports check mode - the module then connects and authenticates only, and publishes nothing.
  - Returns C(changed=false), like M(ansible.builtin.uri); the probe notification is stored by the
    service (and acknowledged when O(ack=true)).
seealso:
  - module: websocket_handshake
"""

EXAMPLES = r"""
- name: Ensure a published notification reaches a connected user
  notification_roundtrip:
    url: ws://127.0.0.1:3002/ws
    jwt_secret: "{{ wsnotify_jwt_secret }}"
    jwt_audience: "{{ wsnotify_jwt_audience | default(omit, true) }}"
    jwt_issuer: "{{ wsnotify_jwt_issuer | default(omit, true) }}"
    user_id: ansible-probe
    publish_token: "{{ wsnotify_publish_token }}"
  register: roundtrip

- name: Ensure the round trip through nginx (wss and https) takes under half a second
  notification_roundtrip:
    url: "wss://localhost:{{ nginx_site_https_port | default(443) }}/ws"
    ca_path: "{{ nginx_site_tls_certificate_path | default('/etc/nginx/tls/wsnotify.crt') }}"
    jwt_secret: "{{ wsnotify_jwt_secret }}"
    jwt_audience: "{{ wsnotify_jwt_audience | default(omit, true) }}"
    jwt_issuer: "{{ wsnotify_jwt_issuer | default(omit, true) }}"
    user_id: ansible-probe
    publish_token: "{{ wsnotify_publish_token }}"
    unit: nginx
  register: roundtrip_tls
  failed_when: roundtrip_tls.failed or roundtrip_tls.latency_ms > 500
"""

RETURN = r"""
latency_ms:
  description: Milliseconds from sending the publish request to receiving the notification frame.
  returned: success, not in check mode
  type: float
  sample: 4.2
publish_ms:
  description: Milliseconds the publish request took.
  returned: when the publish request was answered
  type: float
connect_ms:
  description: Milliseconds from connecting to receiving the welcome.
  returned: when the welcome arrived
  type: float
published:
  description: Whether a notification was published (false in check mode).
  returned: always
  type: bool
publish_status:
  description: HTTP status of the publish request (wsnotify answers 202).
  returned: when the publish request was answered
  type: int
  sample: 202
notification_id:
  description: Id the publisher returned.
  returned: when the publish request was accepted
  type: int
  sample: 123
user_id:
  description: User the probe connected as (from the welcome message).
  returned: when the welcome arrived
  type: str
marker:
  description: Unique marker carried in the probe's body and C(data.marker).
  returned: when a notification was published
  type: str
notification:
  description: The notification message as received.
  returned: success, not in check mode
  type: dict
  sample: {"type": "notification", "id": 123, "user_id": "42", "title": "wsnotify round trip"}
received:
  description: Other messages received while waiting (first 10); what came instead on failure.
  returned: always
  type: list
  elements: raw
stage:
  description: Step that failed - V(connect), V(auth), V(publish) or V(deliver).
  returned: on failure
  type: str
hint:
  description: The likely cause and what to do.
  returned: on failure
  type: str
"""

import contextlib
import http.client
import json
import threading
import time
import uuid
from urllib.parse import urlsplit, urlunsplit

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.websocket import (
    TLSFailed,
    WebSocketError,
    connect,
    fetch_certificate,
    make_ssl_context,
    merge_headers,
    parse_ws_url,
    tcp_error,
    tls_error,
    token_placement,
)
from ansible.module_utils.ws_diagnosis import explain, explain_close
from ansible.module_utils.wsnotify_jwt import mint_token

MAX_RECEIVED = 10


class StepFailed(Exception):
    """A step of the round trip failed; carries the stage and the operator hint."""

    def __init__(self, stage: str, msg: str, hint: str) -> None:
        super().__init__(msg)
        self.stage = stage
        self.hint = hint


def default_publish_url(ws_url: str) -> str:
    parts = urlsplit(ws_url)
    scheme = "https" if parts.scheme.lower() == "wss" else "http"
    return urlunsplit((scheme, parts.netloc, "/api/notifications", "", ""))


def decode(text: str):
    try:
        return json.loads(text)
    except ValueError:
        return text[:1000]


class Publisher(threading.Thread):
    """POSTs the probe in a thread, so the socket is read while the request is in flight and
    the latency is measured at the frame's arrival, not after the HTTP answer."""

    def __init__(self, url: str, token: str, payload: dict, timeout: float, ctx) -> None:
        super().__init__(daemon=True)
        self.url, self.token, self.payload = url, token, payload
        self.timeout, self.ctx = timeout, ctx
        self.started_at = 0.0
        self.finished_at = 0.0
        self.status: int | None = None
        self.body = ""
        self.error: WebSocketError | None = None

    def run(self) -> None:
        parts = urlsplit(self.url)
        secure = parts.scheme == "https"
        port = parts.port or (443 if secure else 80)
        if secure:
            conn = http.client.HTTPSConnection(
                parts.hostname, port, timeout=self.timeout, context=self.ctx
            )
        else:
            conn = http.client.HTTPConnection(parts.hostname, port, timeout=self.timeout)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        body = json.dumps(self.payload).encode("utf-8")
        headers = {
            "Authorization": f"Bearer {self.token}",
            "Content-Type": "application/json",
            "Accept": "application/json",
        }
        self.started_at = time.monotonic()
        try:
            conn.request("POST", path or "/", body=body, headers=headers)
            response = conn.getresponse()
            self.status = response.status
            self.body = response.read(4096).decode("utf-8", "replace")
        except http.client.HTTPException as exc:
            self.error = WebSocketError(f"invalid HTTP answer from the publisher: {exc!r}")
        except OSError as exc:
            import ssl

            if isinstance(exc, ssl.SSLError):
                self.error = tls_error(exc, parts.hostname, port)
            else:
                self.error = tcp_error(exc, parts.hostname, port)
        finally:
            self.finished_at = time.monotonic()
            conn.close()


def record_publish(pub: Publisher, result: dict) -> None:
    """Evidence of the publish request, also when delivery failed afterwards."""
    if pub.status is None:
        return
    result["publish_status"] = pub.status
    result["publish_ms"] = round((pub.finished_at - pub.started_at) * 1000, 1)
    result["published"] = pub.error is None and 200 <= pub.status < 300
    if result["published"]:
        with contextlib.suppress(ValueError, AttributeError):  # evidence only
            result["notification_id"] = json.loads(pub.body).get("id")


def publish_failure(pub: Publisher, publish_url: str, unit: str) -> StepFailed:
    parts = urlsplit(publish_url)
    secure = parts.scheme == "https"
    port = parts.port or (443 if secure else 80)
    if pub.error is not None:
        err = pub.error
        if isinstance(err, TLSFailed):
            err.certificate = fetch_certificate(parts.hostname, port, pub.timeout)
        hint = explain(err, parts.hostname, port, secure, unit)
        return StepFailed("publish", f"publish request to {publish_url} failed: {err}", hint)
    status, body = pub.status, pub.body[:500]
    if status == 401:
        hint = (
            "the publisher refused publish_token: it must equal PUBLISH_TOKEN in the service's "
            "environment (EnvironmentFile of the unit)"
        )
    elif status == 404:
        hint = (
            f"no publisher endpoint at {parts.path}: check publish_url; behind nginx the site "
            "must proxy /api/ to the service"
        )
    elif status == 400:
        hint = f"the service rejected the notification as invalid: {body}"
    elif status in (502, 503, 504):
        hint = (
            f"the proxy could not reach the service ({status}): see `systemctl status {unit}` "
            f"and `journalctl -u {unit} -n 50`"
        )
    else:
        hint = f"unexpected answer from the publisher: {body}"
    return StepFailed("publish", f"publish request answered HTTP {status}", hint)


def wait_for_welcome(conn, timeout: float, received: list) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        msg = conn.recv(deadline - time.monotonic())
        if msg is None:
            break
        if msg.kind == "close":
            hint = explain_close(msg.code, msg.reason)
            if msg.code == 4401:
                hint += (
                    "; a token minted from jwt_secret is refused when the secret differs from the "
                    "service's JWT_SECRET or JWT_AUDIENCE/JWT_ISSUER are required"
                )
            raise StepFailed("auth", "the server closed the connection instead of welcoming", hint)
        value = decode(msg.text) if msg.kind == "text" else f"<{len(msg.data)} bytes>"
        if isinstance(value, dict) and value.get("type") == "welcome":
            return value
        if len(received) < MAX_RECEIVED:
            received.append(value)
    raise StepFailed(
        "auth",
        f"no welcome message within {timeout}s",
        "the server upgraded but did not confirm authentication; with token_location=message "
        'the first message must be {"type":"auth","token":...}',
    )


def is_probe(value, marker: str) -> bool:
    if not isinstance(value, dict) or value.get("type") != "notification":
        return False
    data = value.get("data")
    return (isinstance(data, dict) and data.get("marker") == marker) or marker in str(
        value.get("body", "")
    )


def wait_for_probe(conn, pub: Publisher, marker: str, timeout: float, received: list, unit: str):
    """Read the socket until the probe arrives; returns (message, arrival time)."""
    deadline = time.monotonic() + 2 * timeout  # publish request + delivery
    while time.monotonic() < deadline:
        if not pub.is_alive() and (pub.error is not None or not 200 <= (pub.status or 0) < 300):
            raise publish_failure(pub, pub.url, unit)
        msg = conn.recv(min(0.05, max(deadline - time.monotonic(), 0.001)))
        if msg is None:
            continue
        arrived = time.monotonic()
        if msg.kind == "close":
            raise StepFailed(
                "deliver",
                "the server closed the connection while the notification was awaited",
                explain_close(msg.code, msg.reason),
            )
        value = decode(msg.text) if msg.kind == "text" else f"<{len(msg.data)} bytes>"
        if is_probe(value, marker):
            return value, arrived
        if len(received) < MAX_RECEIVED:
            received.append(value)
    if any(isinstance(v, dict) and v.get("type") == "notification" for v in received):
        hint = (
            "notifications arrived, but none carried the probe's marker in data.marker or the "
            "body: the service (or something in between) alters or drops body/data, or this "
            "socket receives another user's notifications"
        )
    else:
        hint = (
            "the publisher accepted it but nothing was delivered: the service's Redis subscriber "
            "is down or the publishing node uses another Redis than this socket's node; see "
            f"`journalctl -u {unit} -n 50` and the /healthz endpoint"
        )
    raise StepFailed(
        "deliver",
        f"the notification was not received within {timeout}s after publishing; received "
        f"instead: {json.dumps(received)}",
        hint,
    )


def run(module: AnsibleModule, result: dict) -> None:
    p = module.params
    target = parse_ws_url(p["url"])
    publish_url = p["publish_url"] or default_publish_url(p["url"])
    token = p["token"]
    if p["jwt_secret"]:
        token = mint_token(
            p["jwt_secret"], p["user_id"], p["jwt_ttl"], p["jwt_audience"], p["jwt_issuer"]
        )
    ctx = make_ssl_context(p["validate_certs"], p["ca_path"])
    extra, resource, first_message = token_placement(target, token, p["token_location"])
    headers = merge_headers(p["headers"], extra)
    received = result["received"]

    start = time.monotonic()
    try:
        conn = connect(
            p["url"],
            timeout=p["timeout"],
            headers=headers,
            origin=p["origin"],
            ssl_context=ctx if target.secure else None,
            resource=resource,
        )
    except WebSocketError as exc:
        if isinstance(exc, TLSFailed):
            exc.certificate = fetch_certificate(target.host, target.port, p["timeout"])
        hint = explain(exc, target.host, target.port, target.secure, p["unit"])
        raise StepFailed("connect", f"cannot open the WebSocket: {exc}", hint) from None
    try:
        if first_message:
            conn.send_text(first_message, timeout=p["timeout"])
        welcome = wait_for_welcome(conn, p["timeout"], received)
        result["connect_ms"] = round((time.monotonic() - start) * 1000, 1)
        user_id = str(welcome.get("user_id") or p["user_id"] or "")
        result["user_id"] = user_id
        if module.check_mode:
            result["msg"] = "check mode: connected and authenticated; nothing published"
            return
        marker = f"roundtrip-{uuid.uuid4().hex}"
        result["marker"] = marker
        payload: dict = {"title": p["title"], "body": f"round trip probe {marker}"}
        payload["data"] = {"marker": marker, "source": "notification_roundtrip"}
        if p["broadcast"]:
            payload["broadcast"] = True
        else:
            payload["user_id"] = user_id
        pub = Publisher(publish_url, p["publish_token"], payload, p["timeout"], ctx)
        pub.start()
        try:
            message, arrived = wait_for_probe(conn, pub, marker, p["timeout"], received, p["unit"])
            pub.join(p["timeout"])
        finally:
            record_publish(pub, result)
        result["latency_ms"] = round((arrived - pub.started_at) * 1000, 1)
        if not result["published"]:
            raise publish_failure(pub, publish_url, p["unit"])
        if result.get("notification_id") is None:
            result["notification_id"] = message.get("id")
        result["notification"] = message
        if p["ack"] and isinstance(message.get("id"), int):
            conn.send_text(json.dumps({"type": "ack", "ids": [message["id"]]}), p["timeout"])
        result["msg"] = f"notification delivered in {result['latency_ms']} ms"
    except WebSocketError as exc:
        hint = explain(exc, target.host, target.port, target.secure, p["unit"])
        raise StepFailed(
            "deliver", f"WebSocket failed during the round trip: {exc}", hint
        ) from None
    finally:
        conn.close(1000, "", timeout=min(2.0, p["timeout"]))


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            url=dict(type="str", required=True),
            token=dict(type="str", no_log=True),
            jwt_secret=dict(type="str", no_log=True),
            user_id=dict(type="str"),
            jwt_ttl=dict(type="int", default=300),
            jwt_audience=dict(type="str"),
            jwt_issuer=dict(type="str"),
            token_location=dict(
                type="str", choices=["header", "query", "message"], default="header"
            ),
            publish_url=dict(type="str"),
            publish_token=dict(type="str", required=True, no_log=True),
            broadcast=dict(type="bool", default=False),
            title=dict(type="str", default="wsnotify round trip"),
            ack=dict(type="bool", default=True),
            headers=dict(type="dict", default={}),
            origin=dict(type="str"),
            validate_certs=dict(type="bool", default=True),
            ca_path=dict(type="path"),
            timeout=dict(type="float", default=10),
            unit=dict(type="str", default="wsnotify"),
        ),
        mutually_exclusive=[("token", "jwt_secret")],
        required_one_of=[("token", "jwt_secret")],
        required_by={"jwt_secret": "user_id"},
        supports_check_mode=True,
    )
    result: dict = {
        "changed": False,
        "url": module.params["url"],
        "published": False,
        "received": [],
    }
    if module.params["timeout"] <= 0:
        module.fail_json(msg="timeout must be > 0", **result)
    try:
        parse_ws_url(module.params["url"])
        make_ssl_context(module.params["validate_certs"], module.params["ca_path"])
    except (ValueError, OSError) as exc:
        module.fail_json(msg=f"invalid url or ca_path: {exc}", **result)
    try:
        run(module, result)
    except StepFailed as exc:
        result["stage"] = exc.stage
        result["hint"] = exc.hint
        module.fail_json(msg=f"{exc} ({exc.stage}): {exc.hint}", **result)
    except ValueError as exc:
        module.fail_json(msg=str(exc), **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
