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
    WebSocket delivery, and any proxy in front). The socket is read while the publish request
    is in flight, so a delivery that overtakes the publisher's answer is timed when it arrives.
  - The user is the one the server's C(welcome) names - with O(jwt_secret), O(user_id).
  - O(timeout) applies to each step - connecting, the welcome, the publish request, and the
    delivery.
  - When the notification does not arrive, fails with what was received instead and a hint.
version_added: "1.0.0"
author:
  - wsnotify maintainers
extends_documentation_fragment:
  - action_common_attributes
  - wsnotify_connection
options:
  publish_url:
    description:
      - The publisher endpoint. Defaults to O(url) with V(ws)/V(wss) changed to
        V(http)/V(https) and the path V(/api/notifications). O(validate_certs) and O(ca_path)
        apply to it too.
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
attributes:
  check_mode:
    support: full
    details: In check mode the module connects and authenticates only, and publishes nothing.
  diff_mode:
    support: none
  platform:
    platforms: posix
notes:
  - Returns C(changed=false), like M(ansible.builtin.uri); the probe notification is stored by the
    service (and acknowledged when O(ack=true)).
seealso:
  - module: websocket_handshake
"""

EXAMPLES = r"""
# Secrets go in as module arguments (no_log): never on a command line.
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
url:
  description: The O(url) checked, as given (a token placed in the query is never added to it).
  returned: always
  type: str
  sample: ws://127.0.0.1:3002/ws
latency_ms:
  description: Milliseconds from sending the publish request to receiving the notification frame.
  returned: success, not in check mode
  type: float
  sample: 4.2
publish_ms:
  description: Milliseconds the publish request took (until its answer was read).
  returned: when the publish request was answered
  type: float
  sample: 3.9
connect_ms:
  description: Milliseconds from connecting to receiving the welcome.
  returned: when the welcome arrived
  type: float
  sample: 5.1
published:
  description: Whether a notification was published (false in check mode).
  returned: always
  type: bool
  sample: true
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
  sample: ansible-probe
marker:
  description: Unique marker carried in the probe's body and C(data.marker).
  returned: when a notification was published
  type: str
  sample: roundtrip-0f5c2a7e4b1d4c3a9e8f7a6b5c4d3e2f
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
  sample: []
stage:
  description: Step that failed - V(connect), V(auth), V(publish) or V(deliver).
  returned: on failure
  type: str
  sample: deliver
hint:
  description: The likely cause and what to do.
  returned: on failure
  type: str
  sample: "the publisher refused publish_token: it must equal PUBLISH_TOKEN ..."
