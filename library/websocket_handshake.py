#!/usr/bin/python
# Copyright: (c) 2026, wsnotify maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: websocket_handshake
short_description: Check a WebSocket upgrade (RFC 6455) and explain why it fails
description:
  - Opens one WebSocket connection to O(url), validates the C(101 Switching Protocols) answer
    (including C(Sec-WebSocket-Accept)), optionally authenticates with a bearer token, and checks
    that the outcome is the one expected - an open connection (V(upgrade)) or a refusal
    (V(refused)), which is an HTTP status instead of the upgrade, or a close frame such as
    C(4401) after it.
  - Returns the evidence (status, response headers, close code and reason, TLS protocol and
    certificate, timings) so a playbook can assert on it.
  - Failures carry a C(hint) naming the real cause, for example a service that is not listening,
    an nginx site without its WebSocket location, a proxy that does not forward the C(Upgrade)
    header, a handshake rewritten in transit, or which certificate check failed.
  - Runs on the target with the Python standard library only.
version_added: "1.0.0"
author:
  - wsnotify maintainers
options:
  url:
    description:
      - The WebSocket URL, V(ws://host:port/path) or V(wss://host/path).
    type: str
    required: true
  headers:
    description:
      - Extra request headers. The handshake's own headers (C(Host), C(Upgrade), C(Connection),
        C(Sec-WebSocket-*)) cannot be overridden.
    type: dict
    default: {}
  token:
    description:
      - Bearer token (a JWT for wsnotify) to authenticate with. Never logged or returned.
      - Where it is sent is chosen by O(token_location).
    type: str
  token_location:
    description:
      - "V(header) sends C(Authorization: Bearer <token>)."
      - V(query) adds C(?token=<token>) to the request target (the returned O(url) never shows it).
      - V(message) sends C({"type":"auth","token":"<token>"}) as the first message after the 101.
    type: str
    choices: [header, query, message]
    default: header
  origin:
    description:
      - Value of the C(Origin) header, as a browser on that site would send it.
    type: str
  subprotocols:
    description:
      - Subprotocols offered in C(Sec-WebSocket-Protocol).
    type: list
    elements: str
    default: []
  validate_certs:
    description:
      - Verify the server certificate and host name for V(wss://) URLs.
      - Set to V(false) only for a throwaway check; the TLS details are returned either way.
    type: bool
    default: true
  ca_path:
    description:
      - CA bundle file (or hashed directory) to trust instead of the system store, for example a
        self-signed or private-CA certificate.
    type: path
  timeout:
    description:
      - Seconds allowed for each of connecting plus the handshake, and waiting for a refusal or
        for O(expect_message_type).
    type: float
    default: 10
  retries:
    description:
      - Extra attempts when the failure can be transient while a service starts - connection
        refused or timed out, or HTTP 502/503/504 from a proxy. Other failures are not retried.
    type: int
    default: 0
  delay:
    description:
      - Seconds to wait between attempts.
    type: float
    default: 1
  expect:
    description:
      - V(upgrade) passes when the server answers 101 with a valid accept and the connection stays
        open for O(hold) seconds (after O(expect_message_type) arrived, when set).
      - V(refused) passes when the server refuses, see O(expect_status) and O(expect_close_code).
        Without either, a refusal is HTTP 401/403, or a close with code 1008 or 4000-4999.
        Connection, TLS and proxy errors never count as a refusal.
    type: str
    choices: [upgrade, refused]
    default: upgrade
  expect_status:
    description:
      - With O(expect=refused), the HTTP status the upgrade request must get instead of 101.
    type: int
  expect_close_code:
    description:
      - With O(expect=refused), the close code the server must send after the 101
        (wsnotify uses V(4401) for a missing or invalid token).
    type: int
  expect_message_type:
    description:
      - With O(expect=upgrade), wait up to O(timeout) for a JSON text message whose C(type)
        field has this value (wsnotify sends V(welcome) once the token is accepted).
    type: str
  hold:
    description:
      - Seconds the connection must stay open after the upgrade (and the expected message) for
        O(expect=upgrade) to pass. The module then closes it with code 1000.
    type: float
    default: 0.5
  unit:
    description:
      - The systemd unit serving the WebSocket behind O(url), named in hints (which service to
        inspect when nothing listens or a proxy cannot reach its upstream).
    type: str
    default: wsnotify
notes:
  - Read-only; supports check mode (the same check runs) and always returns C(changed=false).
  - Permessage-deflate and other extensions are never offered.
seealso:
  - module: notification_roundtrip
"""

EXAMPLES = r"""
- name: Ensure the service refuses a client without a token (close code 4401 after the 101)
  websocket_handshake:
    url: ws://127.0.0.1:3002/ws
    expect: refused
    expect_close_code: 4401
    retries: 10
    delay: 1

# A JWT for a probe user, minted on the controller with this project's stdlib helper.
- name: Mint a short-lived probe token
  ansible.builtin.command:
    argv:
      - "{{ ansible_playbook_python }}"
      - -c
      - >-
        import sys; a = sys.argv; sys.path.insert(0, a[1]); from wsnotify_jwt import mint_token;
        print(mint_token(a[2], a[3], 300, a[4] or None, a[5] or None))
      - "{{ lookup('ansible.builtin.config', 'DEFAULT_MODULE_UTILS_PATH') | first }}"
      - "{{ wsnotify_jwt_secret }}"
      - ansible-probe
      - "{{ wsnotify_jwt_audience | default('') }}"
      - "{{ wsnotify_jwt_issuer | default('') }}"
  delegate_to: localhost
  changed_when: false
  no_log: true
  register: probe_token

- name: Ensure the service upgrades a client with a valid token and welcomes it
  websocket_handshake:
    url: ws://127.0.0.1:3002/ws
    token: "{{ probe_token.stdout }}"
    expect_message_type: welcome

- name: Ensure nginx proxies wss:// to the service with a trusted certificate
  websocket_handshake:
    url: "wss://localhost:{{ nginx_site_https_port | default(443) }}/ws"
    ca_path: "{{ nginx_site_tls_certificate_path | default('/etc/nginx/tls/wsnotify.crt') }}"
    token: "{{ probe_token.stdout }}"
    token_location: query
    expect_message_type: welcome
    unit: nginx
  register: wss_check

- name: Show how long the TLS certificate remains valid
  ansible.builtin.debug:
    msg: "{{ wss_check.tls.subject }} expires in {{ wss_check.tls.days_to_expiry }} days"
"""

RETURN = r"""
outcome:
  description: What happened - V(upgrade) (open connection), V(refused), V(closed) (closed by the
    server with a code that is not a refusal) or V(error) (connection, TLS or protocol failure).
  returned: always
  type: str
  sample: upgrade
status:
  description: HTTP status of the answer to the upgrade request; null when none arrived.
  returned: always
  type: int
  sample: 101
headers:
  description: Response headers, names lower-cased.
  returned: always
  type: dict
  sample: {"upgrade": "websocket", "connection": "Upgrade", "server": "nginx/1.22.1"}
accept_valid:
  description: Whether C(Sec-WebSocket-Accept) matched the key sent; null without a 101.
  returned: always
  type: bool
  sample: true
subprotocol:
  description: Subprotocol chosen by the server, if any.
  returned: always
  type: str
  sample: null
body:
  description: Start (up to 2 KiB) of the body of a non-101 answer (proxies explain themselves
    there).
  returned: when the upgrade was answered with another status
  type: str
  sample: "<html><head><title>404 Not Found</title>..."
close_code:
  description: Close code sent by the server (or echoed after our close); null if none.
  returned: always
  type: int
  sample: 4401
close_reason:
  description: Close reason sent by the server.
  returned: always
  type: str
  sample: Unauthorized
closed_by:
  description: V(server) when the server closed first, V(client) when the module closed after
    O(hold), null when the connection never opened.
  returned: always
  type: str
  sample: client
messages:
  description: Text messages received after the upgrade (JSON decoded when possible, first 10).
  returned: always
  type: list
  elements: raw
  sample: [{"type": "welcome", "user_id": "42"}]
tls:
  description: TLS details for V(wss://) (null for V(ws://)); for a certificate failure the
    certificate is fetched again without verification so it can be shown.
  returned: always
  type: dict
  contains:
    protocol:
      description: Negotiated protocol version.
      type: str
      sample: TLSv1.3
    cipher:
      description: Negotiated cipher suite.
      type: str
    subject:
      description: Certificate subject.
      type: str
      sample: CN=localhost
    issuer:
      description: Certificate issuer.
      type: str
    subject_alt_names:
      description: Names the certificate is valid for.
      type: list
      elements: str
      sample: ["DNS:localhost"]
    not_after:
      description: Expiry time (UTC, ISO 8601).
      type: str
    days_to_expiry:
      description: Whole days until expiry (negative once expired).
      type: int
      sample: 89
  sample: {"protocol": "TLSv1.3", "subject": "CN=localhost", "days_to_expiry": 89}
handshake_ms:
  description: Milliseconds from connecting to the validated 101 in the last attempt.
  returned: when a 101 arrived
  type: float
elapsed_ms:
  description: Milliseconds the whole check took, all attempts included.
  returned: always
  type: float
  sample: 512.4
attempts:
  description: Number of attempts made.
  returned: always
  type: int
  sample: 1
hint:
  description: The likely cause and what to do, when the check failed.
  returned: on failure
  type: str
"""

import json
import time

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.websocket import (
    ConnectFailed,
    HandshakeInvalid,
    HandshakeRejected,
    Timeout,
    TLSFailed,
    WebSocketError,
    connect,
    fetch_certificate,
    make_ssl_context,
    merge_headers,
    parse_ws_url,
    token_placement,
)
from ansible.module_utils.ws_diagnosis import explain, explain_close

MAX_MESSAGES = 10
TRANSIENT_STATUSES = (502, 503, 504)


def decode_message(text: str):
    """JSON value of a text message when it is JSON (wsnotify's are), else the text, truncated."""
    try:
        return json.loads(text)
    except ValueError:
        return text[:1000]


def is_refusal_close(code: int | None) -> bool:
    return code is not None and (code == 1008 or 4000 <= code <= 4999)


def new_result(url: str) -> dict:
    return {
        "changed": False,
        "url": url,
        "outcome": "error",
        "status": None,
        "headers": {},
        "accept_valid": None,
        "subprotocol": None,
        "close_code": None,
        "close_reason": None,
        "closed_by": None,
        "messages": [],
        "tls": None,
    }


def observe(conn, result: dict, params: dict) -> None:
    """Read after the 101 until the expectation can be judged; fills close/messages fields."""
    expect = params["expect"]
    wanted = params["expect_message_type"]
    start = time.monotonic()
    wait_deadline = start + params["timeout"]
    seen_wanted = wanted is None
    # For 'upgrade' the connection must survive `hold` (counted once the wanted message came);
    # for 'refused' we wait up to `timeout` for the server to close.
    hold_until = start + (params["hold"] if expect == "upgrade" else params["timeout"])
    while True:
        now = time.monotonic()
        end = hold_until if seen_wanted else wait_deadline
        if now >= end:
            break
        msg = conn.recv(end - now)
        if msg is None:
            continue
        if msg.kind == "close":
            break
        if len(result["messages"]) < MAX_MESSAGES:
            result["messages"].append(
                decode_message(msg.text) if msg.kind == "text" else f"<{len(msg.data)} bytes>"
            )
        if not seen_wanted and msg.kind == "text":
            value = decode_message(msg.text)
            if isinstance(value, dict) and value.get("type") == wanted:
                seen_wanted = True
                if expect == "refused":
                    break  # the server accepted us: no need to wait longer
                hold_until = time.monotonic() + params["hold"]
    result["seen_expected_message"] = seen_wanted
    if conn.closed_by is None:
        conn.close(1000, "", timeout=min(2.0, params["timeout"]))
    result["close_code"] = conn.close_code
    result["close_reason"] = conn.close_reason
    result["closed_by"] = conn.closed_by


def attempt(params: dict, result: dict) -> WebSocketError | None:
    """One connection: fills ``result``; returns the error that stopped it, if any."""
    target = parse_ws_url(params["url"])
    extra, resource, first_message = token_placement(
        target, params["token"], params["token_location"]
    )
    headers = merge_headers(params["headers"], extra)
    ctx = make_ssl_context(params["validate_certs"], params["ca_path"]) if target.secure else None
    start = time.monotonic()
    try:
        conn = connect(
            params["url"],
            timeout=params["timeout"],
            headers=headers,
            origin=params["origin"],
            subprotocols=params["subprotocols"] or None,
            ssl_context=ctx,
            resource=resource,
        )
    except WebSocketError as exc:
        result["tls"] = exc.tls
        if isinstance(exc, TLSFailed):
            exc.certificate = fetch_certificate(target.host, target.port, params["timeout"])
            result["tls"] = {"certificate_error": exc.detail, **(exc.certificate or {})}
        if isinstance(exc, (HandshakeRejected, HandshakeInvalid)):
            result["status"] = exc.response.status
            result["headers"] = exc.response.headers
        if isinstance(exc, HandshakeRejected):
            result["outcome"] = "refused"
            result["body"] = exc.response.body_text()
        if isinstance(exc, HandshakeInvalid):
            result["accept_valid"] = exc.accept_valid
        return exc
    result["handshake_ms"] = round((time.monotonic() - start) * 1000, 1)
    result["status"] = conn.response.status
    result["headers"] = conn.response.headers
    result["accept_valid"] = True
    result["subprotocol"] = conn.subprotocol
    result["tls"] = conn.tls
    try:
        if first_message:
            conn.send_text(first_message, timeout=params["timeout"])
        observe(conn, result, params)
    except WebSocketError as exc:
        conn.close()
        result["close_code"] = conn.close_code
        result["closed_by"] = conn.closed_by or "server"
        return exc
    if result["closed_by"] == "server":
        result["outcome"] = "refused" if is_refusal_close(result["close_code"]) else "closed"
    else:
        result["outcome"] = "upgrade"
    return None


def is_transient(error: WebSocketError | None) -> bool:
    if isinstance(error, ConnectFailed):
        return error.kind in ("refused", "timeout", "reset")
    if isinstance(error, Timeout):
        return True
    if isinstance(error, HandshakeRejected):
        return error.response.status in TRANSIENT_STATUSES
    return False


def judge(params: dict, result: dict, error: WebSocketError | None) -> str | None:
    """None when the expectation holds, else the failure message (with the hint in result)."""
    target = parse_ws_url(params["url"])

    def hint_for(exc) -> str:
        return explain(exc, target.host, target.port, target.secure, params["unit"])

    expect = params["expect"]
    if error is not None and not isinstance(error, HandshakeRejected):
        result["hint"] = hint_for(error)
        return f"{error}: {result['hint']}"
    status, code = result["status"], result["close_code"]
    if expect == "upgrade":
        if error is not None:
            result["hint"] = hint_for(error)
            return f"expected an upgrade, got HTTP {status}: {result['hint']}"
        if result["outcome"] != "upgrade":
            result["hint"] = explain_close(code, result["close_reason"] or "")
            return (
                f"the server upgraded but then closed the connection: {result['hint']}; "
                f"messages received: {json.dumps(result['messages'])}"
            )
        if not result["seen_expected_message"]:
            result["hint"] = (
                f"no {params['expect_message_type']!r} message within {params['timeout']}s: the "
                "server did not confirm authentication (with token_location=message, check the "
                "auth message format)"
            )
            return f"{result['hint']}; messages received: {json.dumps(result['messages'])}"
        return None
    # expect == refused
    if params["expect_status"] is not None:
        if status == params["expect_status"]:
            return None
        got = f"HTTP {status}" if status else "no HTTP answer"
        if status == 101:
            got += f" then {explain_close(code, result['close_reason'] or '')}"
            result["hint"] = got
        else:
            result["hint"] = hint_for(error) if error else got
        return f"expected the upgrade to be refused with HTTP {params['expect_status']}, got {got}"
    if params["expect_close_code"] is not None:
        if (
            status == 101
            and result["closed_by"] == "server"
            and code == params["expect_close_code"]
        ):
            return None
        if error is not None:
            result["hint"] = hint_for(error)
            return (
                f"expected close code {params['expect_close_code']} after a 101, got HTTP "
                f"{status}: {result['hint']}"
            )
    elif result["outcome"] == "refused" and (status in (401, 403) or is_refusal_close(code)):
        return None
    elif error is not None:
        result["hint"] = hint_for(error)
        return f"expected a refusal, got HTTP {status}, which is not one: {result['hint']}"
    if result["outcome"] == "upgrade":
        result["hint"] = (
            "the server accepted the connection and kept it open: authentication is not enforced "
            "on this url (or the auth timeout is longer than the module's timeout)"
        )
        return (
            f"expected a refusal, but {result['hint']}; messages: {json.dumps(result['messages'])}"
        )
    result["hint"] = explain_close(code, result["close_reason"] or "")
    wanted = params["expect_close_code"]
    expected = f"close code {wanted}" if wanted else "a refusal"
    return f"expected {expected}, got {result['hint']}"


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            url=dict(type="str", required=True),
            headers=dict(type="dict", default={}),
            token=dict(type="str", no_log=True),
            token_location=dict(
                type="str", choices=["header", "query", "message"], default="header"
            ),
            origin=dict(type="str"),
            subprotocols=dict(type="list", elements="str", default=[]),
            validate_certs=dict(type="bool", default=True),
            ca_path=dict(type="path"),
            timeout=dict(type="float", default=10),
            retries=dict(type="int", default=0),
            delay=dict(type="float", default=1),
            expect=dict(type="str", choices=["upgrade", "refused"], default="upgrade"),
            expect_status=dict(type="int"),
            expect_close_code=dict(type="int"),
            expect_message_type=dict(type="str"),
            hold=dict(type="float", default=0.5),
            unit=dict(type="str", default="wsnotify"),
        ),
        mutually_exclusive=[("expect_status", "expect_close_code")],
        supports_check_mode=True,
    )
    params = module.params
    result = new_result(params["url"])
    if params["expect"] == "upgrade" and (
        params["expect_status"] not in (None, 101) or params["expect_close_code"] is not None
    ):
        module.fail_json(
            msg="expect_status/expect_close_code describe a refusal: use them with expect=refused",
            **result,
        )
    if params["expect_status"] == 101:
        module.fail_json(msg="expect_status=101 is not a refusal: use expect=upgrade", **result)
    if params["timeout"] <= 0 or params["retries"] < 0 or params["delay"] < 0 or params["hold"] < 0:
        module.fail_json(msg="timeout must be > 0; retries, delay and hold must be >= 0", **result)
    try:
        parse_ws_url(params["url"])
        make_ssl_context(params["validate_certs"], params["ca_path"])
    except (ValueError, OSError) as exc:
        module.fail_json(msg=f"invalid url or ca_path: {exc}", **result)

    started = time.monotonic()
    error = None
    for number in range(1, params["retries"] + 2):
        result = new_result(params["url"])
        result["attempts"] = number
        try:
            error = attempt(params, result)
        except ValueError as exc:  # header conflicts and similar caller mistakes
            module.fail_json(msg=str(exc), **result)
        if not is_transient(error) or number > params["retries"]:
            break
        time.sleep(params["delay"])
    result["elapsed_ms"] = round((time.monotonic() - started) * 1000, 1)
    failure = judge(params, result, error)
    result.pop("seen_expected_message", None)
    if failure:
        module.fail_json(msg=failure, **result)
    if params["expect"] == "upgrade":
        msg = f"upgraded (101, valid accept) and open for {params['hold']}s"
    else:
        msg = f"refused as expected (HTTP {result['status']}, close code {result['close_code']})"
    module.exit_json(msg=msg, **result)


if __name__ == "__main__":
    main()
