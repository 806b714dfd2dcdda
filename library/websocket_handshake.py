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
    (including C(Sec-WebSocket-Accept)), optionally authenticates with a bearer token (given,
    or minted from the service's O(jwt_secret)), and checks that the outcome is the one
    expected - an open connection (V(upgrade)) or a refusal (V(refused)), which is an HTTP
    status instead of the upgrade, or a close frame such as C(4401) after it.
  - Returns the evidence (status, response headers, close code and reason, TLS protocol and
    certificate, timings) so a playbook can assert on it.
  - Failures carry a C(hint) naming the real cause, for example a service that is not listening,
    an nginx site without its WebSocket location, a proxy that does not forward the C(Upgrade)
    header, a handshake rewritten in transit, or which certificate check failed.
  - Runs on the target with the Python standard library only.
version_added: "1.0.0"
author:
  - wsnotify maintainers
extends_documentation_fragment:
  - action_common_attributes
  - wsnotify_connection
options:
  subprotocols:
    description:
      - Subprotocols offered in C(Sec-WebSocket-Protocol).
    type: list
    elements: str
    default: []
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
      - V(refused) passes when the server refuses, see O(expect_status) and O(expect_close_code);
        the module waits up to O(timeout) for the server's close. Without either, a refusal is
        HTTP 401/403, or a close with code 1008 or 4000-4999. Connection, TLS and proxy errors
        never count as a refusal.
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
attributes:
  check_mode:
    support: full
    details: The same check runs in check mode; it only reads, so C(changed) is always false.
  diff_mode:
    support: none
  platform:
    platforms: posix
notes:
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

# The module mints the token on the target from the service's secret (passed as a module
# argument, never on a command line).
- name: Ensure the service upgrades a client with a valid token and welcomes it
  websocket_handshake:
    url: ws://127.0.0.1:3002/ws
    jwt_secret: "{{ wsnotify_jwt_secret }}"
    jwt_audience: "{{ wsnotify_jwt_audience | default(omit, true) }}"
    jwt_issuer: "{{ wsnotify_jwt_issuer | default(omit, true) }}"
    user_id: ansible-probe
    expect_message_type: welcome

# For a proxy host that should not hold the JWT secret, mint the token on the controller with
# this project's stdlib helper. The secret goes to the command on stdin: a command line is
# readable by every local user (/proc/PID/cmdline), whatever no_log hides.
- name: Mint a short-lived probe token on the controller
  ansible.builtin.command:
    argv:
      - "{{ ansible_playbook_python }}"
      - -c
      - >-
        import sys; a = sys.argv; sys.path.insert(0, a[1]); from wsnotify_jwt import mint_token;
        print(mint_token(sys.stdin.read(), 'ansible-probe', 300, a[2] or None, a[3] or None))
      - "{{ lookup('ansible.builtin.config', 'DEFAULT_MODULE_UTILS_PATH') | first }}"
      - "{{ wsnotify_jwt_audience | default('') }}"
      - "{{ wsnotify_jwt_issuer | default('') }}"
    stdin: "{{ wsnotify_jwt_secret }}"
    stdin_add_newline: false
  delegate_to: localhost
  changed_when: false
  no_log: true
  register: probe_token

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
url:
  description: The O(url) checked, as given (a token placed in the query is never added to it).
  returned: always
  type: str
  sample: wss://localhost/ws
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
at_capacity:
  description: Whether the answer was the stack's clean refusal above capacity - nginx's 503 with
    C(Retry-After) (limit_conn, C(nginx_site_max_clients)) or the service's close code 1013 past
    its own cap (C(wsnotify_max_connections)). Check it with O(expect=refused) and
    O(expect_status=503) or O(expect_close_code=1013).
  returned: always
  type: bool
  sample: false
tls:
  description: TLS details for V(wss://) (null for V(ws://)). When the TLS handshake fails, the
    certificate is fetched again without verification so it can be shown, beside
    RV(tls.certificate_error).
  returned: always
  type: dict
  contains:
    protocol:
      description: Negotiated protocol version.
      type: str
      returned: when the TLS handshake succeeded
      sample: TLSv1.3
    cipher:
      description: Negotiated cipher suite.
      type: str
      returned: when the TLS handshake succeeded
      sample: TLS_AES_256_GCM_SHA384
    subject:
      description: Certificate subject.
      type: str
      returned: when the server presented a certificate that could be decoded
      sample: CN=localhost
    issuer:
      description: Certificate issuer.
      type: str
      returned: when the server presented a certificate that could be decoded
      sample: CN=localhost
    self_signed:
      description: Whether subject and issuer are the same (a self-signed certificate).
      type: bool
      returned: when the server presented a certificate that could be decoded
      sample: true
    subject_alt_names:
      description: Names the certificate is valid for.
      type: list
      elements: str
      returned: when the server presented a certificate that could be decoded
      sample: ["DNS:localhost"]
    not_before:
      description: Start of validity (UTC, ISO 8601).
      type: str
      returned: when the server presented a certificate that could be decoded
      sample: "2026-12-01T00:00:00Z"
    not_after:
      description: Expiry time (UTC, ISO 8601).
      type: str
      returned: when the server presented a certificate that could be decoded
      sample: "2027-03-01T00:00:00Z"
    days_to_expiry:
      description: Whole days until expiry (negative once expired).
      type: int
      returned: when the server presented a certificate that could be decoded
      sample: 89
    sha256_fingerprint:
      description: SHA-256 of the certificate (DER), lower-case hex without separators.
      type: str
      returned: when the server presented a certificate that could be decoded
      sample: 3f1c0e9b5d7a...
    certificate_error:
      description: Why the TLS handshake or certificate verification failed, or why the
        certificate could not be decoded.
      type: str
      returned: when the TLS handshake failed, or the certificate could not be decoded
      sample: self-signed certificate
  sample: {"protocol": "TLSv1.3", "subject": "CN=localhost", "days_to_expiry": 89}
handshake_ms:
  description: Milliseconds from connecting to the validated 101 in the last attempt.
  returned: when a 101 arrived
  type: float
  sample: 3.2
elapsed_ms:
  description: Milliseconds the whole check took, all attempts included.
  returned: always
  type: float
  sample: 512.4
attempts:
  description: Number of attempts made (0 when the options were refused before any).
  returned: always
  type: int
  sample: 1
hint:
  description: The likely cause and what to do, when the check failed.
  returned: on failure
  type: str
  sample: "nothing is listening on 127.0.0.1:3002: the service is not running ..."
"""

import json
import time

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.ws_diagnosis import CheckFailed, at_capacity
from ansible.module_utils.ws_protocol import (
    ConnectFailed,
    ConnectionClosed,
    HandshakeInvalid,
    HandshakeRejected,
    Timeout,
    WebSocketError,
)
from ansible.module_utils.wsnotify_connection import (
    CONNECTION_MUTUALLY_EXCLUSIVE,
    CONNECTION_REQUIRED_BY,
    Connection,
    connection_argument_spec,
)

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
        "attempts": 0,
        "elapsed_ms": 0.0,
        "at_capacity": False,
    }


def observe(conn, result: dict, params: dict) -> bool:
    """Read after the 101 until the expectation can be judged; fills close/messages fields.
    Returns whether the expected message (if any) arrived."""
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
        value = decode_message(msg.text) if msg.kind == "text" else f"<{len(msg.data)} bytes>"
        if len(result["messages"]) < MAX_MESSAGES:
            result["messages"].append(value)
        if not seen_wanted and isinstance(value, dict) and value.get("type") == wanted:
            seen_wanted = True
            if expect == "refused":
                break  # the server accepted us: no need to wait longer
            hold_until = time.monotonic() + params["hold"]
    if conn.closed_by is None:
        conn.close(1000, "", timeout=min(2.0, params["timeout"]))
    result["close_code"] = conn.close_code
    result["close_reason"] = conn.close_reason
    result["closed_by"] = conn.closed_by
    return seen_wanted


def attempt(endpoint: Connection, params: dict, result: dict) -> tuple[WebSocketError | None, bool]:
    """One connection: fills ``result``; returns (the error that stopped it, if any, whether
    the expected message arrived)."""
    start = time.monotonic()
    try:
        conn = endpoint.open(params["subprotocols"] or None)
    except WebSocketError as exc:
        result["tls"] = exc.tls
        if isinstance(exc, (HandshakeRejected, HandshakeInvalid)):
            result["status"] = exc.response.status
            result["headers"] = exc.response.headers
        if isinstance(exc, HandshakeRejected):
            result["outcome"] = "refused"
            result["body"] = exc.response.body_text()
        if isinstance(exc, HandshakeInvalid):
            result["accept_valid"] = exc.accept_valid
        return exc, False
    result["handshake_ms"] = round((time.monotonic() - start) * 1000, 1)
    result["status"] = conn.response.status
    result["headers"] = conn.response.headers
    result["accept_valid"] = True
    result["subprotocol"] = conn.subprotocol
    result["tls"] = conn.tls
    try:
        endpoint.authenticate(conn)
        seen = observe(conn, result, params)
    except WebSocketError as exc:
        conn.close()
        result["close_code"] = conn.close_code
        result["closed_by"] = conn.closed_by or "server"
        return exc, False
    if result["closed_by"] == "server":
        result["outcome"] = "refused" if is_refusal_close(result["close_code"]) else "closed"
    else:
        result["outcome"] = "upgrade"
    return None, seen


def is_transient(error: WebSocketError | None) -> bool:
    if isinstance(error, ConnectFailed):
        return error.kind in ("refused", "timeout", "reset")
    if isinstance(error, Timeout):
        return True
    if isinstance(error, HandshakeRejected):
        return error.response.status in TRANSIENT_STATUSES
    return False


def judge(params: dict, result: dict, error: WebSocketError | None, seen: bool):
    """None when the expectation holds, else (what was expected and seen, the failure whose
    hint explains it)."""
    status, code = result["status"], result["close_code"]
    if error is not None and not isinstance(error, HandshakeRejected):
        return str(error), error
    # After a 101: the server's close, or the fact it kept the connection open.
    if result["closed_by"] == "server":
        after_101 = ConnectionClosed(code, result["close_reason"] or "")
    else:
        after_101 = CheckFailed("not_enforced", "the connection stayed open")
    if params["expect"] == "upgrade":
        if error is not None:
            return f"expected an upgrade, got HTTP {status}", error
        if result["outcome"] != "upgrade":
            return "the server upgraded but then closed the connection", after_101
        if not seen:
            wanted = params["expect_message_type"]
            missing = CheckFailed("no_message", "", message_type=wanted, timeout=params["timeout"])
            return "upgraded (101, valid accept)", missing
        return None
    wanted_status, wanted_code = params["expect_status"], params["expect_close_code"]
    if wanted_status is not None:
        if status == wanted_status:
            return None
        got = f"HTTP {status}" if status else "no HTTP answer"
        expected = f"expected the upgrade to be refused with HTTP {wanted_status}, got {got}"
        return expected, error or after_101
    if wanted_code is not None:
        if status == 101 and result["closed_by"] == "server" and code == wanted_code:
            return None
        if error is not None:
            return f"expected close code {wanted_code} after a 101, got HTTP {status}", error
        return f"expected close code {wanted_code}", after_101
    if result["outcome"] == "refused" and (status in (401, 403) or is_refusal_close(code)):
        return None
    if error is not None:
        return f"expected a refusal, got HTTP {status}, which is not one", error
    return "expected a refusal", after_101


def main() -> None:
    module = AnsibleModule(
        argument_spec=connection_argument_spec(
            subprotocols=dict(type="list", elements="str", default=[]),
            retries=dict(type="int", default=0),
            delay=dict(type="float", default=1),
            expect=dict(type="str", choices=["upgrade", "refused"], default="upgrade"),
            expect_status=dict(type="int"),
            expect_close_code=dict(type="int"),
            expect_message_type=dict(type="str"),
            hold=dict(type="float", default=0.5),
        ),
        mutually_exclusive=[*CONNECTION_MUTUALLY_EXCLUSIVE, ("expect_status", "expect_close_code")],
        required_by=CONNECTION_REQUIRED_BY,
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
    if params["retries"] < 0 or params["delay"] < 0 or params["hold"] < 0:
        module.fail_json(msg="retries, delay and hold must be >= 0", **result)
    try:
        endpoint = Connection(params)
    except (ValueError, OSError) as exc:  # bad url, ca_path, timeout, header clash
        module.fail_json(msg=str(exc), **result)

    started = time.monotonic()
    for number in range(1, params["retries"] + 2):
        result = new_result(params["url"])
        result["attempts"] = number
        error, seen = attempt(endpoint, params, result)
        if not is_transient(error) or number > params["retries"]:
            break
        time.sleep(params["delay"])
    result["elapsed_ms"] = round((time.monotonic() - started) * 1000, 1)
    response = error.response if isinstance(error, HandshakeRejected) else None
    result["at_capacity"] = at_capacity(response, result["close_code"])
    verdict = judge(params, result, error, seen)
    if verdict is not None:
        expected, failure = verdict
        result["hint"] = endpoint.hint(failure)
        msg = f"{expected}: {result['hint']}"
        if result["messages"]:
            msg += f"; messages received: {json.dumps(result['messages'])}"
        module.fail_json(msg=msg, **result)
    if params["expect"] == "upgrade":
        msg = f"upgraded (101, valid accept) and open for {params['hold']}s"
    else:
        msg = f"refused as expected (HTTP {result['status']}, close code {result['close_code']})"
    module.exit_json(msg=msg, **result)


if __name__ == "__main__":
    main()