"""

import contextlib
import http.client
import json
import ssl
import threading
import time
import urllib.error
import uuid
from urllib.parse import urlsplit, urlunsplit

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.urls import Request
from ansible.module_utils.websocket import tcp_error, tls_failure
from ansible.module_utils.ws_diagnosis import CheckFailed
from ansible.module_utils.ws_protocol import ConnectionClosed, WebSocketError
from ansible.module_utils.wsnotify_connection import (
    CONNECTION_MUTUALLY_EXCLUSIVE,
    CONNECTION_REQUIRED_BY,
    Connection,
    connection_argument_spec,
)

MAX_RECEIVED = 10


class StepFailed(Exception):
    """A step of the round trip failed: its stage, and the failure ``diagnose`` explains
    (``at`` is (host, port, secure) when it happened elsewhere than the WebSocket url)."""

    def __init__(self, stage: str, msg: str, failure, at: tuple | None = None) -> None:
        super().__init__(msg)
        self.stage = stage
        self.failure = failure
        self.at = at or ()


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
    """POSTs the probe (ansible.module_utils.urls) in a thread, so the socket is read while the
    request is in flight: the service may deliver before it answers 202, and the latency is
    stamped at the frame's arrival, not after the HTTP answer."""

    def __init__(self, url: str, token: str, payload: dict, timeout: float, ctx) -> None:
        super().__init__(daemon=True)
        self.url, self.token, self.payload = url, token, payload
        self.timeout, self.ctx = timeout, ctx
        parts = urlsplit(url)
        self.secure = parts.scheme == "https"
        self.host = parts.hostname or ""
        self.port = parts.port or (443 if self.secure else 80)
        self.path = parts.path
        self.started_at = 0.0
        self.finished_at = 0.0
        self.status: int | None = None
        self.body = ""
        self.error: Exception | None = None

    def run(self) -> None:
        request = Request(
            use_proxy=False,  # like the WebSocket: straight to the endpoint
            follow_redirects="none",
            use_netrc=False,  # a ~/.netrc entry must not replace the bearer token
            timeout=self.timeout,
            context=self.ctx,
        )
        headers = {
            "Authorization": f"Bearer {self.token}",
            "Content-Type": "application/json",
            "Accept": "application/json",
        }
        data = json.dumps(self.payload).encode("utf-8")
        self.started_at = time.monotonic()
        try:
            with request.open("POST", self.url, data=data, headers=headers) as response:
                self.status = response.status
                self.body = response.read(4096).decode("utf-8", "replace")
        except urllib.error.HTTPError as exc:  # an answer, with a status other than 2xx
            self.status = exc.code
            self.body = exc.read(4096).decode("utf-8", "replace")
        except urllib.error.URLError as exc:
            self.error = self._classify(exc.reason)
        except (OSError, http.client.HTTPException) as exc:
            self.error = self._classify(exc)
        finally:
            self.finished_at = time.monotonic()

    def _classify(self, exc) -> Exception:
        if isinstance(exc, ssl.SSLError):
            return tls_failure(exc, self.host, self.port, self.timeout)
        if isinstance(exc, OSError):
            return tcp_error(exc, self.host, self.port)
        return CheckFailed("publish_invalid", f"invalid answer: {exc!r}", detail=repr(exc))

    @property
    def accepted(self) -> bool:
        return self.error is None and self.status is not None and 200 <= self.status < 300

    def failure(self) -> StepFailed:
        """The publish step's failure, once the request ended without being accepted."""
        at = (self.host, self.port, self.secure)
        if self.error is not None:
            msg = f"publish request to {self.url} failed: {self.error}"
            return StepFailed("publish", msg, self.error, at)
        refused = CheckFailed(
            "publish_status", "", status=self.status, body=self.body, path=self.path
        )
        return StepFailed("publish", f"publish request answered HTTP {self.status}", refused, at)


def record_publish(pub: Publisher, result: dict) -> None:
    """Evidence of the publish request, also when delivery failed afterwards."""
    if pub.status is None:
        return
    result["publish_status"] = pub.status
    result["publish_ms"] = round((pub.finished_at - pub.started_at) * 1000, 1)
    result["published"] = pub.accepted
    if pub.accepted:
        with contextlib.suppress(ValueError, AttributeError):  # evidence only
            result["notification_id"] = json.loads(pub.body).get("id")


def next_message(conn, wait: float, stage: str, awaited: str):
    """(decoded message, arrival time) or None when nothing came within ``wait``; the
    server's close fails ``stage``."""
    msg = conn.recv(wait)
    if msg is None:
        return None
    arrived = time.monotonic()  # before decoding: the latency is the frame's, not ours
    if msg.kind == "close":
        why = f"the server closed the connection while {awaited} was awaited"
        raise StepFailed(stage, why, ConnectionClosed(msg.code, msg.reason))
    value = decode(msg.text) if msg.kind == "text" else f"<{len(msg.data)} bytes>"
    return value, arrived


def wait_for_welcome(conn, timeout: float, received: list) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = next_message(conn, deadline - time.monotonic(), "auth", "the welcome")
        if got is None:
            break
        value = got[0]
        if isinstance(value, dict) and value.get("type") == "welcome":
            return value
        if len(received) < MAX_RECEIVED:
            received.append(value)
    missing = CheckFailed("no_message", "", message_type="welcome", timeout=timeout)
    raise StepFailed("auth", f"no welcome message within {timeout}s", missing)


def is_probe(value, marker: str) -> bool:
    if not isinstance(value, dict) or value.get("type") != "notification":
        return False
    data = value.get("data")
    return (isinstance(data, dict) and data.get("marker") == marker) or marker in str(
        value.get("body", "")
    )


def wait_for_probe(conn, pub: Publisher, marker: str, timeout: float, received: list):
    """Read the socket until the probe arrives; returns (message, arrival time)."""
    deadline = time.monotonic() + 2 * timeout  # publish request + delivery
    while time.monotonic() < deadline:
        if not pub.is_alive() and not pub.accepted:
            raise pub.failure()
        # Short reads: the publisher's failure must end the wait, not the deadline.
        wait = min(0.05, max(deadline - time.monotonic(), 0.001))
        got = next_message(conn, wait, "deliver", "the notification")
        if got is None:
            continue
        if is_probe(got[0], marker):
            return got
        if len(received) < MAX_RECEIVED:
            received.append(got[0])
    raise StepFailed(
        "deliver",
        f"the notification was not received within {timeout}s after publishing; received "
        f"instead: {json.dumps(received)}",
        CheckFailed("not_delivered", "", received=received),
    )


def run(module: AnsibleModule, endpoint: Connection, result: dict) -> None:
    p = module.params
    publish_url = p["publish_url"] or default_publish_url(p["url"])
    received = result["received"]

    start = time.monotonic()
    try:
        conn = endpoint.open()
    except WebSocketError as exc:
        raise StepFailed("connect", f"cannot open the WebSocket: {exc}", exc) from None
    try:
        endpoint.authenticate(conn)
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
        pub = Publisher(
            publish_url, p["publish_token"], payload, p["timeout"], endpoint.ssl_context
        )
        pub.start()
        try:
            message, arrived = wait_for_probe(conn, pub, marker, p["timeout"], received)
            pub.join(p["timeout"])
        finally:
            record_publish(pub, result)
        result["latency_ms"] = round((arrived - pub.started_at) * 1000, 1)
        if not pub.accepted:
            raise pub.failure()
        if result.get("notification_id") is None:
            result["notification_id"] = message.get("id")
        result["notification"] = message
        if p["ack"] and isinstance(message.get("id"), int):
            conn.send_text(json.dumps({"type": "ack", "ids": [message["id"]]}), p["timeout"])
        result["msg"] = f"notification delivered in {result['latency_ms']} ms"
    except WebSocketError as exc:
        raise StepFailed("deliver", f"WebSocket failed during the round trip: {exc}", exc) from None
    finally:
        conn.close(1000, "", timeout=min(2.0, p["timeout"]))


def main() -> None:
    module = AnsibleModule(
        argument_spec=connection_argument_spec(
            publish_url=dict(type="str"),
            publish_token=dict(type="str", required=True, no_log=True),
            broadcast=dict(type="bool", default=False),
            title=dict(type="str", default="wsnotify round trip"),
            ack=dict(type="bool", default=True),
        ),
        mutually_exclusive=CONNECTION_MUTUALLY_EXCLUSIVE,
        required_one_of=[("token", "jwt_secret")],
        required_by=CONNECTION_REQUIRED_BY,
        supports_check_mode=True,
    )
    result: dict = {
        "changed": False,
        "url": module.params["url"],
        "published": False,
        "received": [],
    }
    try:
        endpoint = Connection(module.params)
    except (ValueError, OSError) as exc:  # bad url, ca_path, timeout, header clash
        module.fail_json(msg=str(exc), **result)
    try:
        run(module, endpoint, result)
    except StepFailed as exc:
        result["stage"] = exc.stage
        result["hint"] = endpoint.hint(exc.failure, *exc.at)
        module.fail_json(msg=f"{exc} ({exc.stage}): {result['hint']}", **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
